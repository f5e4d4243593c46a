"""``fleetgauge agent`` end to end: a real process sampling this machine into a real store."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from agent_process import AgentProcess
from conftest import BACKENDS, InfluxHarness

from fleetgauge import catalogue, validation
from fleetgauge.stores import open_store

S = 1_000_000_000
WORKER = "e2e-worker"

# Fields this machine always has: CPU, per-core, memory, the root filesystem.
ALWAYS = {
    catalogue.CPU: ("usage_percent", "load1", "load5", "load15", "logical_count"),
    catalogue.CPU_CORE: ("usage_percent",),
    catalogue.MEMORY: ("used_bytes", "available_bytes", "total_bytes", "used_percent"),
    catalogue.DISK: ("used_bytes", "total_bytes", "used_percent"),
    catalogue.NETWORK: ("receive_bytes_per_second", "transmit_bytes_per_second"),
}


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'agent.db'}"
    harness: InfluxHarness = request.getfixturevalue("influx")
    return harness.store_url(harness.new_database())


def _timeslices(pid: int) -> dict[str, int]:
    """Per thread of ``pid``, the times it has been run on a CPU (the kernel's schedstat)."""
    counts = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):
            counts[stat.parent.name] = int(stat.read_text().split()[2])
    return counts


def test_an_idle_agent_wakes_no_thread_and_stops_at_once(tmp_path: Path) -> None:
    """With nothing due (samples and writes a minute apart) no thread of the agent runs,
    a scraper's kept-alive connection open or not: its listeners wait for connections
    without polling, their watches sleep until the next deadline, and stopping the agent
    does not wait for a poll either."""
    store = f"sqlite:///{tmp_path / 'idle.db'}"
    agent = AgentProcess(tmp_path, "--store", store, "--interval", "60", "--flush-interval", "60")
    with agent:
        assert agent.proc is not None
        time.sleep(2.0)  # the start-up sample is written and the start-up scrape's socket shut
        for kept_alive in (False, True):
            conn = http.client.HTTPConnection("127.0.0.1", agent.metrics_port, timeout=5)
            if kept_alive:  # a scrape, its connection then left open, as Prometheus does
                conn.request("GET", "/metrics")
                assert conn.getresponse().read()
                time.sleep(0.5)
            before = _timeslices(agent.proc.pid)
            time.sleep(3.0)
            after = _timeslices(agent.proc.pid)
            conn.close()
            woke = {tid: after[tid] - before[tid] for tid in after if tid in before}
            assert len(woke) >= 5 and sum(woke.values()) <= 1, (kept_alive, woke)
        code, seconds = agent.stop()
    assert code == 0 and seconds < 2.0, (code, seconds)


@pytest.mark.parametrize("backend", BACKENDS)
def test_agent_writes_every_resource_field_of_this_worker(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_url(backend, tmp_path, request)
    agent = AgentProcess(
        tmp_path,
        "--store",
        url,
        "--worker",
        WORKER,
        "--environment",
        "e2e",
        "--tag",
        "team=ml",
        "--interval",
        "0.5",
        "--flush-interval",
        "1",
        "--include-loopback",
    )
    started = time.time_ns()
    with agent:
        deadline = time.monotonic() + 20
        while agent.value("fleetgauge_agent_samples_total") < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        code, took = agent.stop()
    log = agent.log()
    assert code == 0, log
    assert took < 5, f"SIGTERM took {took:.1f} s"
    samples = int(log.rsplit("agent stopped: ", 1)[1].split(" samples")[0])
    assert samples >= 6
    assert "Traceback" not in log

    store = open_store(url, create=False)
    try:
        for m, fields in ALWAYS.items():
            points = list(store.stream_points(m.name, started, time.time_ns() + S))
            assert points, f"no {m.name} points"
            for p in points:
                assert p.tags[catalogue.WORKER] == WORKER and p.tags[catalogue.ENVIRONMENT] == "e2e"
                assert p.tags["team"] == "ml"
                validation.validate_point(p)
            for f in fields:
                values = [p.fields[f] for p in points if f in p.fields]
                assert values, f"{m.name}.{f} never written"
                if f.endswith("_percent"):
                    assert all(0 <= v <= 100 for v in values), (m.name, f, values)
            # every sample after the first (which has no rate yet) wrote the always-there fields
            times = {p.time_ns for p in points}
            assert len(times) >= samples - 1, (m.name, len(times), samples)
        root = {
            p.tags[catalogue.MOUNT]
            for p in store.stream_points(catalogue.DISK.name, started, time.time_ns() + S)
        }
        assert "/" in root
        interfaces = {
            p.tags[catalogue.INTERFACE]
            for p in store.stream_points(catalogue.NETWORK.name, started, time.time_ns() + S)
        }
        assert "lo" in interfaces
    finally:
        store.close()


def test_metrics_show_this_workers_resources_with_catalogue_names(tmp_path: Path) -> None:
    with AgentProcess(
        tmp_path,
        "--store",
        f"sqlite:///{tmp_path / 'a.db'}",
        "--worker",
        WORKER,
        "--interval",
        "0.5",
    ) as agent:
        time.sleep(1.5)
        samples = agent.samples()
        agent.stop()
    names = {name for name, _ in samples}
    cpu_name, _ = catalogue.prometheus_name(catalogue.CPU, catalogue.CPU.get_field("usage_percent"))
    mem_name, _ = catalogue.prometheus_name(
        catalogue.MEMORY, catalogue.MEMORY.get_field("total_bytes")
    )
    assert cpu_name == "fleetgauge_cpu_usage_ratio" and cpu_name in names
    labels = dict(next(ls for n, ls in samples if n == mem_name))
    assert labels == {"worker": WORKER, "environment": "default"}
    total = next(v for (n, _), v in samples.items() if n == mem_name)
    assert total > 100 * 1024 * 1024
    ratio = [v for (n, _), v in samples.items() if n == cpu_name]
    assert ratio and all(0 <= v <= 1 for v in ratio)
    for health in catalogue.AGENT_HEALTH:
        assert any(n.startswith(health.name.removesuffix("_total")) for n in names), health.name


def test_metrics_off_loopback_need_a_token_and_check_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    host = socket.gethostbyname(socket.gethostname())
    if host.startswith("127."):
        host = "0.0.0.0"
    refused = AgentProcess(tmp_path, "--store", db, "--metrics-host", host)
    with pytest.raises(RuntimeError, match="not loopback: set a token"):
        refused.start()
    token = "s3cret-token-value"
    agent = AgentProcess(
        tmp_path,
        "--store",
        db,
        "--metrics-host",
        "127.0.0.1",
        env={"FLEETGAUGE_METRICS_TOKEN": token},
    )
    with agent:
        pass_url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(pass_url, timeout=5)
        assert denied.value.code == 401
        wrong = urllib.request.Request(pass_url, headers={"Authorization": "Bearer nope"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)
        right = urllib.request.Request(pass_url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(right, timeout=5) as resp:
            assert b"fleetgauge_agent_samples_total" in resp.read()
        agent.stop(signal.SIGINT)
    assert token not in agent.log()
