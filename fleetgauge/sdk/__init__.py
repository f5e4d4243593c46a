"""The recording SDK (temporary re-export while the split lands)."""

from fleetgauge.sdk.client import *  # noqa: F403
from fleetgauge.sdk.client import __all__  # noqa: F401
