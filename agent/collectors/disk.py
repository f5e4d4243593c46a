"""Disk collector: space per mounted filesystem and throughput per block device.

``disk`` (tag ``mount``): used and total bytes, and ``used_percent`` as ``df`` shows it
(used over used plus what unprivileged users may still write). Pseudo and in-memory
filesystems (proc, sysfs, tmpfs, devtmpfs, cgroup, squashfs images that are always full...)
are skipped; overlay is kept only when mounted on ``/`` (the root of a container). A
device mounted twice (bind mounts, the same disk at two places) is reported once, at its
shortest mount point; files bind-mounted into a container (``/etc/hosts``) are skipped.
``mounts=`` replaces this choice with an explicit list of mount points. The mount table
is re-read every ``refresh_s`` seconds, not every sample. An agent in a container reports
the host's filesystems with ``root=`` (where the host's ``/`` is mounted) and
``partitions=`` reading the host's mount table (:func:`read_mounts`): each mount is then
measured under ``root`` and named by its path on the host.

``disk_io`` (tag ``device``): read and write bytes per second of whole disks only, that is
the names ``/sys/block`` lists (``sda``, ``nvme0n1``, ``dm-0``, ``md0``), the rule psutil and
iostat use; partitions would count the same bytes twice. Loop, RAM, zram and floppy devices
are skipped. Rates come from :class:`RateTracker`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

from fleetgauge.agent.collectors.rates import RateTracker
from fleetgauge.catalogue import DEVICE, DISK, DISK_IO, MOUNT, Point

__all__ = ["DiskCollector", "Partition", "PSEUDO_FILESYSTEMS", "read_mounts"]

USED_BYTES, TOTAL_BYTES, USED_PERCENT = DISK.field_names
READ_BYTES_PER_SECOND, WRITE_BYTES_PER_SECOND = DISK_IO.field_names

PSEUDO_FILESYSTEMS = frozenset(
    "autofs binfmt_misc bpf cgroup cgroup2 configfs debugfs devpts devtmpfs efivarfs fusectl "
    "fuse.lxcfs fuse.gvfsd-fuse hugetlbfs mqueue nsfs overlay proc pstore ramfs rpc_pipefs "
    "securityfs selinuxfs squashfs sysfs tmpfs tracefs".split()
)
"""Filesystem types that hold no user data worth a disk card."""

_VIRTUAL_DEVICE = re.compile(r"^(loop|ram|zram|fd)\d+$")
log = logging.getLogger("fleetgauge.agent.disk")


class Partition(NamedTuple):
    """One line of a mount table, as psutil's ``disk_partitions`` gives it."""

    device: str
    mountpoint: str
    fstype: str


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def read_mounts(path: str) -> list[Partition]:
    """The mounts listed in a ``/proc/PID/mounts`` file (``\\040`` in a path is a space)."""

    def unescape(text: str) -> str:
        return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)

    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        fields = [line.split() for line in f]
    return [Partition(unescape(f[0]), unescape(f[1]), f[2]) for f in fields if len(f) >= 3]


def _list_block_devices() -> set[str]:
    """Whole disks as /proc/diskstats names them ('!' in /sys/block stands for '/')."""
    return {name.replace("!", "/") for name in os.listdir("/sys/block")}


