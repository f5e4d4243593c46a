"""Answers of bucketed reads, and how partial buckets merge into them.

Two shapes: ``Buckets`` (a curve per group, for drawing) and ``Grid`` (a matrix of every
group by every bucket, for judging, ranking and banding a fleet in a few array operations).

A bucket holds count, mean, min and max of each field. Both backends build
their answers here: rows of (group, field, bucket, count, sum, min, max) from a
SQL ``GROUP BY``, or numpy columns of tier rows, whose repeated buckets
(several rollup generations, several series in one group) are merged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FieldBuckets",
    "BucketSeries",
    "Buckets",
    "bucket_series_from_rows",
    "merge_arrays",
    "series_from_columns",
    "Columns",
    "Grid",
    "fill_grid",
    "grid_from_buckets",
]


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


@dataclass
class Grid:
    """Answer of a read of many curves as matrices: a row per group, a column per bucket.

    ``count[f]`` and ``total[f]`` (float64, rows x buckets) hold how many samples of
    field ``f`` fell in each bucket of each group and their sum; a bucket without any
    has count 0 (and total 0). ``times`` are the starts of every bucket of the range,
    in order; ``keys`` the group-by tags of the rows, sorted, as ``Buckets`` orders its
    curves. Groups without any sample in the range have no row.
    """

    measurement: str
    level: str
    step_ns: int
    start_ns: int
    end_ns: int
    keys: list[tuple[tuple[str, str], ...]]
    times: Any
    count: dict[str, Any]
    total: dict[str, Any]


def fill_grid(
    empty: Buckets,
    keys: Sequence[tuple[tuple[str, str], ...]],
    rows: Any,
    times: Any,
    stats: dict[str, tuple[Any, Any]],
) -> Grid:
    """A grid from flat columns of (partial) buckets, merged by ``np.bincount``.

    ``keys`` are sorted; ``rows`` (int64) says the key of each entry, ``times`` (int64)
    its time (floored here to the step of ``empty``, the plan's answer), and
    ``stats[f]`` its count and sum of field ``f`` (NaN where an entry lacks the field).
    Generations of a tier row, tier rows narrower than the step and several series of
    one group all add up in their cell.
    """
    import numpy as np

    start, step = empty.start_ns, empty.step_ns
    width = max(1, (empty.end_ns - start) // step)
    cells = len(keys) * width
    at = np.asarray(rows, dtype=np.int64) * width + (np.asarray(times, np.int64) - start) // step
    count, total = {}, {}
    for f, (counts, sums) in stats.items():
        counts = np.nan_to_num(np.asarray(counts, np.float64), nan=0.0)
        sums = np.where(counts > 0, np.asarray(sums, np.float64), 0.0)
        count[f] = np.bincount(at, counts, cells).reshape(len(keys), width)
        total[f] = np.bincount(at, sums, cells).reshape(len(keys), width)
    seen = np.zeros(len(keys), dtype=bool)
    for c in count.values():
        seen |= c.any(axis=1)
    if not seen.all():
        keys = [k for k, s in zip(keys, seen.tolist(), strict=True) if s]
        count = {f: c[seen] for f, c in count.items()}
        total = {f: t[seen] for f, t in total.items()}
    times = start + np.arange(width, dtype=np.int64) * step
    return Grid(
        empty.measurement, empty.level, step, start, empty.end_ns, list(keys), times, count, total
    )


def grid_from_buckets(b: Buckets, fields: Sequence[str]) -> Grid:
    """The grid of an answer already read as curves (a store without a grid read of its
    own, or a raw read, whose buckets the store has made already)."""
    import numpy as np

    keys = [tuple(s.tags.items()) for s in b.series]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    none = np.zeros(0, dtype=np.int64)  # so that no curve at all concatenates too
    rows, times = [none], [none]
    stats: dict[str, tuple[list, list]] = {f: ([none], [none]) for f in fields}
    for i, s in enumerate(b.series[j] for j in order):
        rows.append(np.full(len(s.times), i, dtype=np.int64))
        times.append(np.asarray(s.times, dtype=np.int64))
        for f in fields:
            fb = s.fields[f]
            counts = np.asarray(fb.count, dtype=np.float64)
            means = np.array(fb.mean, dtype=np.float64)  # None: NaN
            stats[f][0].append(counts)
            stats[f][1].append(np.where(counts > 0, means, 0.0) * counts)
    empty = Buckets(b.measurement, b.level, b.step_ns, b.start_ns, b.end_ns, [])
    joined = {f: (np.concatenate(c), np.concatenate(t)) for f, (c, t) in stats.items()}
    return fill_grid(
        empty, [keys[j] for j in order], np.concatenate(rows), np.concatenate(times), joined
    )
