"""The agent's own cgroup: where its files are, its CPU/memory limits and its usage.

Found once, from ``<proc>/self/cgroup``: cgroup v2 when the unified hierarchy is mounted at
``<cgroup_root>`` (it has ``cgroup.controllers``), else the v1 controllers under
``<cgroup_root>/<controller>`` (also on hybrid hosts that mount an empty v2 tree beside
them). When the cgroup's path is not visible under the mount (a container that sees only
its own cgroup, as the mount root) the mount root is used.

A limit is the tightest one of the cgroup and its ancestors: v2 ``cpu.max`` and
``memory.max``; v1 ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us`` and
``memory.limit_in_bytes``, where a huge value means none. Memory used is the working set:
usage minus inactive file cache (v2 ``memory.current`` minus ``inactive_file``, v1
``memory.usage_in_bytes`` minus ``total_inactive_file``), as the kubelet and cAdvisor count
it, since that cache is reclaimed before the OOM killer acts. Every read is done when asked
(nothing is cached here); a file that is missing or unreadable reads as None.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetgauge.timeutil import NS_PER_S

__all__ = ["Cgroup"]

_V1_UNLIMITED = 1 << 60  # v1 writes "no limit" as the largest page-aligned 64-bit value


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _stat(path: Path, key: str) -> int | None:
    """One value of a flat-keyed file such as memory.stat or cpu.stat."""
    for line in (_read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.isdigit():
            return int(value)
    return None


def _chain(mount: Path, cgroup_path: str) -> tuple[Path, ...]:
    """The cgroup's directory under ``mount`` and its ancestors up to the mount root."""
    own = mount / cgroup_path.strip("/")
    if not own.is_dir():
        own = mount
    dirs = [own]
    while dirs[-1] != mount and mount in dirs[-1].parents:
        dirs.append(dirs[-1].parent)
    return tuple(dirs)


@dataclass(frozen=True)
class Cgroup:
    """Files of one cgroup; each ``dirs`` tuple runs from the own cgroup up to the root."""

    version: int
    cpu_dirs: tuple[Path, ...]
    cpuacct_dir: Path | None
    memory_dirs: tuple[Path, ...]

    @classmethod
    def find(cls, proc_root: Path, cgroup_root: Path) -> Cgroup | None:
        """The calling process's cgroup, or None when no hierarchy is mounted there."""
        hierarchies: dict[str, tuple[str, str]] = {}  # controller -> (its hierarchy, path)
        for line in (_read(proc_root / "self" / "cgroup") or "").splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3:
                for controller in parts[1].split(","):
                    hierarchies.setdefault(controller, (parts[1], parts[2]))
        if "" in hierarchies and (cgroup_root / "cgroup.controllers").is_file():
            dirs = _chain(cgroup_root, hierarchies[""][1])
            return cls(2, dirs, dirs[0], dirs)

        def v1(controller: str) -> tuple[Path, ...]:
            joined, path = hierarchies.get(controller, ("", ""))
            for mount in (cgroup_root / controller, cgroup_root / joined):
                if joined and mount.is_dir():
                    return _chain(mount, path)
            return ()

        cpu, cpuacct, memory = v1("cpu"), v1("cpuacct"), v1("memory")
        if not cpu and not memory:
            return None
        return cls(1, cpu, cpuacct[0] if cpuacct else None, memory)

    def cpu_limit_cores(self) -> float | None:
        """CPU quota in cores (1.5 = one and a half CPUs), or None when unlimited."""
        cores = []
        for d in self.cpu_dirs:
            if self.version == 2:
                quota, _, period = (_read(d / "cpu.max") or "max").partition(" ")
                q = int(quota) if quota.isdigit() else 0
                p = int(period) if period.isdigit() else 0
            else:
                q, p = _int(d / "cpu.cfs_quota_us") or 0, _int(d / "cpu.cfs_period_us") or 0
            if q > 0 and p > 0:
                cores.append(q / p)
        return min(cores, default=None)

    def memory_limit_bytes(self) -> int | None:
        """Memory limit in bytes, or None when unlimited."""
        name = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        limits = [v for d in self.memory_dirs if (v := _int(d / name)) and 0 < v < _V1_UNLIMITED]
        return min(limits, default=None)

    def memory_used_bytes(self) -> int | None:
        """Working set of the cgroup: memory charged to it less inactive file cache."""
        if not self.memory_dirs:
            return None
        own = self.memory_dirs[0]
        if self.version == 2:
            usage = _int(own / "memory.current")
            inactive = _stat(own / "memory.stat", "inactive_file")
        else:
            usage = _int(own / "memory.usage_in_bytes")
            inactive = _stat(own / "memory.stat", "total_inactive_file")
        return None if usage is None else max(0, usage - (inactive or 0))

    def cpu_seconds(self) -> float | None:
        """CPU time the cgroup has used since it was created, in seconds."""
        if self.cpuacct_dir is None:
            return None
        if self.version == 2:
            usec = _stat(self.cpuacct_dir / "cpu.stat", "usage_usec")
            return None if usec is None else usec / 1e6
        nsec = _int(self.cpuacct_dir / "cpuacct.usage")
        return None if nsec is None else nsec / NS_PER_S
