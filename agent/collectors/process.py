"""Process attribution: the resources of the processes that told the agent who they are.

A model or training process registers itself with its agent (``POST
/v1/processes``, :mod:`fleetgauge.protocol`; the SDK does it on its own): its
pid, its start time and the deployment, pipeline and execution it works for. The agent checks the
claim against its ``/proc`` (a pid with another start time is another process:
refused) and keeps it in the :class:`ProcessRegistry`, at most ``limit`` at a
time. Each sample, :class:`ProcessCollector` writes one ``process`` point per
registered live process (CPU % of one core, cumulative CPU seconds, RSS,
threads), tagged with that context, its pid, command name and, in a container,
the container id and pod UID. A process that exited, or whose pid now belongs
to another process, is dropped. The GPU collector asks :meth:`ProcessRegistry.
tags_of` to put the same context on the ``gpu_process`` points of a registered
pid.

Registrations live in the agent's memory: an agent restart forgets them, and
the SDK registers again every ``REGISTER_EVERY_S`` while it sends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from fleetgauge import catalogue
from fleetgauge.agent.push.parser import ProcessClaim, PushError
from fleetgauge.catalogue import PROCESS_MEASUREMENT, Point
from fleetgauge.procinfo import TICKS_PER_S, ProcessStat, boot_time, container_of, read_stat

__all__ = ["ProcessRegistry", "ProcessCollector", "DEFAULT_MAX_PROCESSES"]

DEFAULT_MAX_PROCESSES = 1024
"""Registered processes an agent keeps at most; a registration past it is refused (429)."""
_START_SLACK_S = 1.0  # the claimed start time may differ by rounding, not by a process
CPU_CORES, CPU_SECONDS, RSS_BYTES, THREADS = PROCESS_MEASUREMENT.field_names


class _Registered:
    __slots__ = ("pid", "start_ticks", "tags", "cpu_ticks", "at", "point_tags", "base")

    def __init__(self, pid: int, start_ticks: int, tags: dict[str, str], cpu: int, at: float):
        self.pid, self.start_ticks, self.tags = pid, start_ticks, tags
        self.cpu_ticks, self.at = cpu, at
        self.point_tags: dict[str, str] | None = None
        """Its points' tags, kept from sample to sample (as the other collectors keep theirs)
        until its context, its command name or the ``base`` they were made with changes."""
        self.base: Mapping[str, str] | None = None


class ProcessRegistry:
    """The processes registered with this agent, by pid; thread-safe."""

    def __init__(
        self,
        proc_root: str = "/proc",
        limit: int = DEFAULT_MAX_PROCESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc_root, self.limit, self._clock = proc_root, limit, clock
        self._by_pid: dict[int, _Registered] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_pid)

    def register(self, claims: Sequence[ProcessClaim]) -> int:
        """Keep ``claims`` (a later one for a pid replaces its context); how many were kept.

        Every claim is checked first, so one that cannot be taken takes none:
        PushError 400 naming the item for a process the agent cannot see or one
        whose start time is not the claimed one, 429 past the limit.
        """
        found: list[tuple[ProcessClaim, ProcessStat, dict[str, str]]] = []
        for c in claims:
            stat = read_stat(c.pid, self.proc_root)
            if stat is None:
                raise PushError(
                    400,
                    f"item {c.index}, field 'pid': no process {c.pid} is visible to the agent"
                    " (exited, or in another PID namespace: run the agent in the host's PID"
                    " namespace, or give it the host's /proc with --host-proc)",
                    c.index,
                    "pid",
                )
            booted = boot_time(self.proc_root)
            if c.start_time is not None and booted is not None:
                started = booted + stat.start_ticks / TICKS_PER_S
                if abs(started - c.start_time) > _START_SLACK_S:
                    raise PushError(
                        400,
                        f"item {c.index}, field 'start_time': process {c.pid} started at"
                        f" {started:.2f}, not {c.start_time:.2f} (its pid was reused?)",
                        c.index,
                        "start_time",
                    )
            tags = {catalogue.PID: str(c.pid), **c.context}
            container, pod = container_of(c.pid, self.proc_root)
            if container:
                tags[catalogue.CONTAINER_ID] = container
            if pod:
                tags[catalogue.POD_UID] = pod
            found.append((c, stat, tags))
        now = self._clock()
        with self._lock:
            new = {c.pid for c, _, _ in found} - set(self._by_pid)
            if len(self._by_pid) + len(new) > self.limit:
                raise PushError(
                    429,
                    f"{len(self._by_pid)} processes are registered, the limit ({self.limit});"
                    " a process is forgotten when it exits",
                    reason="process_limit",
                )
            for c, stat, tags in found:
                old = self._by_pid.get(c.pid)
                if old is not None and old.start_ticks == stat.start_ticks:
                    old.tags = tags  # the same process in a new context: its CPU keeps counting
                    old.point_tags = None
                else:
                    self._by_pid[c.pid] = _Registered(
                        c.pid, stat.start_ticks, tags, stat.cpu_ticks, now
                    )
        return len(found)

    def tags_of(self, pid: int) -> Mapping[str, str] | None:
        """The context tags of registered ``pid`` (deployment, pipeline, execution_id...)."""
        r = self._by_pid.get(pid)
        return None if r is None else r.tags

    def sample(
        self, base: Mapping[str, str] | None = None
    ) -> list[tuple[dict[str, str], dict[str, float]]]:
        """Tags (``base`` first) and fields of each registered process still alive; the rest
        are dropped."""
        out, gone = [], []
        with self._lock:
            registered = list(self._by_pid.values())
        for r in registered:
            stat = read_stat(r.pid, self.proc_root)
            if stat is None or stat.start_ticks != r.start_ticks:
                gone.append(r)
                continue
            now = self._clock()
            elapsed = now - r.at
            used = (stat.cpu_ticks - r.cpu_ticks) / TICKS_PER_S
            fields = {
                CPU_SECONDS: stat.cpu_ticks / TICKS_PER_S,
                RSS_BYTES: float(stat.rss_bytes),
                THREADS: float(stat.threads),
            }
            if elapsed > 0:
                fields[CPU_CORES] = max(0.0, used / elapsed)
            r.cpu_ticks, r.at = stat.cpu_ticks, now
            tags = r.point_tags
            if tags is None or r.base is not base or tags[catalogue.PROCESS] != stat.command:
                tags = r.point_tags = {**(base or {}), **r.tags, catalogue.PROCESS: stat.command}
                r.base = base
            out.append((tags, fields))
        if gone:
            with self._lock:
                for r in gone:
                    if self._by_pid.get(r.pid) is r:
                        del self._by_pid[r.pid]
        return out


class ProcessCollector:
    """One ``process`` point per registered live process."""

    name = PROCESS_MEASUREMENT.name

    def __init__(self, tags: Mapping[str, str], *, registry: ProcessRegistry) -> None:
        self._tags, self.registry = dict(tags), registry

    def collect(self, now_ns: int) -> list[Point]:
        """The registered processes' use since the last sample."""
        name = PROCESS_MEASUREMENT.name
        sampled = self.registry.sample(self._tags)
        return [Point(name, tags, fields, now_ns) for tags, fields in sampled]
