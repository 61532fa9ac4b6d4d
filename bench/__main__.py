"""`python -m bench`: see docs/performance.md."""

import sys

from bench.runner import main

sys.exit(main())
