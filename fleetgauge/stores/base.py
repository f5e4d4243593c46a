"""The Store interface every backend implements, its result types and read planning.

A store keeps raw points and the rollup tiers beside them (see ``tiers.py``).
Bucketed reads are planned here, once, so both backends answer the same
question with the same buckets: the range is snapped outward to whole buckets
of ``step_ns`` (aligned to the Unix epoch, as InfluxDB's ``GROUP BY time`` is),
and the data comes from the coarsest tier whose width still divides the step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from fleetgauge.catalogue import TIERS, Point, Tier
from fleetgauge.catalogue import measurement as catalogue_entry

__all__ = [
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreRejected",
    "Buckets",
    "BucketSeries",
    "FieldBuckets",
    "ReadPlan",
    "plan_read",
    "start_read",
    "cover",
    "Where",
    "RAW",
    "bucket_series_from_rows",
    "merge_arrays",
    "series_from_columns",
]

RAW = "raw"
"""Name of the level that reads raw points rather than a rollup tier."""
RAW_STEP_UNIT_NS = 1_000_000
"""Bucket widths on raw points are whole milliseconds."""

Where = Mapping[str, Sequence[str]]
"""Tag filter: a point matches when, for every key, its tag value is one of the values."""


class StoreError(Exception):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or failed (down, 5xx, timeout, locked): retry later."""


class StoreRejected(StoreError):
    """The store refused the data itself (4xx): retrying the same data cannot succeed."""


@dataclass
class FieldBuckets:
    """Per-bucket statistics of one field, aligned with ``BucketSeries.times``."""

    count: list[int] = field(default_factory=list)
    mean: list[float | None] = field(default_factory=list)
    min: list[float | None] = field(default_factory=list)
    max: list[float | None] = field(default_factory=list)


@dataclass
class BucketSeries:
    """One curve: the group-by tags, bucket start times, and statistics per field.

    Buckets without any point are absent (a gap), never zero.
    """

    tags: dict[str, str]
    times: list[int]
    fields: dict[str, FieldBuckets]


@dataclass
class Buckets:
    """Answer of a bucketed read: which level served it, the step and the curves."""

    measurement: str
    level: str
    step_ns: int
    start_ns: int
    end_ns: int
    series: list[BucketSeries]

    def by_tags(self) -> dict[tuple[tuple[str, str], ...], BucketSeries]:
        """Series keyed by their sorted group-by tags, for lookups in tests and charts."""
        return {tuple(sorted(s.tags.items())): s for s in self.series}


class ReadPlan(NamedTuple):
    """How a bucketed read is answered: the level, the bucket width and the snapped range."""

    level: str
    step_ns: int
    start_ns: int
    end_ns: int

    @property
    def buckets(self) -> int:
        """Number of buckets in the range: never more than the max points asked for."""
        return (self.end_ns - self.start_ns) // self.step_ns


