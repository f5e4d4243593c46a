"""``/metrics`` for Prometheus: the latest sample of every resource field, plus agent health.

:class:`Snapshot` keeps the points of the last sample of each collector and
renders them at scrape time as one gauge family per (measurement, field), named
by :func:`agent.schema.prometheus_name` (``fleetgauge_`` prefix, percentages
as 0-1 ratios). Labels are ``worker``, ``environment`` and the measurement's
device tags (``gpu``, ``mount``, ...); a device that disappears stops being
exported at the next sample. :class:`MetricsServer` serves the registry over
HTTP, bound to loopback by default; on any other address it requires
``Authorization: Bearer TOKEN`` (Prometheus' ``authorization`` scrape setting).
:class:`PipelineSeries` exposes the values models push: per (deployment,
pipeline, metric) a counter of values, the last value and, for metrics declared
as histograms, their distribution.
"""

from __future__ import annotations

import bisect
import hmac
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from agent import schema
from agent.net import is_loopback
from agent.schema import Point

__all__ = ["Snapshot", "PipelineSeries", "MetricsServer"]


class Snapshot(Collector):
    """Latest points per collector, exposed as gauges (a prometheus-client custom collector)."""

    def __init__(self) -> None:
        self._latest: dict[str, Sequence[Point]] = {}
        self._lock = threading.Lock()

    def update(self, collector: str, points: Sequence[Point]) -> None:
        """Replace what ``collector`` reported last."""
        with self._lock:
            self._latest[collector] = points

    def collect(self) -> Iterator[Metric]:
        """One gauge family per resource field, with a sample per worker/device."""
        with self._lock:
            points = [p for batch in self._latest.values() for p in batch]
        families: dict[tuple[str, str], tuple[GaugeMetricFamily, tuple[str, ...], float]] = {}
        for p in points:
            m = schema.MEASUREMENTS.get(p.measurement)
            if m is None or m.family is not schema.Family.RESOURCE:
                continue
            labels = (schema.WORKER, schema.ENVIRONMENT, *m.device_tags)
            values = tuple(p.tags.get(k, "") for k in labels)
            for name, value in p.fields.items():
                if isinstance(value, str):
                    continue
                entry = families.get((m.name, name))
                if entry is None:
                    f = m.get_field(name)
                    metric, factor = schema.prometheus_name(m, f)
                    help_text = f"{f.description} ({m.name}.{f.name})"
                    family = GaugeMetricFamily(metric, help_text, labels=labels)
                    entry = families[(m.name, name)] = (family, labels, factor)
                entry[0].add_metric(values, float(value) * entry[2])
        for family, _, _ in families.values():
            yield family


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bounds for a metric declared without its own (prometheus_client's defaults)."""
_PIPELINE_MEASUREMENTS = frozenset({schema.PIPELINE_METRIC.name, schema.LIST_METRIC.name})


class _Series:
    __slots__ = ("count", "last", "buckets", "sum")

    def __init__(self, bounds: tuple[float, ...] | None) -> None:
        self.count, self.last, self.sum = 0, 0.0, 0.0
        self.buckets = [0] * (len(bounds) + 1) if bounds is not None else None


class PipelineSeries(Collector):
    """Per-metric series of pushed values, kept as plain numbers and rendered at scrape time.

    At most ``max_series`` label sets are kept, so a client that invents a new
    deployment per request cannot make ``/metrics`` unbounded; values beyond it
    are still stored, only not exposed (and counted by the caller).
    """

    def __init__(
        self,
        worker: str,
        environment: str,
        histograms: Mapping[str, tuple[float, ...]] | None = None,
        max_series: int = 1000,
    ) -> None:
        self._identity = (worker, environment)
        self._bounds = {m: tuple(b) or DEFAULT_BUCKETS for m, b in (histograms or {}).items()}
        self._max_series = max_series
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._lock = threading.Lock()

    def record(self, points: Iterable[Point]) -> int:
        """Count pushed pipeline/list values; returns how many were not exposed (limit)."""
        unexposed = 0
        deployment, pipeline, metric = schema.PUSH_LABELS
        with self._lock:
            for p in points:
                if p.measurement not in _PIPELINE_MEASUREMENTS:
                    continue
                tags = p.tags
                key = (tags.get(deployment, ""), tags.get(pipeline, ""), tags[metric])
                s = self._series.get(key)
                if s is None:
                    if len(self._series) >= self._max_series:
                        unexposed += 1
                        continue
                    s = self._series[key] = _Series(self._bounds.get(key[2]))
                value = p.fields["value"]
                s.count += 1
                s.last = value
                if s.buckets is not None:
                    s.buckets[bisect.bisect_left(self._bounds[key[2]], value)] += 1
                    s.sum += value
        return unexposed

    def collect(self) -> Iterator[Metric]:
        """The counter, last-value gauge and declared histograms, one sample per label set."""
        with self._lock:
            series = [
                (k, s.count, s.last, list(s.buckets or []), s.sum) for k, s in self._series.items()
            ]
        if not series:  # nothing pushed yet: no empty families on every scrape
            return
        labels = (*schema.AGENT_LABELS, *schema.PUSH_LABELS)
        counts = CounterMetricFamily(
            schema.PIPELINE_VALUES.name.removesuffix("_total"),
            schema.PIPELINE_VALUES.description,
            labels=labels,
        )
        last = GaugeMetricFamily(
            schema.PIPELINE_LAST_VALUE.name, schema.PIPELINE_LAST_VALUE.description, labels=labels
        )
        histogram = HistogramMetricFamily(
            schema.PIPELINE_VALUE.name, schema.PIPELINE_VALUE.description, labels=labels
        )
        for key, count, value, buckets, total in series:
            values = (*self._identity, *key)
            counts.add_metric(values, count)
            last.add_metric(values, value)
            if buckets:
                bounds = self._bounds[key[2]]
                cumulative, running = [], 0
                for bound, n in zip((*map(str, bounds), "+Inf"), buckets, strict=True):
                    running += n
                    cumulative.append((bound, running))
                histogram.add_metric(values, cumulative, total)
        yield counts
        yield last
        if histogram.samples:
            yield histogram


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per event elsewhere
        pass


class MetricsServer:
    """Serves ``/metrics`` from ``registry`` on a background thread."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, token: str | None = None
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"metrics_host {host!r} is not loopback: set a token"
                " (FLEETGAUGE_METRICS_TOKEN or metrics_token in the config file)"
            )
        self._app = make_wsgi_app(registry)
        self._token = token.encode() if token else None
        self._httpd = make_server(
            host,
            port,
            self._wsgi,
            server_class=_Server6 if ":" in host else _Server,
            handler_class=_QuietHandler,
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self._httpd.server_address[1]

    def _wsgi(self, environ: dict, start_response) -> Iterable[bytes]:  # noqa: ANN001
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"fleetgauge agent: metrics are at /metrics\n"]
        if self._token is not None:
            given = environ.get("HTTP_AUTHORIZATION", "").encode()
            if not hmac.compare_digest(given, b"Bearer " + self._token):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
                )
                return [b"missing or wrong bearer token\n"]
        return self._app(environ, start_response)

    def start(self) -> None:
        """Start answering scrapes."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
