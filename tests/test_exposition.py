"""/metrics renders exactly what prometheus_client renders, only faster.

The agent formats each family header and sample prefix once (through the
library's own encoder) and then only the values per scrape. These tests hold
its output to the library's, byte for byte, in both formats, over a registry
with every kind of family the agent exposes and label values that need
escaping; and they scrape a real MetricsServer over HTTP as Prometheus does.
"""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator

import prometheus_client.metrics
import pytest
from prometheus_client import (
    CollectorRegistry,
    ProcessCollector,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
    openmetrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from fleetgauge.agent.exposition import (
    MetricsServer,
    PipelineSeries,
    Registry,
    Renderer,
    SelfProcess,
    Snapshot,
)
from fleetgauge.agent.health import Health
from fleetgauge.catalogue import PIPELINE_VALUES, Point

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TRICKY = 'a "quoted" \\ back\nslash, wörker'


def _registry(
    registry: CollectorRegistry | None = None,
) -> tuple[CollectorRegistry, Snapshot, PipelineSeries, Health]:
    registry = registry if registry is not None else CollectorRegistry()
    health = Health(registry, TRICKY, "prod")
    health.track_collectors(["cpu", "disk"])
    snapshot = Snapshot()
    registry.register(snapshot)
    series = PipelineSeries(TRICKY, "prod", {"latency": (0.1, 1.0)})
    registry.register(series)
    return registry, snapshot, series, health


def _sample(snapshot: Snapshot, series: PipelineSeries, health: Health, k: float) -> None:
    tags = {"worker": TRICKY, "environment": "prod"}
    snapshot.update("cpu", [Point("cpu", tags, {"usage_percent": 12.5 * k, "load1": 0.25 * k}, 1)])
    snapshot.update(
        "disk",
        [
            Point("disk", {**tags, "mount": m}, {"used_percent": 40.0 + k, "used_bytes": 1e12}, 1)
            for m in ("/", "/data 2")
        ],
    )
    points = [
        Point(
            "pipeline_metric",
            {"environment": "prod", "deployment": "fraud", "metric": name},
            {"value": value * k},
            1,
        )
        for name, value in (("latency", 0.05), ("latency", 3.0), ("score", float("inf")))
    ]
    series.record(points)
    health.samples.inc()
    health.dropped("spool_full", 3)
    health.collector_failed("disk")
    health.sample_seconds.observe(0.002 * k)
    health.push_requests.labels(*health.identity, "202").inc()


@pytest.fixture
def no_created() -> Iterator[None]:
    """As the agent runs: ``fleetgauge agent`` turns the *_created series off."""
    disable_created_metrics()
    yield
    enable_created_metrics()


@pytest.mark.parametrize(
    "kind, library",
    [("text", generate_latest), ("openmetrics", openmetrics.exposition.generate_latest)],
)
def test_renderer_writes_what_prometheus_client_writes(kind, library, no_created) -> None:  # noqa: ANN001
    registry, snapshot, series, health = _registry()
    renderer = Renderer(registry)
    assert renderer.render(kind) == library(registry)  # families without samples yet
    for k in (1.0, 2.0, -0.5):  # new values through cached prefixes, a device coming and going
        _sample(snapshot, series, health, k)
        ours = renderer.render(kind)
        assert ours == library(registry)
        assert b'mount="/data 2"' in ours and b"fleetgauge_pipeline_value_bucket" in ours
    snapshot.update("disk", [])
    assert renderer.render(kind) == library(registry)
    assert b'mount="/data 2"' not in renderer.render(kind)


@pytest.mark.parametrize("created", [False, True])
@pytest.mark.parametrize(
    "kind, library",
    [("text", generate_latest), ("openmetrics", openmetrics.exposition.generate_latest)],
)
def test_the_agents_registry_renders_from_rows_what_the_library_writes(kind, library, created):  # noqa: ANN001, ANN201
    """The agent's :class:`Registry`: its own collectors are read as rows, the library's
    process collector as the library's objects, the text the same as the library's."""
    was = prometheus_client.metrics._use_created
    (enable_created_metrics if created else disable_created_metrics)()
    try:
        registry = Registry()
        ProcessCollector(registry=registry)
        registry, snapshot, series, health = _registry(registry)
        renderer = Renderer(registry)
        for k in (1.0, 2.0):
            _sample(snapshot, series, health, k)
            ids = {"worker": TRICKY, "environment": "prod", "gpu": "0", "gpu_uuid": "GPU-1"}
            gpu = Point("gpu", ids, {"utilization_percent": 97.0 * k, "energy_joules": 9e9}, 0)
            held = [
                Point("gpu_process", {**ids, "pid": str(pid)}, {"memory_used_bytes": 6e9 * k}, 0)
                for pid in (41872, 41999)
            ]
            snapshot.update("gpu", [gpu, *held])
            ours = renderer.render(kind)
            if created and kind == "text":  # moved to families of their own: the library's
                assert ours is None
                continue
            assert ours is not None
            # the process collector reads the clock and /proc: equal but for those values
            assert _without_process(ours) == _without_process(library(registry))
            assert b"process_cpu_seconds_total " in ours
            assert b'fleetgauge_agent_collector_errors_total{collector="disk"' in ours
            assert (b"fleetgauge_agent_samples_created{" in ours) == created
            assert b'fleetgauge_pipeline_value_bucket{deployment="fraud"' in ours
            assert b"fleetgauge_gpu_info{" in ours and b"fleetgauge_gpu_processes{" in ours
    finally:
        (enable_created_metrics if was else disable_created_metrics)()


def _without_process(text: bytes) -> list[bytes]:
    return [line for line in text.splitlines() if not line.startswith(b"process_")]


class _Stamped(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("stamped", "a sample with its own time")
        g.add_metric([], 1.0, timestamp=1_700_000_000)
        yield g


def test_created_series_in_the_text_format_are_left_to_the_library() -> None:
    registry, snapshot, series, health = _registry()
    _sample(snapshot, series, health, 1.0)
    renderer = Renderer(registry)
    assert renderer.render("text") is None  # the library moves them to families of their own
    ours = renderer.render("openmetrics")
    assert ours == openmetrics.exposition.generate_latest(registry)
    assert b"fleetgauge_agent_samples_created{" in ours


def test_samples_beyond_plain_families_are_left_to_the_library(no_created) -> None:  # noqa: ANN001
    registry, snapshot, series, health = _registry()
    registry.register(_Stamped())
    assert Renderer(registry).render("text") is None
    assert Renderer(registry).render("openmetrics") is None


@pytest.fixture
def server(no_created) -> Iterator[tuple[MetricsServer, CollectorRegistry]]:  # noqa: ANN001
    registry, snapshot, series, health = _registry()
    _sample(snapshot, series, health, 1.0)
    server = MetricsServer("127.0.0.1", 0, registry)
    server.start()
    yield server, registry
    server.stop()


def _get(port: int, path: str = "/metrics", method: str = "GET", **headers: str):  # noqa: ANN202
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_a_prometheus_scrape_gets_gzipped_openmetrics_equal_to_the_library(server) -> None:  # noqa: ANN001
    server, registry = server
    status, headers, body = _get(
        server.port, Accept=PROMETHEUS_ACCEPT, **{"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"
    )
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == openmetrics.exposition.generate_latest(registry)


def test_a_plain_scrape_gets_the_text_format_equal_to_the_library(server) -> None:  # noqa: ANN001
    server, registry = server
    status, headers, body = _get(server.port)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in headers
    assert body == generate_latest(registry)
    assert b"fleetgauge_cpu_usage_ratio{" in body


def test_a_scrape_connection_is_kept_alive(server) -> None:  # noqa: ANN001
    """As Prometheus scrapes: HTTP/1.1, one connection for every scrape (wsgiref closed
    each); a request that asks to close, or may carry a body, is closed after its answer."""
    server, registry = server
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        bodies = []
        for _ in range(3):
            conn.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
            resp = conn.getresponse()
            bodies.append(resp.read())
            assert (resp.status, resp.version, resp.getheader("Connection")) == (200, 11, None)
            if not bodies[1:]:
                first = conn.sock
            assert conn.sock is first  # the same socket: never closed by the agent
        assert bodies[0] == openmetrics.exposition.generate_latest(registry)
        conn.request("GET", "/metrics", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Connection")) == (200, "close")
        resp.read()
        conn.request("POST", "/metrics", body=b"x=1")
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("Connection")) == (405, "close")
    finally:
        conn.close()


def test_filters_other_formats_and_methods_are_answered_by_the_library(server) -> None:  # noqa: ANN001
    server, registry = server
    _, _, body = _get(server.port, "/metrics?name[]=fleetgauge_agent_samples_total")
    assert body.startswith(b"# HELP fleetgauge_agent_samples_total ")
    assert b"fleetgauge_agent_points" not in body
    accept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
    status, headers, body = _get(server.port, Accept=accept)
    assert status == 200 and headers["Content-Type"].endswith("escaping=allow-utf-8")
    assert body == openmetrics.exposition.generate_latest(registry, escaping="allow-utf-8")
    status, _, _ = _get(server.port, method="POST")
    assert status == 405


def test_label_sets_without_a_value_since_the_last_sweep_leave_metrics(no_created) -> None:  # noqa: ANN001
    registry, _, series, _ = _registry()
    renderer = Renderer(registry)

    def push(deployment: str) -> None:
        tags = {"environment": "prod", "deployment": deployment, "metric": "score"}
        series.record([Point("pipeline_metric", tags, {"value": 1.0}, 1)])

    push("steady")
    push("request-1")
    assert series.forget_idle() == 0  # both had values since they appeared
    push("steady")
    assert series.forget_idle() == 1  # request-1 had none since the last sweep
    text = renderer.render("text").decode()
    assert 'deployment="steady"' in text and "request-1" not in text
    push("request-1")  # back again: a fresh counter (a reset to Prometheus' rate())
    samples = {
        (s.name, s.labels["deployment"]): s.value
        for family in text_string_to_metric_families(renderer.render("text").decode())
        for s in family.samples
        if "deployment" in s.labels
    }
    assert samples[(PIPELINE_VALUES.name, "request-1")] == 1
    assert samples[(PIPELINE_VALUES.name, "steady")] == 2


def test_gpus_get_an_info_series_and_processes_are_summed_per_gpu_without_a_pid_label() -> None:
    snapshot = Snapshot()
    ids = {"environment": "prod", "worker": "w1"}
    board = {
        "gpu_uuid": "GPU-5d3a",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_pci_bus_id": "00000000:18:00.0",
        "gpu_driver_version": "550.54.15",
    }
    snapshot.update(
        "gpu",
        [
            Point("gpu", {**ids, "gpu": "0", **board}, {"utilization_percent": 97.0}, 0),
            Point(
                "gpu_process", {**ids, "gpu": "0", "pid": "41872"}, {"memory_used_bytes": 6e9}, 0
            ),
            Point(
                "gpu_process", {**ids, "gpu": "0", "pid": "41999"}, {"memory_used_bytes": 1e9}, 0
            ),
        ],
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in snapshot.collect()
        for s in family.samples
    }
    gpu0 = (("environment", "prod"), ("gpu", "0"), ("worker", "w1"))
    info = tuple(sorted({**dict(gpu0), **board}.items()))
    assert samples[("fleetgauge_gpu_info", info)] == 1.0
    assert samples[("fleetgauge_gpu_processes", gpu0)] == 2.0
    assert samples[("fleetgauge_gpu_process_memory_used_bytes", gpu0)] == 7e9
    assert not [key for key in samples if "pid" in dict(key[1])], "a pid label churns series"


def test_the_agents_process_families_are_what_the_librarys_process_collector_writes() -> None:
    """process_* of the agent (SelfProcess) against prometheus_client's ProcessCollector,
    read one after the other: same families, help, types and order; the same start time
    and open-files limit; CPU, memory and open files as close as two reads can be."""
    library = CollectorRegistry()
    ProcessCollector(registry=library)
    ours = Registry()
    ours.register(SelfProcess())

    def families(text: bytes) -> list[tuple[str, str, str, float]]:
        return [
            (f.name, f.documentation, f.type, f.samples[0].value)
            for f in text_string_to_metric_families(text.decode())
        ]

    theirs, mine = families(generate_latest(library)), families(Renderer(ours).render("text"))
    assert [f[:3] for f in mine] == [f[:3] for f in theirs]
    assert [f[0] for f in mine] == [
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_cpu_seconds",
        "process_open_fds",
        "process_max_fds",
    ]
    value = {f[0]: f[3] for f in mine}
    expected = {f[0]: f[3] for f in theirs}
    assert value["process_start_time_seconds"] == expected["process_start_time_seconds"]
    assert value["process_max_fds"] == expected["process_max_fds"]
    assert abs(value["process_open_fds"] - expected["process_open_fds"]) <= 2
    assert abs(value["process_cpu_seconds"] - expected["process_cpu_seconds"]) <= 0.5
    for name in ("process_virtual_memory_bytes", "process_resident_memory_bytes"):
        assert value[name] == pytest.approx(expected[name], rel=0.1)