class DiskCollector:
    """Reports one ``disk`` point per chosen filesystem and one ``disk_io`` point per disk."""

    name = DISK.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        mounts: Sequence[str] | None = None,
        psutil_module: Any = None,
        block_devices: Callable[[], Collection[str]] = _list_block_devices,
        is_dir: Callable[[str], bool] = os.path.isdir,
        clock: Callable[[], float] = time.monotonic,
        refresh_s: float = 60.0,
        root: str = "/",
        partitions: Callable[[], Sequence[Any]] | None = None,
    ) -> None:
        """``mounts`` chooses mount points explicitly; ``psutil_module``, ``block_devices``
        and ``is_dir`` stand in for the machine in tests; ``refresh_s`` is how often the
        mount table and the disk list are re-read; ``root`` is where the mount points of
        the table ``partitions`` returns (default: psutil's, of this process) are found."""
        if psutil_module is None:
            import psutil as psutil_module
        self._psutil, self._block_devices, self._clock = psutil_module, block_devices, clock
        self._is_dir, self._root = is_dir, root
        self._partitions = partitions
        self._wanted = None if mounts is None else {_normalize(m) for m in mounts}
        self._tags, self._refresh_s = dict(tags), refresh_s
        self._rates = RateTracker(clock)
        self._next_refresh = float("-inf")
        self._mounts: list[tuple[str, dict[str, str]]] = []
        self._disks: Collection[str] | None = None
        self._device_tags: dict[str, dict[str, str]] = {}
        self._warned: set[str] = set()
        self._refresh()
        self._rates.update(self._read_io())

    def collect(self, now_ns: int) -> list[Point]:
        """Space of each filesystem now, and disk throughput since the previous sample."""
        if self._clock() >= self._next_refresh:
            self._refresh()
        points = []
        for mount, tags in self._mounts:
            try:
                usage = self._psutil.disk_usage(self._under_root(mount))
            except OSError:
                continue  # unmounted since the last refresh, or not ours to read
            usable = usage.used + usage.free  # what df calls size for non-root users
            if usage.total > 0 and usable > 0:
                fields = {USED_BYTES: usage.used, TOTAL_BYTES: usage.total}
                fields[USED_PERCENT] = 100.0 * usage.used / usable
                points.append(Point(DISK.name, tags, fields, now_ns))
        points.extend(self._io_points(now_ns))
        return points

    def _read_io(self) -> dict[str, tuple[int, int]]:
        """Cumulative (read, written) bytes of each whole, non-virtual disk."""
        try:
            counters = self._psutil.disk_io_counters(perdisk=True) or {}
        except (OSError, RuntimeError, NotImplementedError):
            return {}
        return {
            name: (c.read_bytes, c.write_bytes)
            for name, c in counters.items()
            if not _VIRTUAL_DEVICE.match(name) and (self._disks is None or name in self._disks)
        }

    def _io_points(self, now_ns: int) -> list[Point]:
        points = []
        for name, (read, write) in self._rates.update(self._read_io()).items():
            tags = self._device_tags.get(name)
            if tags is None:
                tags = self._device_tags[name] = {**self._tags, DEVICE: name}
            fields = {READ_BYTES_PER_SECOND: read, WRITE_BYTES_PER_SECOND: write}
            points.append(Point(DISK_IO.name, tags, fields, now_ns))
        return points

    def _refresh(self) -> None:
        """Re-read the mount table and the list of whole disks."""
        self._next_refresh = self._clock() + self._refresh_s
        try:
            self._disks = set(self._block_devices())
        except OSError:
            self._disks = None  # no /sys here: fall back to every non-virtual device
        try:
            if self._partitions is not None:
                partitions = self._partitions()
            else:
                partitions = self._psutil.disk_partitions(all=True)
        except OSError:
            return  # keep the previous mount list
        self._mounts = [(m, {**self._tags, MOUNT: m}) for m in self._choose(partitions)]
        self._device_tags = {}

    def _choose(self, partitions: Sequence[Any]) -> list[str]:
        """Mount points to report: the wanted ones, or each real device once."""
        if self._wanted is not None:
            present = {_normalize(p.mountpoint) for p in partitions}
            for missing in sorted(self._wanted - present - self._warned):
                log.warning("disk: %s is not a mount point; not reporting it", missing)
                self._warned.add(missing)
            return sorted(self._wanted & present)
        chosen: dict[str, str] = {}
        for p in sorted(partitions, key=lambda p: (len(p.mountpoint), p.mountpoint)):
            pseudo = p.fstype in PSEUDO_FILESYSTEMS and not (
                p.fstype == "overlay" and p.mountpoint == "/"
            )
            # a file bind-mounted into a container (/etc/hosts) is no filesystem of its own
            if (
                not pseudo
                and _source(p) not in chosen
                and self._is_dir(self._under_root(p.mountpoint))
            ):
                chosen[_source(p)] = p.mountpoint
        return sorted(chosen.values())

    def _under_root(self, mount: str) -> str:
        """Where a mount point of the table is found from here."""
        return mount if self._root == "/" else os.path.join(self._root, mount.lstrip("/"))


def _source(partition: Any) -> str:
    """What identifies the filesystem behind a mount: its device, or its mount point when
    the device field is a placeholder ('none', the fstype) shared by unrelated mounts."""
    device = partition.device
    return partition.mountpoint if device in ("", "none", partition.fstype) else device


def _normalize(mount: str) -> str:
    """A mount point without a trailing slash ('/' stays '/')."""
    return mount.rstrip("/") or "/"
