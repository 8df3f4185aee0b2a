"""`python -m queshot.cli`, as the console script `queshot`."""

import sys

from . import main

sys.exit(main())
