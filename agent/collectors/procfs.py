"""Readers of a procfs mounted elsewhere: a container's view of the host's ``/proc``.

psutil reads one procfs per process (its module-wide ``PROCFS_PATH``). An agent
told ``host_proc`` gives its collectors these readers instead: the shapes psutil
returns, read from the tree they were built with, so nothing process-wide
changes. Only the files the collectors use are read: ``stat``, ``diskstats``,
``net/dev`` and ``self/mounts`` (load averages are the kernel's, the same in
every namespace: psutil asks the kernel, not procfs).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from fleetgauge.agent.collectors.disk import Partition, read_mounts

__all__ = ["Procfs", "CpuTimes", "DiskIo", "NetIo"]

_SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size


class CpuTimes(NamedTuple):
    """Seconds one CPU spent in each state since boot (psutil's ``scputimes`` on Linux)."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float
    guest: float
    guest_nice: float


class DiskIo(NamedTuple):
    """Bytes read and written by one block device since boot."""

    read_bytes: int
    write_bytes: int


class NetIo(NamedTuple):
    """Bytes received and sent by one interface since it came up."""

    bytes_recv: int
    bytes_sent: int


class Procfs:
    """The psutil calls the collectors make, answered from the procfs at ``root``.

    ValueError when ``root`` holds no ``stat`` file (so it is no procfs), which
    makes a forgotten volume fail at start-up.
    """

    def __init__(self, root: str) -> None:
        if not os.path.isfile(os.path.join(root, "stat")):
            raise ValueError(f"host_proc {root}: no 'stat' file there, so it is no procfs")
        self.root = root
        self._ticks = os.sysconf("SC_CLK_TCK")

    def _lines(self, *path: str) -> list[str]:
        with open(os.path.join(self.root, *path), encoding="ascii", errors="replace") as f:
            return f.readlines()

    def cpu_times(self) -> list[CpuTimes]:
        """Times of each logical CPU, in the order ``stat`` lists them (``cpu0``, ``cpu1``...)."""
        cores = []
        for line in self._lines("stat"):
            name, _, rest = line.partition(" ")
            if not (name.startswith("cpu") and name[3:].isdigit()):
                continue
            ticks = [float(v) for v in rest.split()[:10]]
            ticks += [0.0] * (10 - len(ticks))  # older kernels stop after steal or guest
            cores.append(CpuTimes(*(t / self._ticks for t in ticks)))
        return cores

    def disk_io_counters(self, perdisk: bool = True) -> dict[str, DiskIo]:
        """Bytes read and written per block device (``diskstats``), as psutil's ``perdisk``."""
        counters = {}
        for line in self._lines("diskstats"):
            fields = line.split()
            if len(fields) >= 10:
                name, sectors_read, sectors_written = fields[2], fields[5], fields[9]
                counters[name] = DiskIo(
                    int(sectors_read) * _SECTOR_BYTES, int(sectors_written) * _SECTOR_BYTES
                )
        return counters

    def net_io_counters(self, pernic: bool = True) -> dict[str, NetIo]:
        """Bytes received and sent per interface (``net/dev``), as psutil's ``pernic``."""
        counters = {}
        for line in self._lines("net", "dev")[2:]:
            name, _, rest = line.partition(":")
            fields = rest.split()
            if len(fields) >= 9:
                counters[name.strip()] = NetIo(int(fields[0]), int(fields[8]))
        return counters

    def disk_partitions(self, all: bool = True) -> list[Partition]:  # noqa: A002 - psutil's name
        """The mounts this process sees through that procfs (``self/mounts``)."""
        return read_mounts(os.path.join(self.root, "self", "mounts"))

    @staticmethod
    def disk_usage(path: str) -> Any:
        """Space of the filesystem at ``path`` (statfs: no procfs involved)."""
        import psutil

        return psutil.disk_usage(path)
