"""The agent's own health, as Prometheus metrics: what it sampled, wrote, spooled and dropped.

Names, kinds and help texts come from :data:`fleetgauge.catalogue.AGENT_HEALTH`; every
metric carries the agent's ``worker`` and ``environment`` labels so one
Prometheus can tell the agents of a fleet apart even behind relabelling.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fleetgauge import catalogue

__all__ = ["Health"]

_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
_SAMPLE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5)


class Health:
    """Counters and gauges the sampler and the delivery update; registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, worker: str, environment: str) -> None:
        identity = (worker, environment)
        made = {}
        for m in catalogue.AGENT_HEALTH:
            extra = {"buckets": _SAMPLE_BUCKETS} if m.kind == "histogram" else {}
            metric = _KINDS[m.kind](
                m.name.removesuffix("_total") if m.kind == "counter" else m.name,
                m.description,
                labelnames=(*catalogue.AGENT_LABELS, *m.labels),
                registry=registry,
                **extra,
            )
            made[m.name] = metric if m.labels else metric.labels(*identity)
        self.identity = identity
        self._registry = registry
        self.samples = made[catalogue.AGENT_SAMPLES.name]
        self.sample_seconds = made[catalogue.AGENT_SAMPLE_SECONDS.name]
        self._collector_errors = made[catalogue.AGENT_COLLECTOR_ERRORS.name]
        self.points_written = made[catalogue.AGENT_POINTS_WRITTEN.name]
        self.points_spooled = made[catalogue.AGENT_POINTS_SPOOLED.name]
        self._points_dropped = made[catalogue.AGENT_POINTS_DROPPED.name]
        self.write_errors = made[catalogue.AGENT_WRITE_ERRORS.name]
        self.last_write = made[catalogue.AGENT_LAST_WRITE.name]
        self.spool_bytes = made[catalogue.AGENT_SPOOL_BYTES.name]
        self.spool_points = made[catalogue.AGENT_SPOOL_POINTS.name]
        self.reserve_points = made[catalogue.AGENT_RESERVE_POINTS.name]
        self.push_requests = made[catalogue.AGENT_PUSH_REQUESTS.name]  # .labels(*identity, code)
        self.push_accepted = made[catalogue.AGENT_PUSH_ACCEPTED.name]
        self.push_unexposed = made[catalogue.AGENT_PUSH_UNEXPOSED.name]
        self._refused = made[catalogue.AGENT_REQUESTS_REFUSED.name]
        self._push_refused = made[catalogue.AGENT_PUSH_REFUSED.name]
        self.push_series = made[catalogue.AGENT_PUSH_SERIES.name]
        self._push_refused.labels(*identity, "series_limit")
        for reason in ("spool_full", "rejected", "invalid", "spool_error"):
            self._points_dropped.labels(*identity, reason)  # visible at 0 from the start
        for code in ("202", "400", "503"):
            self.push_requests.labels(*identity, code)
        for listener in ("push", "metrics"):
            for reason in ("host", "origin", "token", "timeout", "connections"):
                self._refused.labels(*identity, listener, reason)
        for reason in ("backpressure", "body_bytes"):
            self._refused.labels(*identity, "push", reason)

    def track_collectors(self, names: list[str]) -> None:
        """Show each collector's error counter at 0 before any failure."""
        for name in names:
            self._collector_errors.labels(*self.identity, name)

    def collector_failed(self, collector: str) -> None:
        """Count one failed run of a collector."""
        self._collector_errors.labels(*self.identity, collector).inc()

    def refused(self, listener: str, reason: str) -> None:
        """Count one request ``listener`` (push, metrics) refused for ``reason``."""
        self._refused.labels(*self.identity, listener, reason).inc()

    def push_refused(self, reason: str, values: int) -> None:
        """Count pushed values refused for ``reason`` (series_limit)."""
        self._push_refused.labels(*self.identity, reason).inc(values)

    def dropped(self, reason: str, points: int) -> None:
        """Count points given up for ``reason`` (spool_full, rejected, invalid, spool_error)."""
        if points:
            self._points_dropped.labels(*self.identity, reason).inc(points)

    def total(self, metric: catalogue.HealthMetric) -> int:
        """Current value of a counter of this agent, summed over its extra labels."""
        return int(
            sum(
                s.value
                for family in self._registry.collect()
                for s in family.samples
                if s.name == metric.name
                and (s.labels.get(catalogue.WORKER), s.labels.get(catalogue.ENVIRONMENT))
                == self.identity
            )
        )
