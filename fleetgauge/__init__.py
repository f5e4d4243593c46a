"""fleetgauge: monitoring for the machines that train and serve ML models.

What model and notebook code imports::

    from fleetgauge import record_metric_value, get_metrics

    record_metric_value("score", 1, deployment="fraud-v2")   # after each prediction
    rows = get_metrics("score", deployment="fraud-v2", start="2026-01-01")

Recording (``record_metric_value``, ``record_list_metric_values``,
``log_event``, ``start_execution``, ``finish_execution``, ``MetricsClient``,
``configure``, ``flush``) sends to the local agent and never blocks or raises;
reading (``get_*`` and their ``iter_*`` twins, ``get_execution``,
``list_executions``, ``search_executions``) reads a store directly; it is imported on
first use, so a model process that only records never loads it. The agent and the dashboard are
``fleetgauge.agent`` and ``fleetgauge.dashboard``, with the extras ``agent`` and
``dashboard``.
"""

__version__ = "0.1.0"

from fleetgauge.sdk import (  # noqa: E402
    Execution,
    LogHandler,
    MetricsClient,
    configure,
    finish_execution,
    flush,
    log_event,
    record_list_metric_values,
    record_log,
    record_metric_value,
    remove_execution_tags,
    set_execution_tags,
    start_execution,
    stats,
)

_READ_API = (
    "get_metrics",
    "get_list_metrics",
    "get_events",
    "get_resource_metrics",
    "get_execution",
    "get_execution_input",
    "get_execution_output",
    "list_executions",
    "search_executions",
    "get_execution_logs",
    "get_deployment_usage",
    "iter_metrics",
    "iter_list_metrics",
    "iter_events",
    "iter_resource_metrics",
)
"""Read functions of :mod:`fleetgauge.read.query`, loaded on first use."""

__all__ = [
    "record_metric_value",
    "record_list_metric_values",
    "log_event",
    "start_execution",
    "finish_execution",
    "set_execution_tags",
    "remove_execution_tags",
    "record_log",
    "LogHandler",
    "Execution",
    "MetricsClient",
    "configure",
    "flush",
    "stats",
    *_READ_API,
    "__version__",
]


def __getattr__(name: str) -> object:
    """The read API, imported on first use (``from fleetgauge import get_metrics`` works)."""
    if name in _READ_API:
        from fleetgauge.read import query

        return getattr(query, name)
    raise AttributeError(f"module 'fleetgauge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
