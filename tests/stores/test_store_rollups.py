"""Rollup tiers and long-range bucketed reads, on SQLite and the real InfluxDB.

Given a known series, each tier holds the count, mean, min and max the test
computes itself; a week of 32 workers at 10 s is read from a tier, with no
more points than asked for, and equals a raw scan of the same buckets.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BACKENDS, make_store

from fleetgauge.catalogue import TIERS, Point
from fleetgauge.stores import Store
from fleetgauge.stores.tiers import TierAccumulator

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z, a whole hour
HOURS6 = 6 * 3600 * S


def cpu(worker: str, t: int, usage: float) -> Point:
    return Point("cpu", {"environment": "prod", "worker": worker}, {"usage_percent": usage}, t)


def expected_stats(points: list[Point], width: int) -> dict[tuple[str, int], tuple]:
    """(worker, bucket) -> (count, mean, min, max) of usage_percent, computed here."""
    values: dict[tuple[str, int], list[float]] = defaultdict(list)
    for p in points:
        values[(p.tags["worker"], p.time_ns - p.time_ns % width)].append(p.fields["usage_percent"])
    return {k: (len(v), sum(v) / len(v), min(v), max(v)) for k, v in values.items()}


def observed_stats(store: Store, max_points: int, level: str | None = None) -> tuple[str, dict]:
    b = store.read_buckets(
        "cpu", ["usage_percent"], T0, T0 + HOURS6, max_points, group_by=["worker"], level=level
    )
    out = {}
    for s in b.series:
        f = s.fields["usage_percent"]
        for i, t in enumerate(s.times):
            out[(s.tags["worker"], t)] = (f.count[i], f.mean[i], f.min[i], f.max[i])
    return b.level, out


def assert_same_stats(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, (count, mean, lo, hi) in want.items():
        assert got[key][0] == count, key
        assert got[key][1] == pytest.approx(mean, rel=1e-9), key
        assert (got[key][2], got[key][3]) == (lo, hi), key


def known_series() -> list[Point]:
    """Three workers, six hours, irregular 7-13 s spacing, values with negatives and decimals."""
    points = []
    for w, worker in enumerate(("a", "b", "c")):
        t, i = T0 + w * S, 0
        while t < T0 + HOURS6:
            points.append(cpu(worker, t, ((i * 37 + w * 11) % 201 - 50) / 4))
            t += (7 + (i * 5 + w) % 7) * S
            i += 1
    return points


@pytest.mark.parametrize(("tier", "max_points"), [("1m", 360), ("10m", 36), ("1h", 6)])
def test_each_tier_holds_count_mean_min_max_of_its_buckets(
    store: Store, tier: str, max_points: int
) -> None:
    points = known_series()
    # Written in two passes (even samples, then odd ones): every bucket more than one
    # width older than the first pass's newest point is closed after it, so the second
    # pass arrives "late" there (a new generation) and merges into the still-open rest.
    store.write(points[0::2])
    store.write(points[1::2])
    width = next(t.width_ns for t in TIERS if t.name == tier)
    level, got = observed_stats(store, max_points)
    assert level == tier
    want = expected_stats(points, width)
    assert_same_stats(got, want)
    _, raw = observed_stats(store, max_points, level="raw")
    assert_same_stats(raw, want)


def test_open_buckets_are_rewritten_not_counted_twice(store: Store) -> None:
    now = time.time_ns()
    start = now - now % (60 * S)
    batches = [
        [cpu("live", start + (k * 10 + j) * S // 10, float(k * 10 + j)) for j in range(10)]
        for k in range(3)
    ]
    for batch in batches:
        store.write(batch)
    b = store.read_buckets("cpu", ["usage_percent"], start, start + 60 * S, 1, level="1m")
    (series,) = b.series
    f = series.fields["usage_percent"]
    assert (f.count, f.mean, f.min, f.max) == ([30], [14.5], [0.0], [29.0])


def test_forgetting_idle_series_between_writes_loses_nothing_and_counts_nothing_twice(
    store: Store,
) -> None:
    """The agent's idle sweep (``forget_idle``) may run between any two writes."""
    now = time.time_ns()
    start = now - now % (3600 * S)
    batches = [
        [cpu(worker, start + (k * 4 + j) * S, float(k * 4 + j)) for j in range(4)]
        for k in range(4)
        for worker in (("live", "gone") if k == 0 else ("live",))
    ]
    for batch in batches:
        store.write(batch)
        store.forget_idle()  # "gone" is dropped at once; "live" only once it idles a sweep
        store.forget_idle()
    for level in ("raw", "1m", "1h"):
        b = store.read_buckets(
            "cpu", ["usage_percent"], start, start + 3600 * S, 1, group_by=["worker"], level=level
        )
        got = {s.tags["worker"]: s.fields["usage_percent"] for s in b.series}
        assert (got["live"].count, got["live"].mean) == ([16], [7.5]), level
        assert (got["live"].min, got["live"].max) == ([0.0], [15.0]), level
        assert (got["gone"].count, got["gone"].max) == ([4], [3.0]), level


