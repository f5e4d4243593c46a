"""Per-second rates from monotonically increasing counters (bytes read, bytes received...).

Used by the disk, network and container collectors. A rate is the counter delta divided
by the real elapsed time between two samples, read from a monotonic clock, so a late or
skipped sample never inflates or deflates the rate. Three cases give no rate rather than
a wrong one: the first sample of a key (nothing to compare with), a counter that went
backwards (device re-created, driver reload, wrap that psutil did not absorb) and a clock
that did not advance. A key missing from a sample is forgotten, so a device that comes back
starts again with a silent first sample instead of a spike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence

__all__ = ["RateTracker"]


class RateTracker:
    """Turns successive counter snapshots into per-second rates, one tuple of counters per key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """``clock`` returns seconds from a monotonic source; tests pass a fake one."""
        self._clock = clock
        self._last_time: float | None = None
        self._last: dict[Hashable, Sequence[int | float]] = {}

    def update(
        self, counters: Mapping[Hashable, Sequence[int | float]]
    ) -> dict[Hashable, tuple[float, ...]]:
        """Record a snapshot taken now; return the rate of every key that has a valid one.

        ``counters`` maps a key (device, interface...) to its counter values, in a fixed
        order. A key gets a rate tuple only when it was in the previous snapshot and none of
        its counters decreased; all its rates are then >= 0.
        """
        now = self._clock()
        elapsed = None if self._last_time is None else now - self._last_time
        previous, self._last, self._last_time = self._last, dict(counters), now
        if elapsed is None or elapsed <= 0:
            return {}
        rates: dict[Hashable, tuple[float, ...]] = {}
        for key, values in self._last.items():
            before = previous.get(key)
            if before is None or len(before) != len(values):
                continue
            deltas = [new - old for new, old in zip(values, before, strict=True)]
            if all(d >= 0 for d in deltas):
                rates[key] = tuple(d / elapsed for d in deltas)
        return rates
