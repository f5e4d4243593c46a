"""``/metrics`` for Prometheus: the latest sample of every resource field, plus agent health.

:class:`Snapshot` keeps the points of the last sample of each collector and
renders them at scrape time as one gauge family per (measurement, field), named
by :func:`agent.schema.prometheus_name` (``fleetgauge_`` prefix, percentages
as 0-1 ratios). Labels are ``worker``, ``environment`` and the measurement's
device tags (``gpu``, ``mount``, ...); a device that disappears stops being
exported at the next sample. :class:`MetricsServer` serves the registry over
HTTP, bound to loopback by default; on any other address it requires
``Authorization: Bearer TOKEN`` (Prometheus' ``authorization`` scrape setting).
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent import schema
from agent.schema import Point

__all__ = ["Snapshot", "MetricsServer", "is_loopback"]


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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses, where no token is needed."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
