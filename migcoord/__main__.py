"""`python -m migcoord`."""

import sys

from migcoord.cli import main

sys.exit(main())
