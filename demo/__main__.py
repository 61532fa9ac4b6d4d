"""`python -m demo`, what `make demo` runs: the same as `calendar-sanitizer demo`."""

import sys

from sanitizer.cli.main import main

sys.exit(main(["demo", *sys.argv[1:]]))