def test_a_failed_write_does_not_count_in_the_tiers() -> None:
    acc = TierAccumulator(clock=lambda: T0)
    acc.stage([cpu("a", T0 + S, 1.0)])  # the write failed: staged, never committed
    replay = acc.stage([cpu("a", T0 + S, 1.0), cpu("a", T0 + 2 * S, 3.0)])
    minute = next(r for r in acc.rows(replay) if r.tier.name == "1m")
    assert minute.fields["usage_percent"] == [2, 4.0, 1.0, 3.0]


def test_fields_recorded_at_different_buckets_line_up_with_gaps(store: Store) -> None:
    """A field missing from a bucket is empty there (count 0, no mean), not zero."""
    tags = {"environment": "prod", "worker": "a"}
    store.write(
        [
            Point("cpu", tags, {"usage_percent": 10.0, "load1": 1.0}, T0 + 5 * S),
            Point("cpu", tags, {"usage_percent": 30.0}, T0 + 65 * S),
            Point("cpu", tags, {"load1": 3.0}, T0 + 125 * S),
        ]
    )
    for level in ("1m", "raw"):
        b = store.read_buckets("cpu", ["usage_percent", "load1"], T0, T0 + 180 * S, 3, level=level)
        (s,) = b.series
        assert s.times == [T0, T0 + 60 * S, T0 + 120 * S], level
        usage, load = s.fields["usage_percent"], s.fields["load1"]
        assert (usage.count, usage.mean) == ([1, 1, 0], [10.0, 30.0, None]), level
        assert (load.count, load.mean, load.max) == ([1, 0, 1], [1.0, None, 3.0], [1.0, None, 3.0])


def test_a_backfill_in_many_batches_is_one_generation_per_bucket() -> None:
    """Old data written in order keeps its buckets open until the data moves past them."""
    acc = TierAccumulator(clock=lambda: T0 + 30 * 86400 * S)  # a month after the data
    points = [cpu("a", T0 + i * 10 * S, float(i)) for i in range(6 * 360)]  # six hours
    generations: dict[tuple, set[int]] = defaultdict(set)
    for k in range(0, len(points), 7):  # batches that split buckets
        staged = acc.stage(points[k : k + 7])
        for row in acc.rows(staged):
            generations[(row.tier.name, row.bucket_ns)].add(row.generation)
        acc.commit(staged)
    assert len(generations) == 6 * 60 + 6 * 6 + 6
    assert all(len(g) == 1 for g in generations.values())
    late = acc.stage([cpu("a", T0 + 5 * S, 100.0)])  # hours behind the newest point
    minute = next(r for r in acc.rows(late) if r.tier.name == "1m")
    assert (
        minute.generation not in generations[("1m", T0)] or minute.fields["usage_percent"][0] == 1
    )
    assert minute.fields["usage_percent"] == [1, 100.0, 100.0, 100.0]


