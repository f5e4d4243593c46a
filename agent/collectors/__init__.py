"""Collectors: one module per source of resource metrics, each returning catalogue points.

A collector is any object with a ``name`` and a ``collect(now_ns) -> list[Point]`` method
(:class:`Collector`). ``collect`` never raises for a condition a running machine can be in
(a vanished disk, an unreadable mount, no GPU): that item is left out. Every point carries
the identity tags given to :func:`build_collectors` plus the device tag of its measurement,
and passes :func:`agent.schema.validate_point`. Rates and percentages over an interval are
measured against a monotonic clock between two ``collect`` calls; collectors that need a
previous reading take it when they are built, so the first sample already has values.

Collectors that hold a resource (the GPU one holds NVML) also have ``close()``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from agent.collectors.container import ContainerCollector
from agent.collectors.cpu import CpuCollector
from agent.collectors.disk import DiskCollector
from agent.collectors.gpu import GpuCollector
from agent.collectors.memory import MemoryCollector
from agent.collectors.network import NetworkCollector
from agent.schema import ENVIRONMENT, WORKER, Point

__all__ = ["Collector", "COLLECTOR_NAMES", "build_collectors"]


@runtime_checkable
class Collector(Protocol):
    """A source of points: a short ``name`` ("cpu", "gpu"...) and one ``collect`` method."""

    name: str

    def collect(self, now_ns: int) -> list[Point]:
        """Points observed now, each with ``time_ns=now_ns``; never raises for missing items."""
        ...


_CLASSES = (
    CpuCollector,
    MemoryCollector,
    DiskCollector,
    NetworkCollector,
    GpuCollector,
    ContainerCollector,
)
COLLECTOR_NAMES: tuple[str, ...] = tuple(cls.name for cls in _CLASSES)
"""Every collector :func:`build_collectors` knows, in the order it builds them."""


def build_collectors(
    tags: Mapping[str, str],
    *,
    mounts: Sequence[str] | None = None,
    include_loopback: bool = False,
    enabled: Collection[str] | None = None,
) -> list[Collector]:
    """Build the enabled collectors (all when ``enabled`` is None) in ``COLLECTOR_NAMES`` order.

    ``tags`` are the identity tags put on every point (``environment``, ``worker`` and any
    static extras); ``mounts`` picks the filesystems the disk collector reports;
    ``include_loopback`` makes the network collector report ``lo``. Raises ValueError for an
    unknown collector name or missing identity tags, so a bad config fails at start-up.
    """
    missing = [t for t in (ENVIRONMENT, WORKER) if not tags.get(t)]
    if missing:
        raise ValueError(f"collectors need the identity tag(s) {', '.join(missing)}")
    wanted = COLLECTOR_NAMES if enabled is None else tuple(enabled)
    unknown = sorted(set(wanted) - set(COLLECTOR_NAMES))
    if unknown:
        known = ", ".join(COLLECTOR_NAMES)
        raise ValueError(f"unknown collector(s) {', '.join(unknown)} (known: {known})")
    options: dict[type, dict[str, object]] = {
        DiskCollector: {"mounts": mounts},
        NetworkCollector: {"include_loopback": include_loopback},
    }
    return [cls(tags, **options.get(cls, {})) for cls in _CLASSES if cls.name in wanted]
