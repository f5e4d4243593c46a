"""CPU collector: total and per-core busy percent, load averages, logical CPU count.

Fields (catalogue ``cpu`` and ``cpu_core``): ``usage_percent`` is the share of CPU time
that was not idle (idle and iowait count as idle, as in psutil and top) between this
sample and the previous one, from ``/proc/stat``-style cumulative times. The collector
reads the times once at construction, so the first sample already covers a real interval;
a sample taken with no CPU time elapsed gives no usage field rather than a bogus 0 or 100.
The total is the sum over cores (one read of the per-core times per sample). The ``core``
tag is the core's position in psutil's per-CPU list; ``logical_count`` is the number of
online logical CPUs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from fleetgauge.catalogue import CORE, CPU, CPU_CORE, Point

__all__ = ["CpuCollector"]

USAGE_PERCENT, LOAD1, LOAD5, LOAD15, LOGICAL_COUNT = CPU.field_names
(CORE_USAGE_PERCENT,) = CPU_CORE.field_names


def _busy_and_total(times: Any) -> tuple[float, float]:
    """(busy, total) seconds of one psutil ``scputimes``.

    Guest time is already counted inside user and nice on Linux, so it is taken out once.
    """
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _percent(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """Busy share of the time between two (busy, total) readings, or None without elapsed time."""
    d_total = after[1] - before[1]
    if d_total <= 0:
        return None
    d_busy = after[0] - before[0]
    return min(100.0, max(0.0, 100.0 * d_busy / d_total))


def _sum(cores: list[tuple[float, float]]) -> tuple[float, float]:
    """(busy, total) of all cores together."""
    return sum(c[0] for c in cores), sum(c[1] for c in cores)


class CpuCollector:
    """Reports one ``cpu`` point and one ``cpu_core`` point per logical core."""

    name = CPU.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        cpu_times: Callable[[], Sequence[Any]] | None = None,
        loadavg: Callable[[], tuple[float, float, float]] | None = None,
    ) -> None:
        """``cpu_times`` returns per-core psutil ``scputimes``; ``loadavg`` the 1/5/15 loads."""
        if cpu_times is None or loadavg is None:
            import psutil

            cpu_times = cpu_times or partial(psutil.cpu_times, percpu=True)
            loadavg = loadavg or psutil.getloadavg
        self._cpu_times, self._loadavg = cpu_times, loadavg
        self._tags = dict(tags)
        self._core_tags: list[dict[str, str]] = []
        self._last = self._read()

    def _read(self) -> list[tuple[float, float]]:
        return [_busy_and_total(t) for t in self._cpu_times()]

    def _tags_of_core(self, index: int) -> dict[str, str]:
        while len(self._core_tags) <= index:
            self._core_tags.append({**self._tags, CORE: str(len(self._core_tags))})
        return self._core_tags[index]

    def collect(self, now_ns: int) -> list[Point]:
        """Busy percent since the previous sample, load averages and CPU count."""
        current = self._read()
        previous, self._last = self._last, current
        points: list[Point] = []
        fields: dict[str, float | int] = {}
        if len(previous) == len(current):  # a CPU went on/offline: skip one interval
            total = _percent(_sum(previous), _sum(current))
            if total is not None:
                fields[USAGE_PERCENT] = total
            for i, (before, after) in enumerate(zip(previous, current, strict=True)):
                pct = _percent(before, after)
                if pct is not None:
                    tags = self._tags_of_core(i)
                    points.append(Point(CPU_CORE.name, tags, {CORE_USAGE_PERCENT: pct}, now_ns))
        fields[LOAD1], fields[LOAD5], fields[LOAD15] = self._loadavg()
        fields[LOGICAL_COUNT] = len(current)
        points.insert(0, Point(CPU.name, self._tags, fields, now_ns))
        return points
