"""Rollup tiers computed by fleetgauge's own write path, identical on every store.

For every tiered measurement and numeric field, each tier keeps per bucket the
count, sum, min and max of the raw values. The writer holds the buckets that are
still open in memory and, with every batch, writes their *cumulative* aggregate
(replacing the row it wrote before), so a tier row is at most one batch behind.

Generations. Each time a bucket is opened in memory it gets a random
*generation* number (in [0, tier width)); the stored row is keyed by bucket and
generation (on InfluxDB the point's timestamp is bucket start + generation).
A bucket is closed (dropped from memory) one tier width after its end, counted
on the earlier of the wall clock and the newest point written so far: live data
closes buckets as time passes, and a backfill of old data (an import, a long
spool replay) keeps each bucket open until the data has moved past it, so it
is stored as one generation, not one per batch. A point
that arrives later (a late push, a spool replay after an outage, a restarted
agent) opens the bucket again under a new generation, so it never overwrites
what was written before. Reads merge all generations of a bucket (sum of counts
and sums, min of mins, max of maxes): nothing is lost and every value counts
once. The one exception is a raw point written twice (a batch replayed after
the store stored it but the acknowledgement was lost): the raw point is
replaced, but its tiers count it twice.

Staging. :meth:`TierAccumulator.stage` computes the new aggregates without
changing the accumulator; the store writes them with the raw points and calls
:meth:`commit` only when the write succeeded, so a failed batch that is spooled
and replayed is not counted twice.
"""

from __future__ import annotations

import math
import random
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from operator import le
from typing import NamedTuple

from fleetgauge.catalogue import MEASUREMENTS, TIERS, Point, Tier
from fleetgauge.stores.runs import Column, Runs, split

__all__ = ["TierAccumulator", "TierRow", "Staged"]

TagsKey = tuple[tuple[str, str], ...]
BucketKey = tuple[int, str, TagsKey, int]  # tier index, measurement, tags, bucket start


class _Open(NamedTuple):
    generation: int
    fields: dict[str, list[float]]  # field -> [count, sum, min, max]


class TierRow(NamedTuple):
    """One stored rollup row: cumulative aggregates of one bucket generation."""

    tier: Tier
    measurement: str
    tags: TagsKey
    bucket_ns: int
    generation: int
    fields: dict[str, list[float]]


Staged = dict[BucketKey, _Open]


def _merge(target: dict[str, list[float]], partial: dict[str, list[float]]) -> None:
    for name, (count, total, low, high) in partial.items():
        cur = target.get(name)
        if cur is None:
            target[name] = [count, total, low, high]
        else:
            cur[0] += count
            cur[1] += total
            if low < cur[2]:
                cur[2] = low
            if high > cur[3]:
                cur[3] = high


_LARGEST = sys.float_info.max


def _saturated(fields: dict[str, list[float]]) -> dict[str, list[float]]:
    """``fields`` with any sum past the largest float (values near 1e308 added up) held at
    it: line protocol has no infinity, and one such sum made InfluxDB refuse the batch."""
    if all(-_LARGEST <= stats[1] <= _LARGEST for stats in fields.values()):
        return fields
    return {
        name: [c, math.copysign(_LARGEST, total) if total == total else 0.0, low, high]
        if not -_LARGEST <= total <= _LARGEST
        else [c, total, low, high]
        for name, (c, total, low, high) in fields.items()
    }


