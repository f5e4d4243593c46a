"""What ``/proc`` says of one process: its start time, CPU time, threads, memory, cgroup.

Shared by the SDK (which tells its agent which process it is, with the
process's start time so that a reused pid is never taken for it) and the
agent (which checks that claim and samples the process). Both compute the
start time the same way, from the same kernel counters, so they agree to the
tick. Linux only: elsewhere every reader answers None.

Only the standard library is used: the SDK stays light.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

__all__ = [
    "ProcessStat",
    "read_stat",
    "start_time",
    "boot_time",
    "command_of",
    "container_of",
    "TICKS_PER_S",
]

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
"""Clock ticks per second: the unit of CPU and start times in ``/proc/PID/stat``."""
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_boot_times: dict[str, float | None] = {}


class ProcessStat(NamedTuple):
    """One reading of ``/proc/PID/stat``."""

    command: str
    """The command name (``comm``, at most 15 characters)."""
    start_ticks: int
    """When the process started, in clock ticks after boot: with the pid, its identity."""
    cpu_ticks: int
    """User and system CPU time the process has used, in clock ticks."""
    threads: int
    rss_bytes: int


def read_stat(pid: int, proc_root: str = "/proc") -> ProcessStat | None:
    """``pid``'s stat, or None when no such process is visible (gone, another namespace).

    One file, ``/proc/PID/stat``, holds all of it (its ``rss`` is the resident pages
    that ``statm`` and ``status`` also show): a sample costs one open and one read.
    """
    try:  # os.open and os.read: half the cost of a file object, for an agent sampling many
        fd = os.open(f"{proc_root}/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096).decode(errors="replace")
        finally:
            os.close(fd)
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ")"
    open_at, close_at = stat.find("("), stat.rfind(")")
    rest = stat[close_at + 2 :].split()
    try:  # rest[0] is field 3 (state): field n is rest[n - 3]
        return ProcessStat(
            stat[open_at + 1 : close_at],
            int(rest[19]),
            int(rest[11]) + int(rest[12]),
            int(rest[17]),
            int(rest[21]) * _PAGE_BYTES,
        )
    except (IndexError, ValueError):
        return None


def boot_time(proc_root: str = "/proc") -> float | None:
    """When the machine booted (epoch seconds, ``btime`` of ``/proc/stat``)."""
    if proc_root not in _boot_times:
        found = None
        try:
            with open(os.path.join(proc_root, "stat"), "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        found = float(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
        _boot_times[proc_root] = found
    return _boot_times[proc_root]


def start_time(pid: int, proc_root: str = "/proc") -> float | None:
    """When ``pid`` started, in epoch seconds (as ``ps`` and psutil compute it), or None."""
    stat, booted = read_stat(pid, proc_root), boot_time(proc_root)
    if stat is None or booted is None:
        return None
    return booted + stat.start_ticks / TICKS_PER_S


# Docker (cgroupfs and systemd drivers), containerd/CRI, CRI-O and Podman name the
# container's cgroup after its 64-hex id; Kubernetes puts the pod's UID in the path
# (with "_" for "-" under the systemd driver).
_CONTAINER = re.compile(r"(?:docker|cri-containerd|crio|libpod|containerd)?[-/:]?([0-9a-f]{64})")
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def container_of(pid: int, proc_root: str = "/proc") -> tuple[str | None, str | None]:
    """The container id (12 characters, as ``docker ps`` shows it) and the Kubernetes pod
    UID of ``pid``, read from ``/proc/PID/cgroup``; None for what it is not in."""
    try:
        with open(os.path.join(proc_root, str(pid), "cgroup"), "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None, None
    container = pod = None
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if container is None and (m := _CONTAINER.search(path)):
            container = m.group(1)[:12]
        if pod is None and (m := _POD.search(path)):
            pod = m.group(1).replace("_", "-")
    return container, pod


def command_of(pid: int, proc_root: str = "/proc") -> str | None:
    """The command name of ``pid`` (``/proc/PID/comm``), or None when it is not visible."""
    try:
        with open(os.path.join(proc_root, str(pid), "comm"), "rb") as f:
            return f.read().decode(errors="replace").strip() or None
    except OSError:
        return None
