"""The fleetgauge agent (``fleetgauge.agent``): the per-worker daemon.

Collectors, the schedule, delivery to the store (batching, retry, spool), the
push endpoint and the Prometheus exposition. What the agent shares with the
dashboard and the SDK (catalogue, validation, stores, the push protocol) lives
under :mod:`fleetgauge`.

This folder is installed as ``fleetgauge.agent`` only: imported under any other
name its classes would exist twice (one copy per name), so that fails at once.
"""

if __name__ != "fleetgauge.agent":
    raise ImportError(f"import fleetgauge.agent, not {__name__} (this folder is fleetgauge.agent)")
