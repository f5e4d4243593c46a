"""Run the fleetgauge command as ``python -m fleetgauge``."""

import sys

from fleetgauge.cli import main

sys.exit(main())
