"""The push endpoint: models and pipelines POST the values they record to the local agent.

``server`` serves it, ``parser`` turns bodies into validated points, ``keys``
remembers idempotency keys; the wire format is :mod:`fleetgauge.protocol`.
"""

from fleetgauge.agent.push.keys import RecentKeys
from fleetgauge.agent.push.parser import PushError, PushParser
from fleetgauge.agent.push.server import PushServer

__all__ = ["PushError", "PushParser", "PushServer", "RecentKeys"]
