"""Demo data: a few hours of a small fleet and two deployed models, written into a store.

The values are synthetic but shaped like real ones (daily load waves, a worker
that runs hot, a model whose score drifts) so every page has something to show.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from agent import schema
from agent.schema import Point
from agent.stores import Store

__all__ = ["seed"]

S = 1_000_000_000
GIB = 1024**3


def _resources(worker: str, index: int, t: int, rng: random.Random) -> list[Point]:
    tags = {schema.ENVIRONMENT: "demo", schema.WORKER: worker}
    wave = 0.5 + 0.5 * math.sin(t / S / 3600 + index)
    hot = 25.0 if index == 0 else 0.0
    cpu = min(100.0, 20 + 55 * wave + hot + rng.uniform(-5, 5))
    total = 64 * GIB
    used = total * min(0.99, 0.35 + 0.3 * wave + hot / 100)
    gpu = min(100.0, 30 + 60 * wave + rng.uniform(-8, 8))
    return [
        Point(
            schema.CPU.name,
            tags,
            {
                "usage_percent": cpu,
                "load1": cpu / 12,
                "load5": cpu / 13,
                "load15": cpu / 14,
                "logical_count": 16,
            },
            t,
        ),
        Point(
            schema.MEMORY.name,
            tags,
            {
                "used_bytes": used,
                "available_bytes": total - used,
                "total_bytes": total,
                "used_percent": 100 * used / total,
                "swap_used_bytes": 0.0,
                "swap_used_percent": 0.0,
            },
            t,
        ),
        Point(
            schema.DISK.name,
            {**tags, schema.MOUNT: "/"},
            {"used_bytes": 300 * GIB, "total_bytes": 500 * GIB, "used_percent": 60.0},
            t,
        ),
        Point(
            schema.NETWORK.name,
            {**tags, schema.INTERFACE: "eth0"},
            {"receive_bytes_per_second": 4e6 * wave, "transmit_bytes_per_second": 1e6 * wave},
            t,
        ),
        Point(
            schema.GPU_MEASUREMENT.name,
            {**tags, schema.GPU: "0"},
            {
                "utilization_percent": gpu,
                "memory_used_bytes": 60 * GIB * gpu / 100,
                "memory_total_bytes": 80 * GIB,
                "memory_used_percent": 0.75 * gpu,
                "temperature_celsius": 40 + gpu / 3,
                "power_draw_watts": 100 + 5 * gpu,
                "power_limit_watts": 700.0,
            },
            t,
        ),
    ]


def _predictions(t: int, rng: random.Random) -> Iterator[Point]:
    for deployment, accuracy in (("fraud-detector-v1", 0.82), ("fraud-detector-v2", 0.91)):
        tags = {schema.ENVIRONMENT: "demo", schema.DEPLOYMENT: deployment, schema.METRIC: "score"}
        yield Point(
            schema.PIPELINE_METRIC.name, tags, {"value": 1.0 if rng.random() < accuracy else 0.0}, t
        )


def seed(
    store: Store,
    end_ns: int,
    hours: float = 6.0,
    workers: int = 4,
    interval_s: int = 10,
    rng: random.Random | None = None,
) -> int:
    """Write ``hours`` of samples for ``workers`` workers ending at ``end_ns``; returns points."""
    rng = rng or random.Random(7)
    names = [f"gpu-node-{i + 1:02d}" for i in range(workers)]
    start = end_ns - int(hours * 3600 * S)
    start -= start % (interval_s * S)
    batch: list[Point] = []
    written = 0
    for t in range(start, end_ns, interval_s * S):
        for i, name in enumerate(names):
            batch.extend(_resources(name, i, t, rng))
        batch.extend(_predictions(t, rng))
        if len(batch) >= 5000:
            store.write(batch)
            written += len(batch)
            batch = []
    if batch:
        store.write(batch)
        written += len(batch)
    return written
