"""fleetgauge agent: collectors, delivery to the store, Prometheus exposition, SDK.

Also home of what the agent and the dashboard share: the data model
(``agent.schema``) and the stores (``agent.stores``).
"""

__version__ = "0.1.0"
