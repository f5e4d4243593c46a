"""A start-up that cannot work ends with one line naming the setting and its source, exit 2.

Real processes, as a user starts them: a port another program holds (given by flag
and by environment variable), a spool directory that is a file, a store that
cannot be opened, a SQLite file another agent writes, and the dashboard on a
busy port. No traceback, nothing left
listening.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

AGENT = [sys.executable, "-m", "fleetgauge", "agent", "--collectors", "cpu"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as holder:
        yield holder.getsockname()[1]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), **env},
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if "fleetgauge: error:" in line]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_busy_push_port_named_with_its_flag(tmp_path: Path, busy_port: int) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    done = run(
        [*AGENT, "--store", store, "--metrics-port", "0", "--push-port", str(busy_port)], tmp_path
    )
    line = one_line(done)
    assert f"push_port {busy_port} (from flag --push-port)" in line
    assert "cannot listen on 127.0.0.1: Address already in use" in line


def test_a_busy_metrics_port_named_with_its_environment_variable(
    tmp_path: Path, busy_port: int
) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    env = {"FLEETGAUGE_METRICS_PORT": str(busy_port)}
    done = run([*AGENT, "--store", store, "--push-port", "0"], tmp_path, **env)
    line = one_line(done)
    assert f"metrics_port {busy_port} (from environment variable FLEETGAUGE_METRICS_PORT)" in line
    assert "Address already in use" in line


def test_a_spool_directory_that_cannot_be_one(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "spool"
    not_a_dir.write_text("a file, not a directory")
    store = f"sqlite:///{tmp_path / 'a.db'}"
    args = [*AGENT, "--store", store, "--push-port", "0", "--metrics-port", "0"]
    line = one_line(run([*args, "--spool-dir", str(not_a_dir)], tmp_path))
    assert f"spool_dir {not_a_dir} (from flag --spool-dir): cannot keep a spool there" in line


def test_a_store_that_cannot_be_opened(tmp_path: Path) -> None:
    url = "sqlite:////proc/no-such-dir/fleet.db"
    args = [*AGENT, "--push-port", "0", "--metrics-port", "0"]
    line = one_line(run(args, tmp_path, FLEETGAUGE_STORE=url))
    assert (
        f"store {url} (from environment variable FLEETGAUGE_STORE): cannot open the store" in line
    )


def test_a_second_agent_on_one_sqlite_file_refuses_unless_told_to_share(tmp_path: Path) -> None:
    from agent_process import AgentProcess

    store = f"sqlite:///{tmp_path / 'shared.db'}"
    (tmp_path / "first").mkdir()
    first = AgentProcess(tmp_path / "first", "--store", store, "--collectors", "cpu")
    with first:
        assert first.proc is not None
        args = [*AGENT, "--store", store, "--push-port", "0", "--metrics-port", "0"]
        line = one_line(run([*args, "--spool-dir", str(tmp_path / "s2")], tmp_path))
        assert f"store {store} (from flag --store): cannot write there" in line
        assert f"another agent (pid {first.proc.pid}) writes this SQLite file" in line
        assert "--share-store" in line
        # told to share, a second agent starts and writes too
        (tmp_path / "second").mkdir()
        shared = AgentProcess(
            tmp_path / "second", "--store", store, "--collectors", "cpu", "--share-store", "true"
        )
        with shared:
            assert shared.value("fleetgauge_agent_samples_total") >= 0
    # once the first has stopped, the file is free again
    again = AgentProcess(tmp_path / "first", "--store", store, "--collectors", "cpu")
    with again:
        assert again.proc is not None and again.proc.poll() is None


def test_the_dashboard_on_a_busy_port(tmp_path: Path, busy_port: int) -> None:
    store = f"sqlite:///{tmp_path / 'a.db'}"
    seed = [
        sys.executable,
        "-m",
        "fleetgauge",
        "demo",
        "--seed-only",
        "--hours",
        "1",
        "--store",
        store,
    ]
    assert run(seed, tmp_path).returncode == 0
    dashboard = [sys.executable, "-m", "fleetgauge", "dashboard", "--store", store]
    line = one_line(run([*dashboard, "--port", str(busy_port)], tmp_path))
    assert f"--port {busy_port} on 127.0.0.1" in line and "Address already in use" in line


def test_the_dashboard_on_an_unreachable_influxdb_stops_with_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:  # a port nothing answers HTTP on
        port = held.getsockname()[1]
    url = f"influxdb+http://127.0.0.1:{port}/metrics?org=o&timeout=2"
    done = run([sys.executable, "-m", "fleetgauge", "dashboard", "--store", url], tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert (
        line.startswith("fleetgauge: error: InfluxDB at http://127.0.0.1:")
        and "unreachable" in line
    )
    assert "Connection refused" in line and " object at 0x" not in line, line