# --- a week of 32 workers at 10 s ---------------------------------------------------
WEEK_WORKERS, WEEK_DAYS, WEEK_STEP = 32, 7, 10 * S
WEEK_SAMPLES = WEEK_DAYS * 86400 * S // WEEK_STEP


def week_value(w: int, i: int) -> float:
    return ((i * 7919 + w * 104729) % 1000) / 10.0


def week_batches(size: int = 5000) -> Iterator[list[Point]]:
    batch: list[Point] = []
    for i in range(WEEK_SAMPLES):
        t = T0 + i * WEEK_STEP
        for w in range(WEEK_WORKERS):
            batch.append(cpu(f"worker-{w:02d}", t, week_value(w, i)))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@pytest.fixture(scope="module", params=BACKENDS)
def week_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    store = make_store(request.param, request, Path(tmp_path_factory.mktemp("week")))
    for batch in week_batches():
        store.write(batch)
    yield store
    store.close()


def test_a_week_of_32_workers_is_bucketed_within_max_points(week_store: Store) -> None:
    end = T0 + WEEK_DAYS * 86400 * S
    b = week_store.read_buckets(
        "cpu", ["usage_percent"], T0, end, max_points=1000, group_by=["worker"]
    )
    assert len(b.series) == WEEK_WORKERS
    assert all(len(s.times) <= 1000 for s in b.series)
    assert b.level != "raw"
    per_bucket = b.step_ns // WEEK_STEP
    for s in b.series:
        w = int(s.tags["worker"].split("-")[1])
        f = s.fields["usage_percent"]
        assert len(s.times) == WEEK_SAMPLES // per_bucket
        for k, t in enumerate(s.times):
            first = (t - T0) // WEEK_STEP
            values = [week_value(w, i) for i in range(first, first + per_bucket)]
            assert f.count[k] == len(values)
            assert f.mean[k] == pytest.approx(sum(values) / len(values), rel=1e-9)
            assert (f.min[k], f.max[k]) == (min(values), max(values))


def test_a_long_range_is_served_by_a_tier_and_equals_the_raw_scan(week_store: Store) -> None:
    end = T0 + WEEK_DAYS * 86400 * S
    tier = week_store.read_buckets(
        "cpu",
        ["usage_percent"],
        T0,
        end,
        max_points=1008,
        group_by=["worker"],
        where={"worker": ["worker-03", "worker-17"]},
    )
    assert tier.level == "10m" and tier.step_ns == 600 * S
    raw = week_store.read_buckets(
        "cpu",
        ["usage_percent"],
        T0,
        end,
        max_points=1008,
        group_by=["worker"],
        where={"worker": ["worker-03", "worker-17"]},
        level="raw",
    )
    assert raw.level == "raw" and raw.step_ns == tier.step_ns
    assert tier.by_tags().keys() == raw.by_tags().keys() and len(tier.series) == 2
    for key, t in tier.by_tags().items():
        r = raw.by_tags()[key]
        assert t.times == r.times and len(t.times) == 1008
        ft, fr = t.fields["usage_percent"], r.fields["usage_percent"]
        assert ft.count == fr.count and ft.min == fr.min and ft.max == fr.max
        assert ft.mean == pytest.approx(fr.mean, rel=1e-9)


def test_streaming_a_week_keeps_memory_flat(week_store: Store) -> None:
    import tracemalloc

    def peak_while_streaming(days: int) -> tuple[int, int]:
        tracemalloc.start()
        count, last = 0, 0
        for p in week_store.stream_points(
            "cpu", T0, T0 + days * 86400 * S, where={"worker": ["worker-05", "worker-06"]}
        ):
            assert p.time_ns >= last
            last = p.time_ns
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return count, peak

    one_count, one_peak = peak_while_streaming(1)
    week_count, week_peak = peak_while_streaming(WEEK_DAYS)
    assert week_count == WEEK_DAYS * one_count == 2 * WEEK_SAMPLES
    assert week_peak < 2 * one_peak + 1_000_000, (one_peak, week_peak)
