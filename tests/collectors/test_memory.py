"""Memory collector against scripted readings and a real-format /proc/meminfo, and on this
machine."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from fleetgauge.agent.collectors.memory import (
    MemoryCollector,
    MemoryReading,
    read_meminfo,
    read_psutil,
)
from fleetgauge.catalogue import MEMORY

from .collector_checks import IDENTITY, NOW_NS, check_points

USED, AVAILABLE, TOTAL, PERCENT, SWAP_USED, SWAP_PERCENT = MEMORY.field_names
GIB = 1024**3
MEMINFO = """\
MemTotal:       65842028 kB
MemFree:         1204936 kB
MemAvailable:   16460508 kB
Buffers:          402316 kB
Cached:         14022340 kB
SwapCached:        10240 kB
Active:         40112404 kB
Inactive:       20470008 kB
SwapTotal:       8388604 kB
SwapFree:        6291452 kB
Dirty:               512 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def fields_of(reading: MemoryReading) -> dict:
    (point,) = check_points(MemoryCollector(IDENTITY, read=lambda: reading).collect(NOW_NS))
    return dict(point.fields)


def test_used_is_total_minus_available() -> None:
    assert fields_of(MemoryReading(64 * GIB, 16 * GIB, 8 * GIB, 2 * GIB)) == {
        USED: 48 * GIB,
        AVAILABLE: 16 * GIB,
        TOTAL: 64 * GIB,
        PERCENT: 75.0,
        SWAP_USED: 2 * GIB,
        SWAP_PERCENT: 25.0,
    }


def test_no_swap_gives_no_swap_percent() -> None:
    fields = fields_of(MemoryReading(64 * GIB, 60 * GIB, 0, 0))
    assert fields[SWAP_USED] == 0 and SWAP_PERCENT not in fields


def test_meminfo_is_read_in_bytes(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text(MEMINFO)
    assert read_meminfo(str(tmp_path / "meminfo")) == MemoryReading(
        total=65842028 * 1024,
        available=16460508 * 1024,
        swap_total=8388604 * 1024,
        swap_used=(8388604 - 6291452) * 1024,
    )


def test_meminfo_without_memavailable_or_missing_is_none(tmp_path: Path) -> None:
    old_kernel = tmp_path / "meminfo"
    old_kernel.write_text(MEMINFO.replace("MemAvailable:   16460508 kB\n", ""))
    assert read_meminfo(str(old_kernel)) is None
    assert read_meminfo(str(tmp_path / "absent")) is None


def test_this_machine() -> None:
    (point,) = check_points(MemoryCollector(IDENTITY).collect(NOW_NS))
    f = point.fields
    assert f[TOTAL] == psutil.virtual_memory().total > 0
    assert 0 < f[USED] <= f[TOTAL] and 0 < f[AVAILABLE] <= f[TOTAL]
    assert f[USED] + f[AVAILABLE] == f[TOTAL]
    assert f[PERCENT] == pytest.approx(100 * f[USED] / f[TOTAL])
    assert f[AVAILABLE] == pytest.approx(psutil.virtual_memory().available, rel=0.05)
    swap = psutil.swap_memory()
    assert 0 <= f[SWAP_USED] <= swap.total
    assert (SWAP_PERCENT in f) == (swap.total > 0)


def test_psutil_reading_matches_meminfo_on_this_machine() -> None:
    linux, portable = read_meminfo(), read_psutil()
    assert linux is not None
    assert linux.total == portable.total and linux.swap_total == portable.swap_total
    assert linux.available == pytest.approx(portable.available, rel=0.05)
