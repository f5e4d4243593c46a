"""Collectors: one module per source of resource metrics, each returning catalogue points.

A collector is any object with a ``name`` and a ``collect(now_ns) -> list[Point]``
method (:class:`ResourceCollector`; prometheus_client's ``Collector``, which the
exposition subclasses, is another interface). ``collect`` never raises for a
condition a running machine can be in (a vanished disk, an unreadable mount, no
GPU): that item is left out. Every point carries the identity tags given to
:func:`build_collectors` plus the device tag of its measurement, and passes
:func:`fleetgauge.validation.validate_point`. Rates and percentages over an
interval are measured against a monotonic clock between two ``collect`` calls;
collectors that need a previous reading take it when they are built, so the first
sample already has values.

Collectors that hold a resource (the GPU one holds NVML) also have ``close()``.

An agent in a container reports the host when the host's ``/proc`` and root filesystem are
mounted into it and named by ``host_proc`` and ``host_root`` (see :func:`build_collectors`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Protocol, runtime_checkable

from fleetgauge.agent.collectors.container import ContainerCollector
from fleetgauge.agent.collectors.cpu import CpuCollector
from fleetgauge.agent.collectors.disk import DiskCollector, read_mounts
from fleetgauge.agent.collectors.gpu import GpuCollector
from fleetgauge.agent.collectors.memory import MemoryCollector
from fleetgauge.agent.collectors.network import NetworkCollector
from fleetgauge.agent.collectors.process import ProcessCollector, ProcessRegistry
from fleetgauge.agent.collectors.procfs import Procfs
from fleetgauge.catalogue import ENVIRONMENT, WORKER, Point

__all__ = ["ResourceCollector", "COLLECTOR_NAMES", "build_collectors"]


@runtime_checkable
class ResourceCollector(Protocol):
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
    ProcessCollector,
)
COLLECTOR_NAMES: tuple[str, ...] = tuple(cls.name for cls in _CLASSES)
"""Every collector :func:`build_collectors` knows, in the order it builds them."""


def build_collectors(
    tags: Mapping[str, str],
    *,
    mounts: Sequence[str] | None = None,
    include_loopback: bool = False,
    enabled: Collection[str] | None = None,
    host_proc: str = "/proc",
    host_root: str = "/",
    processes: ProcessRegistry | None = None,
) -> list[ResourceCollector]:
    """Build the enabled collectors (all when ``enabled`` is None) in ``COLLECTOR_NAMES`` order.

    ``tags`` are the identity tags put on every point (``environment``, ``worker`` and any
    static extras); ``mounts`` picks the filesystems the disk collector reports;
    ``include_loopback`` makes the network collector report ``lo``.

    ``host_proc`` is the procfs that CPU, memory, disk I/O and network are read from:
    :class:`~fleetgauge.agent.collectors.procfs.Procfs` readers of that tree, passed to the
    collectors (psutil's own setting is module-wide, so it is left alone), except CPU times
    of ``/proc``, which psutil reads faster. For ``/proc`` psutil would read the same files
    for disk I/O and network, but it also looks at sysfs and de-wraps 32-bit counters on
    every call (the kernel's are 64-bit), at twice the cost; where there is no ``/proc``
    (not Linux) psutil reads them. Network counters are those of the agent's own network namespace
    (``<host_proc>/net`` is ``<host_proc>/self/net``): a container reports the host's
    interfaces only with the host's network. ``host_root`` other than ``/`` makes the disk
    collector list the mounts of the host (``<host_proc>/1/mounts``, the mount namespace of
    the host's init) and measure each at ``<host_root>/<mount point>``.

    ``processes`` holds the processes registered with the agent: the process collector
    samples them and the GPU collector puts their deployment on their GPU use (a registry
    of its own, reading ``host_proc``, when not given).

    Raises ValueError for an unknown collector name, missing identity tags, or a
    ``host_proc``/``host_root`` that does not hold what it should, so a bad config (or a
    forgotten volume) fails at start-up.
    """
    missing = [t for t in (ENVIRONMENT, WORKER) if not tags.get(t)]
    if missing:
        raise ValueError(f"collectors need the identity tag(s) {', '.join(missing)}")
    wanted = COLLECTOR_NAMES if enabled is None else tuple(enabled)
    unknown = sorted(set(wanted) - set(COLLECTOR_NAMES))
    if unknown:
        known = ", ".join(COLLECTOR_NAMES)
        raise ValueError(f"unknown collector(s) {', '.join(unknown)} (known: {known})")
    registry = processes if processes is not None else ProcessRegistry(host_proc)
    options: dict[type, dict[str, object]] = {
        DiskCollector: {"mounts": mounts, **_host_disks(host_proc, host_root)},
        MemoryCollector: {"proc_root": host_proc},
        NetworkCollector: {"include_loopback": include_loopback},
        ProcessCollector: {"registry": registry},
        GpuCollector: {"processes": registry},
    }
    procfs = None
    if host_proc != "/proc":
        procfs = Procfs(host_proc)
        options[CpuCollector] = {"cpu_times": procfs.cpu_times}
    elif os.path.isfile("/proc/stat"):
        procfs = Procfs(host_proc)
    if procfs is not None:
        options[DiskCollector]["psutil_module"] = procfs
        options[NetworkCollector]["io_counters"] = procfs.net_io_counters
    return [cls(tags, **options.get(cls, {})) for cls in _CLASSES if cls.name in wanted]


def _host_disks(host_proc: str, host_root: str) -> dict[str, object]:
    """Disk collector options that make it report the host's mounts under ``host_root``."""
    if host_root == "/":
        return {}
    table = os.path.join(host_proc, "1", "mounts")
    if not os.access(table, os.R_OK) or not os.path.isdir(host_root):
        raise ValueError(
            f"host_root {host_root}: needs a directory there and the host's mount table"
            f" readable at {table}"
        )
    return {"root": host_root, "partitions": partial(read_mounts, table)}
