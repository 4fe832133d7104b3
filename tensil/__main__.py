"""`python -m tensil ...`: see `tensil.cli`."""

import sys

from tensil.cli import main

sys.exit(main())
