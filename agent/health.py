"""The agent's own health, as Prometheus metrics: what it sampled, wrote, spooled and dropped.

Names, kinds and help texts come from :data:`fleetgauge.catalogue.AGENT_HEALTH`; every
metric carries the agent's ``worker`` and ``environment`` labels so one
Prometheus can tell the agents of a fleet apart even behind relabelling. The
numbers are plain floats behind a lock, listed as rows for the renderer
(:class:`~fleetgauge.agent.exposition.Rows`): prometheus_client's own metric
classes build a sample object per label set on every scrape, which cost the
agent more than the rest of its ``/metrics`` together. The samples are the
library's, ``*_created`` included while the library's switch
(``disable_created_metrics``) leaves them on.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client import metrics as library
from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from fleetgauge import catalogue
from fleetgauge.agent.exposition import Head, Row, Rows

__all__ = ["Health"]

_SAMPLE_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 2.5)


class _Child:
    """One label set of a health metric: what the agent's code counts, sets or observes."""

    __slots__ = ("_metric", "_key")

    def __init__(self, metric: _Metric, key: tuple[str, ...]) -> None:
        self._metric, self._key = metric, key

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (a counter only goes up)."""
        if amount < 0:
            raise ValueError(f"{self._metric.family}: counters only go up, not by {amount}")
        self._metric.add(self._key, amount)

    def set(self, value: float) -> None:
        """Set a gauge to ``value``."""
        self._metric.put(self._key, float(value))

    def observe(self, value: float) -> None:
        """Count ``value`` in its histogram bucket and in the sum."""
        self._metric.observe(self._key, value)


class _Metric:
    """One health metric: per label set a value (or bucket counts and their sum)."""

    def __init__(self, spec: catalogue.HealthMetric, buckets: Sequence[float] = ()) -> None:
        self.spec = spec
        self.family = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
        self.head: Head = (self.family, spec.description, spec.kind, "")
        self.labelnames = (*catalogue.AGENT_LABELS, *spec.labels)
        self._bounds = (*buckets, math.inf) if spec.kind == "histogram" else ()
        self._les = tuple(floatToGoString(b) for b in self._bounds)
        self._values: dict[tuple[str, ...], list[float]] = {}  # [value] or [*buckets, sum]
        self._created: dict[tuple[str, ...], float] = {}
        self._labels: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}
        self._lock = threading.Lock()

    def labels(self, *values: object) -> _Child:
        """The label set ``values`` (in ``labelnames`` order), shown at 0 from now on."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.family} takes labels {self.labelnames}, got {values!r}")
        key = tuple(str(v) for v in values)
        with self._lock:
            if key not in self._values:
                self._values[key] = [0.0] * (len(self._bounds) + 1 if self._bounds else 1)
                self._created[key] = time.time()
                self._labels[key] = tuple(zip(self.labelnames, key, strict=True))
        return _Child(self, key)

    def add(self, key: tuple[str, ...], amount: float) -> None:
        with self._lock:
            self._values[key][0] += amount

    def put(self, key: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._values[key][0] = value

    def observe(self, key: tuple[str, ...], value: float) -> None:
        with self._lock:
            counts = self._values[key]
            counts[bisect.bisect_left(self._bounds, value)] += 1
            counts[-1] += value

    def total(self) -> float:
        """The value summed over every label set (a counter's or a gauge's)."""
        with self._lock:
            return sum(v[0] for v in self._values.values())

    def rows(self, created: bool) -> list[Row]:
        """The library's samples of this metric, label set by label set."""
        with self._lock:
            values = [(self._labels[k], list(v), self._created[k]) for k, v in self._values.items()]
        name, kind = self.family, self.spec.kind
        rows: list[Row] = []
        for labels, v, since in values:
            if kind == "gauge":
                rows.append((name, labels, v[0]))
                continue
            if kind == "counter":
                rows.append((name + "_total", labels, v[0]))
            else:
                running = 0.0
                for le, n in zip(self._les, v, strict=False):
                    running += n
                    rows.append((name + "_bucket", (*labels, ("le", le)), running))
                rows.append((name + "_count", labels, running))
                rows.append((name + "_sum", labels, v[-1]))
            if created:
                rows.append((name + "_created", labels, since))
        return rows


class Health(Rows):
    """Counters and gauges the sampler and the delivery update; registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, worker: str, environment: str) -> None:
        identity = (worker, environment)
        self._metrics = {
            m.name: _Metric(m, _SAMPLE_BUCKETS if m.kind == "histogram" else ())
            for m in catalogue.AGENT_HEALTH
        }
        made = {
            name: metric if metric.spec.labels else metric.labels(*identity)
            for name, metric in self._metrics.items()
        }
        self.identity = identity
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
        registry.register(self)

    def rows(self) -> Iterator[tuple[Head, Sequence[Row]]]:
        """Every health metric, in the catalogue's order."""
        created = getattr(library, "_use_created", False)  # the library's own switch
        for metric in self._metrics.values():
            yield metric.head, metric.rows(created)

    def describe(self) -> Iterator[Metric]:
        """The families, without samples: the registry's names (``/metrics?name[]=``)."""
        for metric in self._metrics.values():
            yield Metric(*metric.head)

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
        return int(self._metrics[metric.name].total())
