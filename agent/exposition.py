"""``/metrics`` for Prometheus: the latest sample of every resource field, plus agent health.

:class:`Snapshot` keeps the points of the last sample of each collector and
renders them at scrape time as one gauge family per (measurement, field), named
by :func:`fleetgauge.catalogue.prometheus_name` (``fleetgauge_`` prefix, percentages
as 0-1 ratios). Labels are ``worker``, ``environment`` and the measurement's
device tags (``gpu``, ``mount``, ...); a device that disappears stops being
exported at the next sample. Both, and the agent's health, hand the renderer
plain rows (:class:`Rows`) rather than prometheus_client's sample objects, which
cost more to build than the text costs to write. :class:`MetricsServer` serves the registry over
HTTP/1.1 (a scraper's connection is kept alive), bound to loopback by default; on
any other address it requires ``Authorization: Bearer TOKEN`` (Prometheus'
``authorization`` scrape setting), and a ``Host`` or ``Origin`` it does not answer
to gets 403 (:class:`~fleetgauge.agent.listener.ListenerGuard`).
:class:`PipelineSeries` exposes the values models push: per (deployment,
pipeline, metric) a counter of values, the last value and, for metrics declared
as histograms, their distribution.
"""

from __future__ import annotations

import bisect
import gzip
import logging
import math
import os
import resource
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from http.server import HTTPServer
from operator import itemgetter
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import unquote

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app, openmetrics
from prometheus_client.core import (
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fleetgauge import catalogue
from fleetgauge.agent.connections import (
    DEFAULT_LIMITS,
    ConnectionWatch,
    Limits,
    WatchedHandler,
    WatchedServer,
)
from fleetgauge.agent.listener import ListenerGuard
from fleetgauge.catalogue import Point
from fleetgauge.procinfo import TICKS_PER_S, boot_time
from fleetgauge.stores.runs import series_runs

__all__ = [
    "Snapshot",
    "PipelineSeries",
    "MetricsServer",
    "Renderer",
    "Registry",
    "Rows",
    "SelfProcess",
]

log = logging.getLogger("fleetgauge.agent.metrics")

_PAGE_BYTES = resource.getpagesize()  # as prometheus_client's process collector

Labels = tuple[tuple[str, str], ...]
Head = tuple[str, str, str, str]
"""A family's name, help text, type (counter, gauge, histogram) and unit."""
Row = tuple[str, Labels, float]
"""One sample: its name (``family_total``, ``family_bucket``...), its labels, its value."""
PrefixOf = Callable[[str, Head, str, Labels], str]
"""(kind, family head, sample name, labels) -> the sample line up to its value."""


class Rows(Collector):
    """A collector that lists its families as plain rows; :meth:`collect` builds the library's
    objects from the same rows, so both renderings come from one source."""

    def rows(self) -> Iterable[tuple[Head, Sequence[Row]]]:
        """Each family's head and samples, in the order prometheus_client would write them."""
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        """The rows as prometheus_client metric families (filters, other formats)."""
        for head, samples in self.rows():
            family = Metric(*head)
            for name, labels, value in samples:
                family.add_sample(name, dict(labels), value)
            yield family


class Registry(CollectorRegistry):
    """prometheus_client's registry, which also keeps its collectors in order for
    :class:`Renderer` (a :class:`Rows` collector is rendered from its rows)."""

    def __init__(self) -> None:
        super().__init__()
        self.collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        """Register ``collector`` with the library and list it."""
        super().register(collector)
        self.collectors.append(collector)

    def unregister(self, collector: Collector) -> None:
        """Unregister ``collector`` and unlist it."""
        super().unregister(collector)
        self.collectors.remove(collector)


class SelfProcess(Rows):
    """The agent's own ``process_*`` families, as prometheus_client's ``ProcessCollector``
    writes them (names, help texts, order and values).

    The library's collector reads ``/proc/self/limits`` on every scrape for the open-files
    limit and builds a family object per value; this reads ``/proc/self/stat`` once with
    ``os.read`` and takes the limit from ``getrlimit``, the call the kernel answers that file
    from. Nothing is written where there is no procfs (the library's behaviour too).
    """

    _FAMILIES = (
        ("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge"),
        ("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge"),
        (
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
        ),
        ("process_cpu_seconds", "Total user and system CPU time spent in seconds.", "counter"),
        ("process_open_fds", "Number of open file descriptors.", "gauge"),
        ("process_max_fds", "Maximum number of open file descriptors.", "gauge"),
    )

    def __init__(self, proc: str = "/proc") -> None:
        self._stat, self._fds = f"{proc}/self/stat", f"{proc}/self/fd"
        self._boot = boot_time(proc)
        self._heads = [(name, doc, kind, "") for name, doc, kind in self._FAMILIES]

    def rows(self) -> Iterable[tuple[Head, Sequence[Row]]]:
        """The six families (the first four, or none, where ``/proc`` cannot be read)."""
        if not self._boot:
            return []
        values: list[float] = []
        try:
            fd = os.open(self._stat, os.O_RDONLY)
            try:
                parts = os.read(fd, 4096).split(b")")[-1].split()
            finally:
                os.close(fd)
            values += (
                float(parts[20]),
                float(parts[21]) * _PAGE_BYTES,
                float(parts[19]) / TICKS_PER_S + self._boot,
                float(parts[11]) / TICKS_PER_S + float(parts[12]) / TICKS_PER_S,
            )
        except OSError:
            pass
        heads = self._heads[:4] if values else []
        try:
            values += (float(len(os.listdir(self._fds))), _open_files_limit())
            heads += self._heads[4:]
        except OSError:
            pass
        return [
            (head, [(head[0] + ("_total" if head[2] == "counter" else ""), (), value)])
            for head, value in zip(heads, values, strict=True)
        ]


def _open_files_limit() -> float:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return math.inf if soft == resource.RLIM_INFINITY else float(soft)


class Snapshot(Rows):
    """Latest points per collector, exposed as gauges (a prometheus-client custom collector)."""

    def __init__(self) -> None:
        self._latest: dict[str, Sequence[Point]] = {}
        self._lock = threading.Lock()
        self._heads: dict[tuple[str, str], tuple[Head, float]] = {}
        # (kind, measurement, label values) -> field -> (family, head, line prefix, factor)
        self._templates: dict[tuple[str, str, tuple[str, ...]], dict[str, tuple]] = {}

    def update(self, collector: str, points: Sequence[Point]) -> None:
        """Replace what ``collector`` reported last."""
        with self._lock:
            self._latest[collector] = points

    def rows(self) -> Iterator[tuple[Head, Sequence[Row]]]:
        """One gauge family per resource field, with a sample per worker/device."""
        points = self._points()
        families: dict[tuple[str, str], tuple[Head, list[Row], float]] = {}
        for p, m, names in _exported(points):
            items = _items(p.tags, names)
            for name, value in p.fields.items():
                if isinstance(value, str):
                    continue
                entry = families.get((m.name, name))
                if entry is None:
                    head, factor = self._head(m, name)
                    entry = families[(m.name, name)] = (head, [], factor)
                entry[1].append((entry[0][0], items, float(value) * entry[2]))
        for head, samples, _ in families.values():
            yield head, samples
        yield from _gpu_rows(points)

    def lines(self, kind: str, prefix: PrefixOf) -> Iterator[tuple[Head, list[str]]]:
        """What :meth:`rows` holds, as ``kind`` text lines: the renderer's fast path.

        Per (measurement, device) and field the family and the line's prefix are
        kept, so a sample costs one lookup and the value's text.
        """
        points = self._points()
        templates = self._templates
        if len(templates) > _MAX_CACHED_LINES:  # devices come and go: start afresh
            templates.clear()
        families: dict[tuple[str, str], tuple[Head, list[str]]] = {}
        for p, m, names in _exported(points):
            tags = p.tags
            values = tuple([tags.get(k, "") for k in names])
            known = templates.get((kind, m.name, values))
            if known is None:
                known = templates[(kind, m.name, values)] = {}
            for name, value in p.fields.items():
                t = known.get(name)
                if t is None:
                    if isinstance(value, str):
                        continue
                    head, factor = self._head(m, name)
                    line = prefix(kind, head, head[0], tuple(zip(names, values, strict=True)))
                    t = known[name] = ((m.name, name), head, line, factor)
                family = families.get(t[0])
                if family is None:
                    family = families[t[0]] = (t[1], [])
                text = repr(float(value) * t[3])  # floatToGoString's text for most values
                dot = text.find(".")
                if not 0 < dot <= 6:
                    text = floatToGoString(float(value) * t[3])
                family[1].append(f"{t[2]}{text}\n")
        yield from families.values()
        for head, samples in _gpu_rows(points):
            yield (
                head,
                [f"{prefix(kind, head, n, ls)}{floatToGoString(v)}\n" for n, ls, v in samples],
            )

    def _points(self) -> list[Point]:
        with self._lock:
            return [p for batch in self._latest.values() for p in batch]

    def _head(self, m: catalogue.Measurement, name: str) -> tuple[Head, float]:
        """The gauge family of field ``name`` of ``m`` and the factor to its unit (cached)."""
        known = self._heads.get((m.name, name))
        if known is None:
            f = m.get_field(name)
            metric, factor = catalogue.prometheus_name(m, f)
            head = (metric, f"{f.description} ({m.name}.{f.name})", "gauge", "")
            known = self._heads[(m.name, name)] = (head, factor)
        return known


_GPU_LABELS = (catalogue.WORKER, catalogue.ENVIRONMENT, catalogue.GPU)
_GPU_PROCESS_MEMORY = catalogue.GPU_PROCESS.get_field("memory_used_bytes").name


def _items(tags: Mapping[str, str], names: Sequence[str]) -> Labels:
    """The labels ``names`` with their values in ``tags`` (empty where missing)."""
    return tuple((k, tags.get(k, "")) for k in names)


_GPU_INFO_HELP = "1 per GPU, labelled with what identifies it (join by gpu_uuid)"


def _exported(
    points: Sequence[Point],
) -> Iterator[tuple[Point, catalogue.Measurement, tuple[str, ...]]]:
    """The points whose fields are gauges on /metrics, with their measurement and labels:
    resource measurements but a process's (per pid: in the store only) and a GPU process's
    (summed per GPU by :func:`_gpu_rows`)."""
    for p in points:
        m = catalogue.MEASUREMENTS.get(p.measurement)
        if m is None or m.family is not catalogue.Family.RESOURCE or m in _NOT_GAUGES:
            continue
        names = _LABELS.get(m.name)
        if names is None:
            names = _LABELS[m.name] = (catalogue.WORKER, catalogue.ENVIRONMENT, *m.device_tags)
        yield p, m, names


_NOT_GAUGES = (catalogue.GPU_PROCESS, catalogue.PROCESS_MEASUREMENT)
_LABELS: dict[str, tuple[str, ...]] = {}


def _gpu_rows(points: Sequence[Point]) -> Iterator[tuple[Head, Sequence[Row]]]:
    """An info series per GPU, and per GPU how many processes hold memory on it and how
    much they hold together (a pid label would churn series)."""
    info_labels = (*_GPU_LABELS, *catalogue.GPU_INFO_LABELS)
    info: list[Row] = []
    processes: dict[Labels, list[float]] = {}  # per GPU: [count, memory]
    for p in points:
        if p.measurement == catalogue.GPU_MEASUREMENT.name:
            info.append((catalogue.GPU_INFO_METRIC, _items(p.tags, info_labels), 1.0))
        elif p.measurement == catalogue.GPU_PROCESS.name:
            total = processes.setdefault(_items(p.tags, _GPU_LABELS), [0, 0])
            total[0] += 1
            total[1] += float(p.fields.get(_GPU_PROCESS_MEMORY, 0.0))
    if info:
        yield (catalogue.GPU_INFO_METRIC, _GPU_INFO_HELP, "gauge", ""), info
    if not processes:
        return
    field = catalogue.GPU_PROCESS.fields[0]
    name, factor = catalogue.prometheus_name(catalogue.GPU_PROCESS, field)
    count = catalogue.GPU_PROCESSES_METRIC
    yield (
        (count, "Processes holding memory on the GPU", "gauge", ""),
        [(count, key, float(n)) for key, (n, _) in processes.items()],
    )
    yield (
        (name, f"{field.description}, all processes on the GPU together", "gauge", ""),
        [(name, key, used * factor) for key, (_, used) in processes.items()],
    )


DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bounds for a metric declared without its own (prometheus_client's defaults)."""
_PIPELINE_MEASUREMENTS = frozenset({catalogue.PIPELINE_METRIC.name, catalogue.LIST_METRIC.name})
_MEASUREMENT = itemgetter(0)


class _Series:
    __slots__ = ("count", "last", "buckets", "sum", "marked")

    def __init__(self, bounds: tuple[float, ...] | None) -> None:
        self.count, self.last, self.sum = 0, 0.0, 0.0
        self.marked = 0  # count at the last forget_idle(): unchanged means idle since
        self.buckets = [0] * (len(bounds) + 1) if bounds is not None else None


class PipelineSeries(Rows):
    """Per-metric series of pushed values, kept as plain numbers and rendered at scrape time.

    At most ``max_series`` label sets are kept, so a client that invents a new
    deployment per request cannot make ``/metrics`` unbounded; values beyond it
    are still stored, only not exposed (and counted by the caller). A label set
    without a value between two calls of :meth:`forget_idle` (the agent calls it
    every ``push_series_idle``) leaves ``/metrics``; if it comes back its counter
    starts again from zero, which Prometheus' ``rate()`` reads as a reset.
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
        metric = catalogue.PUSH_LABELS[2]
        last_tags: object = None  # a run of one series' points shares its tags object
        s: _Series | None = None
        with self._lock:
            for run in series_runs(points):
                measurement, tags = run[0][0], run[0][1]
                if (
                    len(run) > 1
                    and measurement in _PIPELINE_MEASUREMENTS
                    and len(set(map(_MEASUREMENT, run))) == 1
                ):  # one series: counted whole, its values binned when it has buckets
                    s = self._series_of(tags)
                    if s is None:
                        unexposed += len(run)
                    else:
                        s.count += len(run)
                        s.last = run[-1][2]["value"]
                        if s.buckets is not None:
                            self._bin(s, tags[metric], [p[2]["value"] for p in run])
                    last_tags = None
                    continue
                for measurement, tags, fields, _ in run:
                    if measurement not in _PIPELINE_MEASUREMENTS:
                        continue
                    if tags is not last_tags:
                        last_tags, s = tags, self._series_of(tags)
                    if s is None:
                        unexposed += 1
                        continue
                    s.count += 1
                    s.last = fields["value"]
                    if s.buckets is not None:
                        self._bin(s, tags[metric], (fields["value"],))
        return unexposed

    def _series_of(self, tags: Mapping[str, str]) -> _Series | None:
        """The series of these tags, new if there is room for it; None past the limit."""
        deployment, pipeline, metric = catalogue.PUSH_LABELS
        key = (tags.get(deployment, ""), tags.get(pipeline, ""), tags[metric])
        s = self._series.get(key)
        if s is None and len(self._series) < self._max_series:
            s = self._series[key] = _Series(self._bounds.get(key[2]))
        return s

    def _bin(self, s: _Series, metric: str, values: Iterable[float]) -> None:
        bounds, buckets = self._bounds[metric], s.buckets
        assert buckets is not None
        for value in values:
            buckets[bisect.bisect_left(bounds, value)] += 1
            s.sum += value

    def forget_idle(self) -> int:
        """Drop the label sets that got no value since the last call; returns how many."""
        with self._lock:
            kept = {k: s for k, s in self._series.items() if s.count != s.marked}
            dropped = len(self._series) - len(kept)
            for s in kept.values():
                s.marked = s.count
            self._series = kept
        return dropped

    def rows(self) -> Iterator[tuple[Head, Sequence[Row]]]:
        """The counter, last-value gauge and declared histograms, one sample per label set."""
        with self._lock:
            series = [
                (k, s.count, s.last, list(s.buckets or []), s.sum) for k, s in self._series.items()
            ]
        if not series:  # nothing pushed yet: no empty families on every scrape
            return
        names = (*catalogue.AGENT_LABELS, *catalogue.PUSH_LABELS)
        counter = catalogue.PIPELINE_VALUES.name.removesuffix("_total")
        gauge, histogram = catalogue.PIPELINE_LAST_VALUE.name, catalogue.PIPELINE_VALUE.name
        counts: list[Row] = []
        last: list[Row] = []
        distributions: list[Row] = []
        for key, count, value, buckets, total in series:
            labels = tuple(zip(names, (*self._identity, *key), strict=True))
            counts.append((counter + "_total", labels, float(count)))
            last.append((gauge, labels, value))
            if buckets:
                bounds = self._bounds[key[2]]
                running = 0
                for bound, n in zip((*map(str, bounds), "+Inf"), buckets, strict=True):
                    running += n
                    distributions.append((histogram + "_bucket", (*labels, ("le", bound)), running))
                if bounds[0] >= 0:  # as the library: no count and sum beside negative buckets
                    distributions.append((histogram + "_count", labels, running))
                    distributions.append((histogram + "_sum", labels, total))
        yield (counter, catalogue.PIPELINE_VALUES.description, "counter", ""), counts
        yield (gauge, catalogue.PIPELINE_LAST_VALUE.description, "gauge", ""), last
        if distributions:
            yield (histogram, catalogue.PIPELINE_VALUE.description, "histogram", ""), distributions


class _One(Collector):
    """A collector of one family: the library formats a family's header or one sample."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


_TEXT, _OPENMETRICS = "text", "openmetrics"
_ENCODERS = {_TEXT: generate_latest, _OPENMETRICS: openmetrics.exposition.generate_latest}
_CONTENT_TYPES = {
    CONTENT_TYPE_PLAIN_0_0_4: _TEXT,  # no Accept, or text/plain;version=0.0.4
    openmetrics.exposition.CONTENT_TYPE_LATEST: _OPENMETRICS,  # no version asked
    f"{openmetrics.exposition.CONTENT_TYPE_LATEST}; escaping=underscores": _OPENMETRICS,
}
_OM_ONLY_SUFFIXES = ("_created", "_gsum", "_gcount")  # text format moves these: not cached
_MAX_CACHED_LINES = 20_000


class Renderer:
    """The registry in Prometheus' text format or OpenMetrics 1.0, line prefixes cached.

    prometheus_client validates and escapes every metric and label name of
    every sample on every scrape, most of the agent's scrape cost. Here each
    family header and each sample's ``name{labels} `` prefix is formatted once,
    by the library itself (a one-sample registry through its own encoder, so
    the text is the library's to the byte), and a scrape only formats the
    values. A :class:`Rows` collector of a :class:`Registry` is read as plain
    rows, never as the library's objects. :meth:`render` returns None for
    anything beyond plain families (timestamps, exemplars, native histograms,
    info/stateset types): the caller then uses the library's encoder as it is.
    """

    def __init__(self, registry: Collector) -> None:
        self._sources: Sequence[Collector] = getattr(registry, "collectors", (registry,))
        self._heads: dict[tuple, str] = {}
        self._prefixes: dict[tuple, str] = {}

    def forget(self) -> None:
        """Forget the formatted sample prefixes (label sets come and go)."""
        self._prefixes.clear()

    def render(self, kind: str) -> bytes | None:
        """Every family of the registry as ``kind`` (``text`` or ``openmetrics``), or None."""
        out: list[str] = []
        prefixes = self._prefixes
        if len(prefixes) > _MAX_CACHED_LINES:  # label sets come and go: start afresh
            self.forget()
        for source in self._sources:
            if isinstance(source, Snapshot):
                for head, lines in source.lines(kind, self._line_prefix):
                    out.append(self._head(kind, head))
                    out.extend(lines)
                continue
            families = source.rows() if isinstance(source, Rows) else _plain_rows(source)
            if families is None:
                return None
            for head, samples in families:
                text = self._head(kind, head)
                out.append(text)
                for name, labels, value in samples:
                    line = (kind, head[0], name, labels)
                    prefix = prefixes.get(line)
                    if prefix is None:
                        prefix = self._prefix(kind, head, name, labels, text)
                        if prefix is None:
                            return None
                        prefixes[line] = prefix
                    out.append(prefix)
                    number = repr(value)  # floatToGoString's answer for most values, in C
                    dot = number.find(".")
                    out.append(number if 0 < dot <= 6 else floatToGoString(value))
                    out.append("\n")
        if kind == _OPENMETRICS:
            out.append("# EOF\n")
        return "".join(out).encode()

    def _head(self, kind: str, head: Head) -> str:
        """The ``# HELP``/``# TYPE`` (``# UNIT``) lines of a family, as the library writes them."""
        key = (kind, *head)
        text = self._heads.get(key)
        if text is None:
            text = self._heads[key] = self._format(kind, Metric(*head))
        return text

    def _line_prefix(self, kind: str, head: Head, name: str, labels: Labels) -> str:
        """A gauge sample's ``name{labels} ``, cached (:class:`Snapshot` keeps its own)."""
        line = (kind, head[0], name, labels)
        prefix = self._prefixes.get(line)
        if prefix is None:
            prefix = self._prefix(kind, head, name, labels, self._head(kind, head))
            assert prefix is not None, "a gauge's sample is always a plain line"
            self._prefixes[line] = prefix
        return prefix

    def _prefix(self, kind: str, head: Head, name: str, labels: Labels, text: str) -> str | None:
        """``name{labels} `` as the library writes it below the header ``text``, or None."""
        if kind == _TEXT and name in [head[0] + x for x in _OM_ONLY_SUFFIXES]:
            return None  # the text format moves these to families of their own
        one = Metric(*head)
        one.add_sample(name, dict(labels), 0.0)
        line = self._format(kind, one).removeprefix(text)
        return line[: line.rindex(" ") + 1]

    @staticmethod
    def _format(kind: str, metric: Metric) -> str:
        text = _ENCODERS[kind](_One(metric)).decode()
        return text.removesuffix("# EOF\n") if kind == _OPENMETRICS else text


def _plain_rows(collector: Collector) -> list[tuple[Head, Sequence[Row]]] | None:
    """A library collector's families as rows; None if one is beyond plain samples."""
    families: list[tuple[Head, Sequence[Row]]] = []
    for metric in collector.collect():
        if metric.type not in ("counter", "gauge", "histogram", "summary", "unknown"):
            return None
        samples: list[Row] = []
        for s in metric.samples:
            if s.timestamp is not None or s.exemplar or s.native_histogram or s.value is None:
                return None
            samples.append((s.name, tuple(s.labels.items()), s.value))
        families.append(((metric.name, metric.documentation, metric.type, metric.unit), samples))
    return families


class _Server(WatchedServer, ThreadingMixIn, HTTPServer):
    daemon_threads = True
    app: Callable[[dict, Callable], Iterable[bytes]]

    def handle_error(self, request: object, client_address: object) -> None:
        """A scraper that hangs up mid-answer is routine: one debug line, not a traceback."""
        log.debug("metrics connection from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WatchedHandler):
    """HTTP/1.1 with kept-alive connections (Prometheus keeps its scrape connection open;
    wsgiref answers HTTP/1.0 and closes), each request answered by the server's WSGI
    ``app`` with a ``Content-Length``."""

    protocol_version = "HTTP/1.1"
    server: _Server  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        # without this, Nagle's algorithm and the client's delayed ACK hold back the
        # last segment of an answer on a kept-alive connection for tens of milliseconds
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def __getattr__(self, name: str) -> Any:
        """Every method goes to the app (which answers 405 to those it does not serve)."""
        if name.startswith("do_"):
            return self._answer
        raise AttributeError(name)

    def _environ(self) -> dict[str, Any]:
        """What a WSGI app reads of the request, as wsgiref builds it (a header sent
        twice is joined with a comma, so a second ``Host`` cannot hide behind the first)."""
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": self.request_version,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.replace("-", "_").upper()
            value = value.strip()
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _answer(self) -> None:
        answer: list[Any] = []
        try:
            body = b"".join(
                self.server.app(
                    self._environ(),
                    lambda status, headers, exc_info=None: answer.extend((status, headers)),
                )
            )
            status, headers = answer[-2:]
        except Exception:  # a collector that raised: the scrape fails, the listener stays
            self.close_connection = True
            status, headers = "500 Internal Server Error", [("Content-Type", "text/plain")]
            body = b"the agent failed to render its metrics: see its log\n"
            log.exception("rendering /metrics failed")
        if (
            self.command not in ("GET", "HEAD")
            or "Content-Length" in self.headers
            or "Transfer-Encoding" in self.headers
        ):
            self.close_connection = True  # a request body is never read: no next request
        code, _, phrase = status.partition(" ")
        self.send_response(int(code), phrase)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # one line per event elsewhere
        pass


class MetricsServer:
    """Serves ``/metrics`` from ``registry`` on a background thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        token: str | None = None,
        allowed_hosts: tuple[str, ...] = (),
        on_refusal: Callable[[str, str], None] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._guard = ListenerGuard("metrics", host, token, allowed_hosts, on_refusal)
        self._watch = ConnectionWatch("metrics", limits, on_refusal)
        self._app = make_wsgi_app(registry)
        self._renderer = Renderer(registry)
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self._httpd.app = self._wsgi
        self._httpd.watch = self._watch
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="metrics-http", daemon=True
        )

    def forget(self) -> None:
        """Forget formatted label sets (called with the agent's idle-series sweep)."""
        self._renderer.forget()

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self._httpd.server_address[1]

    def _wsgi(self, environ: dict, start_response) -> Iterable[bytes]:  # noqa: ANN001
        reason = self._guard.refusal(environ.get("HTTP_HOST"), environ.get("HTTP_ORIGIN"))
        if reason is not None:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [reason.encode() + b"\n"]
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"fleetgauge agent: metrics are at /metrics\n"]
        if not self._guard.allows(environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"missing or wrong bearer token\n"]
        return self._scrape(environ, start_response) or self._app(environ, start_response)

    def _scrape(self, environ: dict, start_response) -> list[bytes] | None:  # noqa: ANN001
        """A plain GET in a format :class:`Renderer` writes; None leaves it to the library."""
        if environ.get("REQUEST_METHOD") != "GET" or "name[]" in environ.get("QUERY_STRING", ""):
            return None
        _, content_type = choose_encoder(environ.get("HTTP_ACCEPT"))
        kind = _CONTENT_TYPES.get(content_type)
        output = self._renderer.render(kind) if kind else None
        if output is None:
            return None
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING")):
            output = gzip.compress(output, compresslevel=1)  # a fifth of level 9's CPU
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    def start(self) -> None:
        """Start answering scrapes."""
        self._watch.start()
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and release the port."""
        self._watch.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
