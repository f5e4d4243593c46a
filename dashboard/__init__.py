"""The fleetgauge dashboard (``fleetgauge.dashboard``): the Dash site over the stores.

Pages (``pages/``) with their layouts and callbacks, their reads (``data/``,
plain functions over a store) and the figures drawn from them. It needs the
``dashboard`` extra: ``pip install 'fleetgauge[dashboard]'``.

This folder is installed as ``fleetgauge.dashboard`` only: imported under any
other name its classes would exist twice (one copy per name), so that fails at once.
"""

if __name__ != "fleetgauge.dashboard":
    raise ImportError(
        f"import fleetgauge.dashboard, not {__name__} (this folder is fleetgauge.dashboard)"
    )
