"""Memory collector: main memory and swap of the worker.

Fields (catalogue ``memory``): ``used_bytes`` is total minus available, the memory that
new processes cannot have without swapping (page cache that the kernel can drop is not
"used"), and ``used_percent`` is its share of ``total_bytes``. ``swap_used_percent`` is
left out on a worker without swap: there is no share of nothing to report.

On Linux everything comes from one read of ``/proc/meminfo`` (about a fifth of the cost
of psutil's ``virtual_memory`` plus ``swap_memory``, which also parses ``/proc/vmstat``);
elsewhere, or on kernels without ``MemAvailable``, from psutil.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import NamedTuple

from fleetgauge.catalogue import MEMORY, Point

__all__ = ["MemoryCollector", "MemoryReading", "read_meminfo", "read_psutil"]

(
    USED_BYTES,
    AVAILABLE_BYTES,
    TOTAL_BYTES,
    USED_PERCENT,
    SWAP_USED_BYTES,
    SWAP_USED_PERCENT,
) = MEMORY.field_names

_MEMINFO_KEYS = {b"MemTotal": 0, b"MemAvailable": 1, b"SwapTotal": 2, b"SwapFree": 3}


class MemoryReading(NamedTuple):
    """Memory and swap sizes in bytes."""

    total: int
    available: int
    swap_total: int
    swap_used: int


def read_meminfo(path: str = "/proc/meminfo") -> MemoryReading | None:
    """Memory from a Linux ``/proc/meminfo``; None when it is missing or lacks a field."""
    values = [-1, -1, -1, -1]
    try:
        with open(path, "rb") as f:
            for line in f:
                key, _, rest = line.partition(b":")
                if key in _MEMINFO_KEYS:
                    values[_MEMINFO_KEYS[key]] = int(rest.split()[0]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    total, available, swap_total, swap_free = values
    if min(values) < 0:
        return None
    return MemoryReading(total, available, swap_total, max(0, swap_total - swap_free))


def read_psutil() -> MemoryReading:
    """Memory through psutil, for systems without ``/proc/meminfo``."""
    import psutil

    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    return MemoryReading(mem.total, mem.available, swap.total, swap.used)


class MemoryCollector:
    """Reports one ``memory`` point per sample."""

    name = MEMORY.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        read: Callable[[], MemoryReading | None] | None = None,
        proc_root: str = "/proc",
    ) -> None:
        """``read`` returns the current sizes (default: ``<proc_root>/meminfo``, else psutil)."""
        if read is None:
            path = os.path.join(proc_root, "meminfo")
            meminfo = read_meminfo(path) is not None
            read = (lambda: read_meminfo(path) or read_psutil()) if meminfo else read_psutil
        self._read = read
        self._tags = dict(tags)

    def collect(self, now_ns: int) -> list[Point]:
        """Memory and swap in use right now."""
        m = self._read()
        if m is None or m.total <= 0:
            return []
        used = max(0, m.total - m.available)
        fields: dict[str, float | int] = {
            USED_BYTES: used,
            AVAILABLE_BYTES: m.available,
            TOTAL_BYTES: m.total,
            USED_PERCENT: 100.0 * used / m.total,
            SWAP_USED_BYTES: m.swap_used,
        }
        if m.swap_total > 0:
            fields[SWAP_USED_PERCENT] = 100.0 * m.swap_used / m.swap_total
        return [Point(MEMORY.name, self._tags, fields, now_ns)]
