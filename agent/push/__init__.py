"""The push endpoint: models and pipelines POST the values they record to the local agent."""

from fleetgauge.agent.push.server import PushError, PushParser, PushServer, RecentKeys

__all__ = ["PushError", "PushParser", "PushServer", "RecentKeys"]