def _snap(start_ns: int, end_ns: int, step_ns: int) -> tuple[int, int]:
    return (start_ns // step_ns) * step_ns, -((-end_ns) // step_ns) * step_ns


def plan_read(
    start_ns: int, end_ns: int, max_points: int, tiers: Sequence[Tier] = TIERS
) -> ReadPlan:
    """Choose the level and step so no series exceeds ``max_points`` buckets.

    The step is the smallest multiple of the chosen level's width whose snapped
    range has at most ``max_points`` buckets; the level is the coarsest tier
    not wider than the step the range needs (raw points when none is).
    """
    if end_ns <= start_ns:
        raise ValueError(f"empty time range: start {start_ns} is not before end {end_ns}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    needed = math.ceil((end_ns - start_ns) / max_points)
    level, unit = RAW, RAW_STEP_UNIT_NS
    for tier in sorted(tiers, key=lambda t: t.width_ns, reverse=True):
        if tier.width_ns <= needed:
            level, unit = tier.name, tier.width_ns
            break
    step = max(1, math.ceil(needed / unit)) * unit
    while True:
        start, end = _snap(start_ns, end_ns, step)
        if (end - start) // step <= max_points:
            return ReadPlan(level, step, start, end)
        step += unit


def level_width(level: str, tiers: Sequence[Tier] = TIERS) -> int:
    """Width in ns of a tier by name (raw: the raw step unit); ValueError if unknown."""
    if level == RAW:
        return RAW_STEP_UNIT_NS
    for tier in tiers:
        if tier.name == level:
            return tier.width_ns
    raise ValueError(f"unknown level {level!r} (raw or one of {[t.name for t in tiers]})")


def start_read(
    measurement: str,
    fields: Sequence[str],
    start_ns: int,
    end_ns: int,
    max_points: int,
    level: str | None = None,
) -> tuple[ReadPlan, Buckets]:
    """Plan a bucketed read and check its arguments; returns the plan and an empty answer.

    Raises ValueError for an unknown measurement or field, an empty range, or a
    forced level whose width does not divide the planned step.
    """
    plan = plan_read(start_ns, end_ns, max_points)
    level = level or plan.level
    if plan.step_ns % level_width(level):
        raise ValueError(f"level {level!r} cannot serve buckets of {plan.step_ns} ns")
    m = catalogue_entry(measurement)
    for f in fields:
        m.get_field(f)
    return plan, Buckets(measurement, level, plan.step_ns, plan.start_ns, plan.end_ns, [])


def cover(
    start_ns: int, end_ns: int, tiers: Sequence[Tier] = TIERS
) -> list[tuple[Tier | None, int, int]]:
    """Split [start, end) into segments, each served by the coarsest tier aligned to it.

    ``None`` marks the raw segments at the edges. Used where any point in the
    range matters but not its value (for example listing the workers seen).
    """
    if start_ns >= end_ns:
        return []
    ordered = sorted(tiers, key=lambda t: t.width_ns, reverse=True)
    for i, tier in enumerate(ordered):
        w = tier.width_ns
        a, b = -((-start_ns) // w) * w, (end_ns // w) * w
        if a < b:
            finer = ordered[i + 1 :]
            return [*cover(start_ns, a, finer), (tier, a, b), *cover(b, end_ns, finer)]
    return [(None, start_ns, end_ns)]


def bucket_series_from_rows(
    rows: Iterator[tuple[tuple[tuple[str, str], ...], str, int, int, float, float, float]],
    fields: Sequence[str],
) -> list[BucketSeries]:
    """Build curves from ``(group key, field, bucket start, count, sum, min, max)`` rows.

    Rows of one group key may come in any order; buckets are sorted by time.
    Rows for the same group, field and bucket are merged (sum of counts and sums,
    min of mins, max of maxes), which is how rollup generations and several
    series in one group combine.
    """
    acc: dict[tuple, dict[tuple[str, int], list[float]]] = {}
    for key, fname, bucket, count, total, lo, hi in rows:
        if not count:
            continue
        per_key = acc.get(key)
        if per_key is None:
            per_key = acc[key] = {}
        cur = per_key.get((fname, bucket))
        if cur is None:
            per_key[(fname, bucket)] = [count, total, lo, hi]
        else:
            cur[0] += count
            cur[1] += total
            cur[2] = min(cur[2], lo)
            cur[3] = max(cur[3], hi)
    series = []
    for key in sorted(acc):
        per_key = acc[key]
        times = sorted({bucket for _, bucket in per_key})
        out = {}
        for f in fields:
            stats = [per_key.get((f, t)) for t in times]
            out[f] = FieldBuckets(
                [int(s[0]) if s else 0 for s in stats],
                [s[1] / s[0] if s else None for s in stats],
                [s[2] if s else None for s in stats],
                [s[3] if s else None for s in stats],
            )
        series.append(BucketSeries(dict(key), times, out))
    return series


Columns = tuple[list[int], list[int], list[float], list[float], list[float]]
"""Bucket start times (ascending), counts, sums, mins and maxes of one field of one curve."""


def merge_arrays(times: Any, counts: Any, sums: Any, mins: Any, maxs: Any) -> Columns:
    """One entry per bucket: entries with the same time merged, empty ones dropped.

    Numpy columns: ``times`` int64 and ascending, the others float (NaN where a
    tier point lacks the field). Runs of equal times (several generations, or
    tier points narrower than the step) are reduced; numpy is imported here so
    an agent that never reads back does not carry it.
    """
    import numpy as np

    keep = counts > 0
    if not keep.all():
        times, counts, sums, mins, maxs = (c[keep] for c in (times, counts, sums, mins, maxs))
    if not len(times):
        return [], [], [], [], []
    changes = times[1:] != times[:-1]
    if changes.all():  # one entry per bucket already
        columns = (counts, sums, mins, maxs)
    else:
        starts = np.flatnonzero(np.concatenate(([True], changes)))
        times = times[starts]
        columns = (
            np.add.reduceat(counts, starts),
            np.add.reduceat(sums, starts),
            np.minimum.reduceat(mins, starts),
            np.maximum.reduceat(maxs, starts),
        )
    return (
        times.tolist(),
        columns[0].astype(np.int64).tolist(),
        columns[1].tolist(),
        columns[2].tolist(),
        columns[3].tolist(),
    )


def series_from_columns(
    tags: dict[str, str], fields: Sequence[str], columns: dict[str, Columns]
) -> BucketSeries | None:
    """One curve from per-field columns (as :func:`merge_arrays` returns them).

    Fields recorded at the same buckets (the common case) share their time list
    as is; otherwise times are the union and a field's missing buckets are empty
    (count 0, no mean/min/max). ``None`` when no field has any bucket.
    """
    present = [f for f in fields if f in columns and columns[f][0]]
    if not present:
        return None
    times = columns[present[0]][0]
    if len(present) < len(fields) or any(columns[f][0] != times for f in present):
        times = sorted(set().union(*(columns[f][0] for f in present)))
        aligned = {}
        for f in present:
            ft, fc, fs, flo, fhi = columns[f]
            at = dict(zip(ft, range(len(ft)), strict=True))
            idx = [at.get(t) for t in times]
            aligned[f] = (
                times,
                [fc[i] if i is not None else 0 for i in idx],
                [fs[i] if i is not None else None for i in idx],
                [flo[i] if i is not None else None for i in idx],
                [fhi[i] if i is not None else None for i in idx],
            )
        columns = aligned
    out = {}
    for f in fields:
        if f not in columns:
            out[f] = FieldBuckets(
                [0] * len(times), [None] * len(times), [None] * len(times), [None] * len(times)
            )
            continue
        _, fc, fs, flo, fhi = columns[f]
        out[f] = FieldBuckets(
            list(map(int, fc)),
            [total / n if n else None for total, n in zip(fs, fc, strict=True)],
            list(flo),
            list(fhi),
        )
    return BucketSeries(tags, list(times), out)


class Store(Protocol):
    """What fleetgauge needs from a time-series store. Both backends pass one contract suite."""

    url: str
    concurrent_reads: bool
    """True when reads from several threads on this one store run at the same time
    (InfluxDB: one HTTP request each), so a page reading several measurements
    reads them at once; False when they would only queue (SQLite: one connection)."""

    def write(self, points: Sequence[Point], validated: bool = False) -> None:
        """Write one batch of points and update the rollup tiers; all or nothing.

        Raises InvalidPoint for a point that breaks the data model (nothing is
        written), StoreUnavailable when the store may accept it later, and
        StoreRejected when the store refused the data. ``validated`` skips the
        catalogue check for points the caller has just checked itself.
        """

    def tag_values(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        measurements: Sequence[str],
        where: Where | None = None,
    ) -> list[str]:
        """Sorted values of tag ``key`` on points of ``measurements`` in [start, end)."""

    def read_buckets(
        self,
        measurement: str,
        fields: Sequence[str],
        start_ns: int,
        end_ns: int,
        max_points: int,
        where: Where | None = None,
        group_by: Sequence[str] = (),
        level: str | None = None,
    ) -> Buckets:
        """Count, mean, min and max per bucket of each field, one curve per group-by tags.

        The plan comes from :func:`plan_read`; ``level`` forces the source
        (``"raw"`` or a tier name whose width divides the planned step) so a
        tier answer can be compared with a raw scan of the same buckets.
        """

    def stream_points(
        self,
        measurement: str,
        start_ns: int,
        end_ns: int,
        where: Where | None = None,
    ) -> Iterator[Point]:
        """Raw points in [start, end) in time order, fetched in chunks (memory stays flat)."""

    def delete_before(self, cutoff_ns: int) -> int:
        """Delete raw points and rollups older than ``cutoff_ns``; returns rows deleted."""

    def close(self) -> None:
        """Release connections; the store object is unusable afterwards."""
