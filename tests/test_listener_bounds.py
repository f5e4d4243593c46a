"""The agent's listeners under half-sent requests and slow bodies (issue 20, point 2).

The real agent runs as a process with 256 open files (as ``ulimit -n 256``
gives it); the test opens hundreds of connections that send part of a request
and then nothing, and bodies that trickle. A model's push and Prometheus'
scrape must still be answered within a second, the collectors must keep
sampling, and the agent's descriptors, threads and memory must stay bounded.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess

from fleetgauge import protocol

WORKER = "bounds-worker"
NOFILE = 256
# what the agent makes of 256 open files: (256 - 64 reserved) // 3 connections per listener
MAX_CONNECTIONS = (NOFILE - 64) // 3


def _proc(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
        "rss": int(fields["VmRSS"].split()[0]) * 1024,
    }


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    a = AgentProcess(
        tmp_path,
        *("--store", f"sqlite:///{tmp_path / 'fg.db'}", "--worker", WORKER),
        *("--interval", "0.5", "--flush-interval", "0.5", "--collectors", "cpu,memory"),
        *("--header-timeout", "3", "--body-timeout", "4"),
    )
    a.args[:0] = ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"]
    with a:
        yield a


def _timed_push(agent: AgentProcess, value: float) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", agent.push_port, timeout=5)
    try:
        body = json.dumps({"metrics": [{"metric": "alive", "value": value, "deployment": "d"}]})
        conn.request("POST", protocol.PUSH_METRICS_PATH, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 202, response.read()
        response.read()
    finally:
        conn.close()
    return time.monotonic() - started


def _timed_scrape(agent: AgentProcess) -> float:
    started = time.monotonic()
    assert "fleetgauge_agent_samples_total" in agent.scrape()
    return time.monotonic() - started


def _open(port: int, data: bytes, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data)
        socks.append(s)
    return socks


def _close(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_half_sent_requests_and_slow_bodies_lock_out_neither_a_push_nor_a_scrape(
    agent: AgentProcess,
) -> None:
    assert agent.proc is not None
    pid = agent.proc.pid
    time.sleep(1)
    idle = _proc(pid)
    samples_before = agent.value("fleetgauge_agent_samples_total")
    peak = dict(idle)
    opened: list[socket.socket] = []

    def watch() -> None:
        for key, value in _proc(pid).items():
            peak[key] = max(peak[key], value)

    try:
        # 500 connections on each listener that send a request line and one header, then wait
        half_push = b"POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        opened += _open(agent.push_port, half_push, 500)
        watch()
        assert _timed_push(agent, 1) < 1.0
        assert _timed_scrape(agent) < 1.0
        opened += _open(agent.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n", 500)
        watch()
        assert _timed_scrape(agent) < 1.0
        assert _timed_push(agent, 2) < 1.0

        # 250 pushes that declare 4 MiB and send 64 KiB of it
        head = (
            f"POST {protocol.PUSH_METRICS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 4194304\r\n\r\n"
        ).encode()
        opened += _open(agent.push_port, head + b"[" * 65536, 250)
        for _ in range(5):
            watch()
            assert _timed_push(agent, 3) < 1.0
            assert _timed_scrape(agent) < 1.0
            time.sleep(0.2)
        watch()
    finally:
        # the agent closes them itself (below); the client side is closed last
        closing_started = time.monotonic()

    # connections past their header (3 s) or body (4 s) timeout are closed by the agent
    deadline = closing_started + 15
    while _proc(pid)["fds"] > idle["fds"] + 4:
        assert time.monotonic() < deadline, (_proc(pid), idle)
        time.sleep(0.25)
    _close(opened)
    settled = _proc(pid)

    # the collectors kept sampling all along (no EMFILE on /proc/stat)
    assert agent.value("fleetgauge_agent_samples_total") >= samples_before + 5
    assert agent.value("fleetgauge_agent_collector_errors_total") == 0, agent.log()
    assert "Too many open files" not in agent.log()
    refused = {
        (listener, reason): agent.value(
            "fleetgauge_agent_requests_refused_total", listener=listener, reason=reason
        )
        for listener in ("push", "metrics")
        for reason in ("connections", "timeout", "body_bytes")
        if (listener, reason) != ("metrics", "body_bytes")
    }
    assert all(count > 0 for count in refused.values()), refused
    # bounded: descriptors and threads by the connection limit, memory by the bytes read at once
    bound = 2 * MAX_CONNECTIONS + 16
    assert peak["fds"] - idle["fds"] <= bound, (peak, idle)
    assert peak["threads"] - idle["threads"] <= bound, (peak, idle)
    assert peak["rss"] - idle["rss"] < 100 * 2**20, (peak, idle)
    assert settled["threads"] <= idle["threads"] + 2, (settled, idle)
    code, _ = agent.stop()
    assert code == 0, agent.log()
