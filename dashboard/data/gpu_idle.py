"""GPUs allocated but idle: a process holds memory on them, and they stay (nearly) unused.

Read in two bucketed reads whatever the range (at most ``BUCKETS`` buckets): the
``gpu_process`` points per (worker, GPU, deployment) say in which buckets a process held
memory on a GPU, and how much; the ``gpu`` utilisation per (worker, GPU) says in which of
them the GPU was idle (bucket mean under the threshold's ``below``). A GPU is listed when
it was idle for at least the threshold's ``share`` of the buckets in which it was held.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetgauge import catalogue
from fleetgauge.dashboard.data.resources import resource_filter
from fleetgauge.stores import StoreReader

__all__ = ["IdleGpu", "read_idle_gpus", "BUCKETS"]

BUCKETS = 200
"""Buckets per range the share is counted in."""
_UTILIZATION = catalogue.GPU_MEASUREMENT.get_field("utilization_percent").name
_HELD = catalogue.GPU_PROCESS.get_field("memory_used_bytes").name


@dataclass
class IdleGpu:
    """One GPU held but idle for a share of the range, and who held it."""

    worker: str
    gpu: str
    idle_share: float
    """Share of the time it was held (a process had memory on it) that it was idle."""
    held_by: dict[str, float] = field(default_factory=dict)
    """Deployment ("" for a process that did not register) -> most memory it held (bytes)."""

    @property
    def summary(self) -> str:
        """``idle 92 % of the time it was held, by fraud-v2 (30.0 GiB)``."""
        who = ", ".join(
            f"{d or 'an unregistered process'} ({memory / 2**30:.1f} GiB)"
            for d, memory in sorted(self.held_by.items(), key=lambda kv: -kv[1])
        )
        return f"idle {self.idle_share:.0%} of the time it was held, by {who}"


def read_idle_gpus(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    below_percent: float,
    share: float,
    environment: str | None = None,
    workers: Sequence[str] = (),
) -> tuple[list[IdleGpu], int]:
    """GPUs idle (under ``below_percent`` utilisation) for at least ``share`` of the time a
    process held memory on them, most idle first; and how many GPUs reported their use."""
    where = resource_filter(environment, workers)
    held = store.read_buckets(
        catalogue.GPU_PROCESS.name,
        [_HELD],
        start_ns,
        end_ns,
        BUCKETS,
        where,
        (catalogue.WORKER, catalogue.GPU, catalogue.DEPLOYMENT),
    )
    held_at: dict[tuple[str, str], set[int]] = defaultdict(set)
    holders: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for s in held.series:
        key = (s.tags.get(catalogue.WORKER, ""), s.tags.get(catalogue.GPU, ""))
        f = s.fields[_HELD]
        times = [t for t, n in zip(s.times, f.count, strict=True) if n]
        if not times:
            continue
        held_at[key].update(times)
        deployment = s.tags.get(catalogue.DEPLOYMENT, "")
        most = max(v for v in f.max if v is not None)
        holders[key][deployment] = max(holders[key].get(deployment, 0.0), most)
    every = store.read_buckets(  # one bucket: which GPUs reported, cheap at fleet size
        catalogue.GPU_MEASUREMENT.name,
        [_UTILIZATION],
        start_ns,
        end_ns,
        1,
        where,
        (catalogue.WORKER, catalogue.GPU),
        spread=False,  # only whether each GPU has a count
    )
    gpus = len(every.series)
    if not held_at:
        return [], gpus
    holding = sorted({worker for worker, _ in held_at})
    use = store.read_buckets(  # in full only where a process held a GPU
        catalogue.GPU_MEASUREMENT.name,
        [_UTILIZATION],
        start_ns,
        end_ns,
        BUCKETS,
        resource_filter(environment, holding),
        (catalogue.WORKER, catalogue.GPU),
    )
    found = []
    for s in use.series:
        key = (s.tags.get(catalogue.WORKER, ""), s.tags.get(catalogue.GPU, ""))
        when = held_at.get(key)
        if not when:
            continue
        f = s.fields[_UTILIZATION]
        idle = sum(
            1
            for t, n, mean in zip(s.times, f.count, f.mean, strict=True)
            if n and t in when and mean is not None and mean < below_percent
        )
        measured = sum(1 for t, n in zip(s.times, f.count, strict=True) if n and t in when)
        if measured and idle / measured >= share:
            found.append(IdleGpu(key[0], key[1], idle / measured, holders[key]))
    found.sort(key=lambda g: (-g.idle_share, g.worker, g.gpu))
    return found, gpus
