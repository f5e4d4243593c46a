"""The real InfluxDB goes away while the agent runs: nothing sampled meanwhile is lost or twice."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from agent_process import AgentProcess
from influx_server import influx_to_stop

from fleetgauge import catalogue
from fleetgauge.stores import open_store

S = 1_000_000_000
WORKER = "outage-worker"


def test_samples_taken_while_influxdb_is_down_arrive_once_it_is_back(tmp_path: Path) -> None:
    with influx_to_stop(tmp_path / "influxd") as (server, url):
        agent = AgentProcess(
            tmp_path,
            "--store",
            url,
            "--worker",
            WORKER,
            "--interval",
            "0.5",
            "--flush-interval",
            "0.5",
            "--collectors",
            "cpu,memory",
        )
        started = time.time_ns()
        with agent:
            time.sleep(2)
            server.stop()  # down for 30 s: sixty samples, sixty flush intervals
            written_before = agent.value("fleetgauge_agent_points_written_total")
            time.sleep(30)
            assert agent.value("fleetgauge_agent_points_spooled_total") > 0
            assert agent.value("fleetgauge_agent_write_errors_total") > 0
            assert agent.value("fleetgauge_agent_spool_points") > 0
            server.start()
            deadline = time.monotonic() + 30
            while agent.value("fleetgauge_agent_spool_points") and time.monotonic() < deadline:
                time.sleep(0.3)
            assert agent.value("fleetgauge_agent_spool_points") == 0, agent.log()
            assert agent.value("fleetgauge_agent_points_written_total") > written_before
            code, _ = agent.stop()
        log = agent.log()
        assert code == 0, log
        samples = int(log.rsplit("agent stopped: ", 1)[1].split(" samples")[0])
        assert "0 dropped, 0 waiting in the spool" in log, log
        assert "store unavailable" in log and "store is back" in log

        store = open_store(url)
        try:
            end = time.time_ns() + S
            always = {catalogue.CPU: ("usage_percent", "load1"), catalogue.MEMORY: ("used_bytes",)}
            for m, fields in always.items():
                points = list(store.stream_points(m.name, started, end, {"worker": [WORKER]}))
                times = [p.time_ns for p in points]
                assert len(points) == samples, (m.name, len(points), samples)  # none lost
                assert len(set(times)) == len(times) == samples  # none twice
                for f in fields:
                    assert sum(f in p.fields for p in points) == samples, (m.name, f)
            # The 1m rollup counted every sample once, replayed ones included.
            first, last = min(times), max(times) + 1
            span = (last - first) // 60 // S + 2
            b = store.read_buckets(
                catalogue.MEMORY.name,
                ["total_bytes"],
                first - first % (60 * S),
                first - first % (60 * S) + span * 60 * S,
                span,
                level="1m",
            )
            assert sum(sum(s.fields["total_bytes"].count) for s in b.series) == samples
        finally:
            store.close()


def test_a_sigkilled_agent_loses_at_most_one_flush_interval(tmp_path: Path) -> None:
    """Killed while the store is down: the spool survives and the next agent replays it."""
    with influx_to_stop(tmp_path / "influxd") as (server, url):
        args = ("--store", url, "--worker", WORKER, "--interval", "0.5", "--flush-interval", "1")
        args += ("--collectors", "cpu")
        started = time.time_ns()
        server.stop()
        first = AgentProcess(tmp_path, *args)
        with first:
            time.sleep(3.2)
            taken = first.value("fleetgauge_agent_samples_total")
            first.stop(signal.SIGKILL)
        spooled = sorted((tmp_path / "spool").glob("*.jsonl"))
        assert spooled, "nothing reached the spool before the kill"
        server.start()
        second = AgentProcess(tmp_path, *args)
        with second:
            deadline = time.monotonic() + 20
            while second.value("fleetgauge_agent_spool_points") and time.monotonic() < deadline:
                time.sleep(0.3)
            code, _ = second.stop()
        assert code == 0, second.log()
        store = open_store(url)
        try:
            points = list(store.stream_points(catalogue.CPU.name, started, time.time_ns() + S))
        finally:
            store.close()
        before_kill = [p for p in points if p.time_ns < second.started_ns]
        per_flush = 1 / 0.5  # samples in one flush interval
        assert taken - per_flush - 1 <= len(before_kill) <= taken, (len(before_kill), taken)