class TierAccumulator:
    """Keeps the open buckets of every tier and stages their new aggregates per batch."""

    def __init__(
        self,
        tiers: Sequence[Tier] = TIERS,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
        max_open: int = 200_000,
    ) -> None:
        self.tiers = tuple(tiers)
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_open = max_open
        self._open: dict[BucketKey, _Open] = {}
        self._touched: set[BucketKey] = set()  # committed since the last forget_idle()
        self._newest_ns = 0  # end of the newest finest-tier bucket committed
        self._numeric = {
            name: frozenset(f.name for f in m.fields if f.type is not str)
            for name, m in MEASUREMENTS.items()
            if m.tiered
        }
        self._widths = sorted(t.width_ns for t in self.tiers)
        if any(w % self._widths[0] for w in self._widths):
            raise ValueError("every tier width must be a multiple of the finest one")
        self._by_width = [(i, t.width_ns) for i, t in enumerate(self.tiers)]
        self._sorted_tags: dict[tuple[tuple[str, str], ...], TagsKey] = {}

    def stage(self, points: Sequence[Point], after: Staged | None = None) -> Staged:
        """Aggregates of every bucket the batch touches, including what is already open.

        ``after`` is a batch staged but not committed yet (being written): this batch is
        staged as if it were, so that committing both in order gives the open buckets
        they make together. Were it not written, stage again without it.
        """
        return self.stage_runs(split(points), after)

    def stage_runs(self, runs: Runs, after: Staged | None = None) -> Staged:
        """:meth:`stage` of a batch already split into runs (:func:`~.runs.split`).

        The batch is first summed per finest-tier bucket: a plain run whose times
        never go back a slice per bucket (``sum``, ``min``, ``max`` of the slice),
        any other point one dictionary update. Then each partial is merged into the
        bucket of every tier that holds it: tier widths are multiples of the finest.
        """
        finest = self._widths[0]
        partials: dict[tuple[str, TagsKey, int], dict[str, list[float]]] = {}
        tags_keys: dict[int, TagsKey] = {}  # id(tags) -> key: points share their series' tags
        for run, plain in runs:
            if plain is not None and self._stage_column(run[0].tags, plain, partials, tags_keys):
                continue
            agg: dict[str, list[float]] = {}
            last: tuple[str, object, int] | None = None
            for p in run:  # the points hold their tags, so an id stays theirs for the whole loop
                measurement, tags, fields, t = p
                numeric = self._numeric.get(measurement)
                if numeric is None:
                    continue
                bucket = t - t % finest
                if last is None or last != (measurement, tags, bucket):
                    key = (measurement, self._key_of(tags, tags_keys), bucket)
                    agg = partials.get(key)  # type: ignore[assignment]
                    if agg is None:
                        agg = partials[key] = {}
                    last = (measurement, tags, bucket)
                for name, value in fields.items():
                    if name not in numeric:
                        continue
                    value = float(value)
                    cur = agg.get(name)
                    if cur is None:
                        agg[name] = [1, value, value, value]
                    else:
                        cur[0] += 1
                        cur[1] += value
                        if value < cur[2]:
                            cur[2] = value
                        if value > cur[3]:
                            cur[3] = value
        staged: Staged = {}
        for (measurement, tags, bucket), agg in partials.items():
            if not agg:
                continue
            for i, width in self._by_width:
                key = (i, measurement, tags, bucket - bucket % width)
                target = staged.get(key)
                if target is None:
                    target = staged[key] = self._copy_or_open(key, width, after)
                _merge(target.fields, agg)
        return staged

    def _stage_column(
        self,
        tags: Mapping[str, str],
        plain: Column,
        partials: dict[tuple[str, TagsKey, int], dict[str, list[float]]],
        tags_keys: dict[int, TagsKey],
    ) -> bool:
        """Sum a plain run into ``partials`` a bucket slice at a time; False when its
        times go back (the caller then sums it point by point)."""
        numeric = self._numeric.get(plain.measurement)
        if numeric is None or plain.field not in numeric:
            return numeric is None  # not tiered: nothing to sum; a field not summed: per point
        times, values = plain.times, plain.values
        if not all(map(le, times, times[1:])):
            return False
        finest, name, start = self._widths[0], plain.field, 0
        tags_key = self._key_of(tags, tags_keys)
        while start < len(times):
            bucket = times[start] - times[start] % finest
            end = bisect_left(times, bucket + finest, start)
            part = values[start:end]
            agg = partials.setdefault((plain.measurement, tags_key, bucket), {})
            stats = [end - start, sum(part), min(part), max(part)]
            _merge(agg, {name: stats})
            start = end
        return True

    def _key_of(self, tags: Mapping[str, str], known: dict[int, TagsKey]) -> TagsKey:
        key = known.get(id(tags))
        if key is None:
            key = known[id(tags)] = self._tags_key(tags)
        return key

    def _tags_key(self, tags: Mapping[str, str]) -> TagsKey:
        items = tuple(tags.items())
        key = self._sorted_tags.get(items)
        if key is None:
            if len(self._sorted_tags) >= self._max_open:
                self._sorted_tags.clear()
            key = self._sorted_tags[items] = tuple(sorted(items))
        return key

    def _copy_or_open(self, key: BucketKey, width: int, after: Staged | None = None) -> _Open:
        existing = after.get(key) if after is not None else None
        if existing is None:
            existing = self._open.get(key)
        if existing is None:
            return _Open(self._rng.randrange(width), {})
        return _Open(existing.generation, {k: list(v) for k, v in existing.fields.items()})

    def rows(self, staged: Staged) -> list[TierRow]:
        """The rows a store must write for a staged batch."""
        return [
            TierRow(self.tiers[i], m, tags, bucket, b.generation, _saturated(b.fields))
            for (i, m, tags, bucket), b in staged.items()
        ]

    def commit(self, staged: Staged) -> None:
        """Make a written batch part of the open buckets, then close buckets past their end."""
        self._open.update(staged)
        self._touched.update(staged)
        widths = [t.width_ns for t in self.tiers]
        finest = widths.index(min(widths))
        for tier_index, _, _, bucket in staged:
            if tier_index == finest and bucket + widths[finest] > self._newest_ns:
                self._newest_ns = bucket + widths[finest]
        now = min(self._clock(), self._newest_ns)
        closed = [key for key in self._open if key[3] + 2 * widths[key[0]] < now]
        for key in closed:
            del self._open[key]
        if len(self._open) > self._max_open:
            for key in sorted(self._open, key=lambda k: k[3])[: len(self._open) - self._max_open]:
                del self._open[key]

    def forget_idle(self) -> int:
        """Close the open buckets no batch touched since the last call; returns how many.

        Safe at any time: a bucket that gets a point again opens under a new
        generation (see the module's docstring), so nothing is lost or counted
        twice; it only costs one more stored row for that bucket.
        """
        idle = [key for key in self._open if key not in self._touched]
        if idle:  # a new dictionary: one that held many buckets keeps its size after deletions
            self._open = {k: v for k, v in self._open.items() if k in self._touched}
        self._touched = set()
        self._sorted_tags = {}
        return len(idle)

    @property
    def open_buckets(self) -> int:
        """How many buckets are held in memory (bounded by ``max_open``)."""
        return len(self._open)
