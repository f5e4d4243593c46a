"""The readers of a procfs mounted elsewhere give what psutil gives for /proc.

A container's agent reads the host's tree at ``host_proc`` through these readers
(psutil's own procfs setting is process-wide, so it is left alone).
"""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from fleetgauge.agent.collectors.procfs import Procfs

TICKS = os.sysconf("SC_CLK_TCK")


def test_the_real_proc_reads_as_psutil_reads_it() -> None:
    ours = Procfs("/proc")
    theirs = psutil.cpu_times(percpu=True)
    assert len(ours.cpu_times()) == len(theirs)
    assert set(ours.net_io_counters()) == set(psutil.net_io_counters(pernic=True))
    assert set(psutil.disk_io_counters(perdisk=True) or {}) <= set(ours.disk_io_counters())
    mine = {p.mountpoint for p in ours.disk_partitions()}
    assert {p.mountpoint for p in psutil.disk_partitions(all=True)} == mine


def test_a_mounted_tree_is_read_from_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "self").mkdir()
    (tmp_path / "stat").write_text(
        f"cpu  {2 * TICKS} 0 0 {8 * TICKS} 0 0 0 0 0 0\n"
        f"cpu0 {TICKS} 0 0 {4 * TICKS} {TICKS} 0 0 0 0 0\n"
        f"cpu1 {TICKS} 0 {TICKS} {4 * TICKS}\n"  # an old kernel: fewer columns
        "intr 1 2 3\n"
    )
    (tmp_path / "diskstats").write_text(
        "   8       0 sda 10 0 2048 5 20 0 4096 9 0 12 14 0 0 0 0\n"
    )
    (tmp_path / "net" / "dev").write_text(
        "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
        "  eth7: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n"
    )
    (tmp_path / "self" / "mounts").write_text("/dev/sdz /data\\040x ext4 rw 0 0\n")
    procfs = Procfs(str(tmp_path))
    cpu0, cpu1 = procfs.cpu_times()
    assert (cpu0.user, cpu0.idle, cpu0.iowait) == (1.0, 4.0, 1.0)
    assert (cpu1.system, cpu1.idle, cpu1.guest_nice) == (1.0, 4.0, 0.0)
    assert procfs.disk_io_counters() == {"sda": (2048 * 512, 4096 * 512)}
    assert procfs.net_io_counters() == {"eth7": (1000, 2000)}
    assert [(p.device, p.mountpoint) for p in procfs.disk_partitions()] == [("/dev/sdz", "/data x")]


def test_a_folder_without_stat_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"host_proc {tmp_path}: no 'stat' file there"):
        Procfs(str(tmp_path))
