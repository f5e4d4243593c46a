"""A bound on the distinct series clients push: a client inventing names cannot fill memory.

A series is a measurement with one set of tags (``pipeline_metric`` of
deployment ``fraud-v1``, metric ``score``, ...). Each costs memory in the
agent's caches and in the store; 900,000 distinct series took an agent to
2.0 GB. :class:`SeriesLimit` keeps the series pushed lately (each forgotten
after ``idle_s`` without a value) and, once ``limit`` are active, refuses
values of a new series while known series keep flowing. Refusals are counted
and logged at most once a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from operator import itemgetter

from fleetgauge.catalogue import Point
from fleetgauge.stores.runs import series_runs

__all__ = ["SeriesLimit"]

log = logging.getLogger("fleetgauge.agent.push")

_LOG_EVERY_S = 60.0
_MEASUREMENT = itemgetter(0)


class SeriesLimit:
    """The active pushed series, at most ``limit``; :meth:`admit` splits a batch by it."""

    def __init__(
        self,
        limit: int,
        idle_s: float,
        on_refused: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.idle_s = limit, idle_s
        self._on_refused = on_refused or (lambda n: None)
        self._clock = clock
        self._seen: dict[tuple[object, ...], float] = {}  # series -> last value (monotonic)
        self._lock = threading.Lock()
        self._swept = clock()
        self._logged = float("-inf")
        self._refused_since_log = 0

    @property
    def active(self) -> int:
        """Series with a value within the idle time (as of the last sweep)."""
        return len(self._seen)

    def admit(self, points: Sequence[Point]) -> tuple[list[Point], int]:
        """The points that may be stored, in order, and how many were refused."""
        now = self._clock()
        seen, limit = self._seen, self.limit
        keys: dict[int, tuple[object, ...] | None] = {}  # id(tags) -> key; None: refused
        accepted: list[Point] = []
        refused = 0
        with self._lock:
            if now - self._swept > self.idle_s / 8:
                self._sweep(now)
            for run in series_runs(points):
                # points of one series share their tags object within a batch: a run of one
                # measurement is one series, admitted or refused whole
                parts = [run] if len(set(map(_MEASUREMENT, run))) == 1 else [[p] for p in run]
                for part in parts:
                    p = part[0]
                    key = keys.get(id(p.tags), ())
                    if key == ():
                        key = (p.measurement, *sorted(p.tags.items()))
                        if key not in seen and len(seen) >= limit:
                            key = None
                        else:
                            seen[key] = now
                        keys[id(p.tags)] = key
                    if key is None:
                        refused += len(part)
                    else:
                        accepted += part
        if refused:
            self._refused(refused, now)
        return accepted, refused

    def _sweep(self, now: float) -> None:
        oldest = now - self.idle_s
        self._swept = now
        if any(t < oldest for t in self._seen.values()):
            # a new dictionary: one that held many series keeps its size after deletions
            self._seen = {k: t for k, t in self._seen.items() if t >= oldest}

    def _refused(self, n: int, now: float) -> None:
        self._on_refused(n)
        self._refused_since_log += n
        if now - self._logged >= _LOG_EVERY_S:
            log.warning(
                "refused %d values of new series: %d series are active, the limit"
                " (push_max_series); a series is forgotten after %g s without a value"
                " (push_series_idle). Logged at most once a minute.",
                self._refused_since_log,
                self.limit,
                self.idle_s,
            )
            self._logged, self._refused_since_log = now, 0
