"""An agent in a container reports the host: ``host_proc`` and ``host_root`` in a real process.

The container of docker-compose.yml gets the host's ``/proc`` at ``/host/proc`` and its
``/`` at ``/rootfs``. Here the agent is given a procfs-like tree whose numbers differ from
this machine's (3 CPUs, 4 GB of memory, interface ``fake0``, a mount table with a space in
a path), so every value it writes shows which tree it read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_process import AgentProcess

from fleetgauge import catalogue
from fleetgauge.agent.config import ConfigError, load_config
from fleetgauge.stores import open_store

S = 1_000_000_000
CPU_LINE = "cpu{}  4705 150 1120 16250 520 0 30 0 0 0\n"
MEMINFO = "MemTotal:        4000000 kB\nMemFree:  500000 kB\nMemAvailable:    1000000 kB\n"
MEMINFO += "SwapTotal:       1000000 kB\nSwapFree:         250000 kB\n"
NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets"
    " errs drop fifo colls carrier compressed\n"
    "  fake0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
)
HOST_MOUNTS = (
    "/dev/fakeroot / ext4 rw,relatime 0 0\n"
    "proc /proc proc rw,nosuid 0 0\n"
    "/dev/fakedata /data\\040set ext4 rw,relatime 0 0\n"
    "tmpfs /run tmpfs rw 0 0\n"
)


def host_tree(base: Path) -> tuple[Path, Path]:
    """A host's /proc (3 CPUs, 4 GB, fake0, its init's mount table) and its root filesystem."""
    proc = base / "host-proc"
    (proc / "net").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "stat").write_text(CPU_LINE.format(" ") + "".join(CPU_LINE.format(i) for i in range(3)))
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "net" / "dev").write_text(NET_DEV)
    (proc / "diskstats").write_text("")
    (proc / "1" / "mounts").write_text(HOST_MOUNTS)
    rootfs = base / "rootfs"
    (rootfs / "data set").mkdir(parents=True)
    (rootfs / "proc").mkdir()
    (rootfs / "run").mkdir()
    return proc, rootfs


def test_the_agent_writes_the_hosts_numbers_from_the_mounted_trees(tmp_path: Path) -> None:
    proc, rootfs = host_tree(tmp_path)
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    agent = AgentProcess(
        tmp_path,
        "--store",
        url,
        "--worker",
        "gpu-host-01",
        "--interval",
        "0.5",
        "--flush-interval",
        "0.5",
        "--collectors",
        "cpu,memory,disk,network",
        env={"FLEETGAUGE_HOST_PROC": str(proc), "FLEETGAUGE_HOST_ROOT": str(rootfs)},
    )
    started = time.time_ns()
    with agent:
        deadline = time.monotonic() + 20
        while agent.value("fleetgauge_agent_samples_total") < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        code, _ = agent.stop()
    assert code == 0, agent.log()

    store = open_store(url, create=False)
    try:

        def points(m: catalogue.Measurement) -> list[catalogue.Point]:
            found = list(store.stream_points(m.name, started, time.time_ns() + S))
            assert found, f"no {m.name} points:\n{agent.log()}"
            return found

        memory = points(catalogue.MEMORY)
        assert {p.fields["total_bytes"] for p in memory} == {4_096_000_000}
        assert {p.fields["used_bytes"] for p in memory} == {3_072_000_000}
        assert {p.fields["swap_used_percent"] for p in memory} == {75.0}
        assert {p.fields["logical_count"] for p in points(catalogue.CPU)} == {3}
        network = points(catalogue.NETWORK)
        assert {p.tags[catalogue.INTERFACE] for p in network} == {"fake0"}
        assert {p.fields["receive_bytes_per_second"] for p in network} == {0}
        disks = points(catalogue.DISK)
        # the host's mounts by their host paths, measured under rootfs; proc and tmpfs skipped
        assert {p.tags[catalogue.MOUNT] for p in disks} == {"/", "/data set"}
        fs = os.statvfs(rootfs)
        assert {p.fields["total_bytes"] for p in disks} == {fs.f_blocks * fs.f_frsize}
    finally:
        store.close()


def test_a_host_proc_that_is_no_procfs_stops_the_agent_with_the_reason(tmp_path: Path) -> None:
    empty = tmp_path / "not-mounted"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "agent", "--store", f"sqlite:///{tmp_path / 'a.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEETGAUGE_HOST_PROC": str(empty)},
    )
    assert done.returncode == 2
    assert f"host_proc {empty}: no 'stat' file there" in done.stderr


def test_a_host_root_without_the_hosts_mount_table_stops_the_agent(tmp_path: Path) -> None:
    proc, rootfs = host_tree(tmp_path)
    (proc / "1" / "mounts").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "agent", "--store", f"sqlite:///{tmp_path / 'a.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEETGAUGE_HOST_PROC": str(proc), "FLEETGAUGE_HOST_ROOT": str(rootfs)},
    )
    assert done.returncode == 2
    assert f"host_root {rootfs}: needs" in done.stderr and "1/mounts" in done.stderr


@pytest.mark.parametrize("name", ["host_proc", "host_root"])
def test_host_paths_must_be_absolute(name: str) -> None:
    env = {f"FLEETGAUGE_{name.upper()}": "host/proc"}
    with pytest.raises(ConfigError, match=f"{name}: 'host/proc' is not an absolute path"):
        load_config({}, env)
