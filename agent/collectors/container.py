"""Container collector: use against the CPU and memory limits of the agent's own cgroup.

So a card can say "memory at 95% of its limit" inside a 4 GiB container on a 64 GiB host.
``container`` fields: ``cpu_limit_cores`` and ``cpu_used_percent`` (CPU time used over the
real elapsed time as a share of the quota: 1 core busy under a 2-core limit is 50%) when
there is a CPU limit; ``memory_used_bytes`` (the working set) always, with
``memory_limit_bytes`` and ``memory_used_percent`` when there is a memory limit. Without any
limit there is no point at all. Limits are re-read once a minute (``refresh_s``), so a
``docker update`` shows within a minute while an unlimited host pays almost nothing per
sample. How the cgroup, its limits and its usage are read is described in
:mod:`fleetgauge.agent.collectors.cgroup`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fleetgauge.agent.collectors.cgroup import Cgroup
from fleetgauge.agent.collectors.rates import RateTracker
from fleetgauge.catalogue import CONTAINER, Point

__all__ = ["ContainerCollector"]

(
    CPU_LIMIT_CORES,
    CPU_USED_PERCENT,
    MEMORY_LIMIT_BYTES,
    MEMORY_USED_BYTES,
    MEMORY_USED_PERCENT,
) = CONTAINER.field_names
_USAGE = "usage"  # the one counter the rate tracker follows: CPU seconds of the cgroup


class ContainerCollector:
    """Reports one ``container`` point per sample while the agent's cgroup has a limit."""

    name = CONTAINER.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        proc_root: str | Path = "/proc",
        cgroup_root: str | Path = "/sys/fs/cgroup",
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 60.0,
    ) -> None:
        """``proc_root`` and ``cgroup_root`` point at the real trees or at test fixtures;
        limits are re-read every ``refresh_s`` seconds, usage every sample."""
        self._tags, self._clock, self._refresh_s = dict(tags), clock, refresh_s
        self.cgroup = Cgroup.find(Path(proc_root), Path(cgroup_root))
        self._rates = RateTracker(clock)
        self._limits: tuple[float | None, int | None] = (None, None)
        self._limits_expire = float("-inf")
        if self.cgroup is not None and self.limits()[0] is not None:
            self._cpu_rate(self.cgroup)

    def limits(self) -> tuple[float | None, int | None]:
        """(CPU cores, memory bytes) the cgroup may use, None where unlimited."""
        if self.cgroup is not None and self._clock() >= self._limits_expire:
            self._limits = (self.cgroup.cpu_limit_cores(), self.cgroup.memory_limit_bytes())
            self._limits_expire = self._clock() + self._refresh_s
        return self._limits

    def _cpu_rate(self, cgroup: Cgroup) -> float | None:
        """CPU seconds used per second since the previous call."""
        seconds = cgroup.cpu_seconds()
        rates = self._rates.update({} if seconds is None else {_USAGE: (seconds,)})
        return rates[_USAGE][0] if rates else None

    def collect(self, now_ns: int) -> list[Point]:
        """Use against the limits now; empty when the cgroup has no limit."""
        cgroup = self.cgroup
        if cgroup is None:
            return []
        cores, memory_limit = self.limits()
        if cores is None and memory_limit is None:
            return []
        fields: dict[str, float | int] = {}
        if cores is not None:
            fields[CPU_LIMIT_CORES] = cores
            if (rate := self._cpu_rate(cgroup)) is not None:
                fields[CPU_USED_PERCENT] = 100.0 * rate / cores
        used = cgroup.memory_used_bytes()
        if used is not None:
            fields[MEMORY_USED_BYTES] = used
            if memory_limit is not None:
                fields[MEMORY_USED_PERCENT] = 100.0 * used / memory_limit
        if memory_limit is not None:
            fields[MEMORY_LIMIT_BYTES] = memory_limit
        return [Point(CONTAINER.name, self._tags, fields, now_ns)]
