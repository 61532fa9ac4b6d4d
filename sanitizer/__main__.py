"""`python -m sanitizer`, the same as the `calendar-sanitizer` command."""

import sys

from sanitizer.cli.main import main

sys.exit(main())
