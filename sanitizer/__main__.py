"""`python -m sanitizer`, the same as the `calendar-sanitizer` command."""

import sys

from sanitizer.cli import main

sys.exit(main())
