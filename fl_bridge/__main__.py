import sys

from fl_bridge.cli import main

sys.exit(main())
