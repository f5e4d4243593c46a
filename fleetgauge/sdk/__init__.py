"""Recording SDK: model and training code send metric values and events to the local agent.

Deployed model code calls ``record_metric_value("score", 1)`` after each
prediction; training code calls ``record_list_metric_values("loss", losses)``
per epoch and ``log_event("checkpoint_saved", metadata={...})``. The values go
to the local fleetgauge agent's push endpoint (:mod:`fleetgauge.protocol`), which
writes them to the store.

Three layers, as in mlflow's fluent API: the functions here only delegate to a
default :class:`~fleetgauge.sdk.client.MetricsClient` (made from the environment
on first use, replaced by :func:`configure`); the client holds the context and
queues each call; its :class:`~fleetgauge.sdk.sender.Sender` checks, batches and
delivers on a daemon thread. A call never blocks and never raises; what is given
up is counted by reason in ``stats()["dropped"]``. ``flush()`` and normal exit
deliver what is queued.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from fleetgauge.catalogue import SUCCEEDED
from fleetgauge.protocol import DEFAULT_PUSH_URL
from fleetgauge.sdk.client import FLUSH_TIMEOUT, Execution, MetricsClient
from fleetgauge.sdk.logs import LogHandler
from fleetgauge.sdk.sender import DROP_REASONS

__all__ = [
    "MetricsClient",
    "Execution",
    "configure",
    "get_client",
    "record_metric_value",
    "record_list_metric_values",
    "log_event",
    "start_execution",
    "finish_execution",
    "set_execution_tags",
    "remove_execution_tags",
    "record_log",
    "LogHandler",
    "flush",
    "stats",
    "DEFAULT_PUSH_URL",
    "DROP_REASONS",
    "FLUSH_TIMEOUT",
]

_default: MetricsClient | None = None
_default_lock = threading.Lock()


def get_client() -> MetricsClient:
    """The default client, created from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MetricsClient()
        return _default


def configure(**settings: Any) -> MetricsClient:
    """Replace the default client by ``MetricsClient(**settings)``; the old one is closed."""
    global _default
    client = MetricsClient(**settings)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def record_metric_value(name: str, value: float, **context: Any) -> None:
    """Record one value on the default client (see :meth:`MetricsClient.record_metric_value`)."""
    (_default or get_client()).record_metric_value(name, value, **context)


def record_list_metric_values(
    name: str, values_or_value: Any, step: int | None = None, **context: Any
) -> None:
    """Record list-metric elements on the default client (see the method of the same name)."""
    (_default or get_client()).record_list_metric_values(name, values_or_value, step, **context)


def log_event(
    name: str, source: str | None = None, metadata: Mapping[str, Any] | None = None, **context: Any
) -> None:
    """Record an event on the default client (see :meth:`MetricsClient.log_event`)."""
    (_default or get_client()).log_event(name, source, metadata, **context)


def start_execution(
    pipeline: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    execution_id: str | None = None,
    time: Any = None,
    tags: Mapping[str, str] | None = None,
    capture_logs: bool = False,
    capture_output: bool = False,
    defaults: Mapping[str, Any] | None = None,
) -> Execution:
    """Start an execution on the default client (see :meth:`MetricsClient.start_execution`)."""
    return (_default or get_client()).start_execution(
        pipeline, inputs, execution_id, time, tags, capture_logs, capture_output, defaults
    )


def finish_execution(
    execution_id: str,
    status: str = SUCCEEDED,
    pipeline: str | None = None,
    time: Any = None,
    outputs: Mapping[str, Any] | None = None,
) -> None:
    """End an execution on the default client (see :meth:`MetricsClient.finish_execution`)."""
    (_default or get_client()).finish_execution(execution_id, status, pipeline, time, outputs)


def set_execution_tags(
    execution_id: str,
    tags: Mapping[str, str | None],
    pipeline: str | None = None,
    time: Any = None,
) -> None:
    """Set tags on an execution (see :meth:`MetricsClient.set_execution_tags`)."""
    (_default or get_client()).set_execution_tags(execution_id, tags, pipeline, time)


def remove_execution_tags(
    execution_id: str, names: Any, pipeline: str | None = None, time: Any = None
) -> None:
    """Remove tags from an execution (see :meth:`MetricsClient.remove_execution_tags`)."""
    (_default or get_client()).remove_execution_tags(execution_id, names, pipeline, time)


def record_log(message: str, level: str = "INFO", logger: str = "root", **context: Any) -> None:
    """Record a log line on the default client (see :meth:`MetricsClient.record_log`)."""
    (_default or get_client()).record_log(message, level, logger, **context)


def flush(timeout: float | None = FLUSH_TIMEOUT) -> bool:
    """Flush the default client, waiting at most ``timeout`` seconds (default 10); True when
    everything recorded before the call was delivered (see :meth:`MetricsClient.flush`)."""
    return (_default or get_client()).flush(timeout)


def stats() -> dict[str, Any]:
    """Counts of the default client (see :meth:`MetricsClient.stats`)."""
    return (_default or get_client()).stats()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
