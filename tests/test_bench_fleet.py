"""The benchmarks' bulk loader stores what ``store.write`` stores: same raw values, same tiers.

``bench/fleet.py`` loads a week of 32 workers in a minute instead of many; the
read figures are only worth something if a store loaded that way answers
every read exactly as one loaded through the product's write path. Both
stores are real (SQLite file, influxd).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from conftest import BACKENDS, make_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import fleet  # noqa: E402
from fleetgauge.catalogue import TIERS  # noqa: E402
from fleetgauge.stores import Store  # noqa: E402

HOURS = 3
WORKERS = 3
START_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def _through_write(store: Store, series: list[fleet.Series]) -> None:
    batch = []
    for p in fleet.points(series):
        batch.append(p)
        if len(batch) == 500:
            store.write(batch)
            batch = []
    if batch:
        store.write(batch)


def _bulk(backend: str, store: Store, series: list[fleet.Series], request) -> None:  # noqa: ANN001
    if backend == "sqlite":
        assert fleet.load_sqlite(store, iter(series)) == sum(s.points for s in series)
        return
    harness = request.getfixturevalue("influx")
    database = store.url.rsplit("/", 1)[1].split("?")[0]
    loaded = fleet.load_influxdb(harness.server.url, database, iter(series), chunk_lines=777)
    assert loaded == sum(s.points for s in series)


def _answers(store: Store, level: str, max_points: int) -> dict:
    end = START_NS + HOURS * 3600 * 10**9
    out = {}
    for m in fleet.FLEET_MEASUREMENTS:
        b = store.read_buckets(
            m.name, fleet.fields_of(m), START_NS, end, max_points, group_by=["worker"], level=level
        )
        assert b.level == level
        for s in b.series:
            for name, fb in s.fields.items():
                key = (m.name, s.tags["worker"], name)
                out[key] = (s.times, fb.count, fb.mean, fb.min, fb.max)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_load_reads_back_like_store_write(backend: str, request, tmp_path: Path) -> None:  # noqa: ANN001
    series = list(fleet.fleet(START_NS, HOURS / 24, WORKERS))
    assert len(series) == WORKERS * len(fleet.FLEET_MEASUREMENTS)
    written = make_store(backend, request, tmp_path / "written")
    bulk = make_store(backend, request, tmp_path / "bulk")
    try:
        _through_write(written, series)
        _bulk(backend, bulk, series, request)
        # Buckets of 1 minute, 10 minutes and 1 hour over 3 hours: each tier, and raw points.
        levels = [("raw", 180), *((t.name, HOURS * 3600 * 10**9 // t.width_ns) for t in TIERS)]
        for level, max_points in levels:
            a, b = _answers(written, level, max_points), _answers(bulk, level, max_points)
            assert a.keys() == b.keys()
            assert len(a) == WORKERS * sum(
                len(fleet.fields_of(m)) for m in fleet.FLEET_MEASUREMENTS
            )
            for key in a:
                times_a, count_a, mean_a, min_a, max_a = a[key]
                times_b, count_b, mean_b, min_b, max_b = b[key]
                assert times_a == times_b, (level, key)
                assert count_a == count_b, (level, key)
                assert sum(count_a) == HOURS * 360, (level, key)
                assert min_a == min_b and max_a == max_b, (level, key)
                pairs = zip(mean_a, mean_b, strict=True)
                close = [math.isclose(x, y, rel_tol=1e-9) for x, y in pairs]
                assert all(close), (level, key)
    finally:
        written.close()
        bulk.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_bulk_load_from_a_time_on_keeps_every_tier_and_only_later_raw_rows(
    backend: str,
    request,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    series = list(fleet.fleet(START_NS, HOURS / 24, WORKERS))
    raw_from = START_NS + 2 * 3600 * 10**9
    full = make_store(backend, request, tmp_path / "full")
    later = make_store(backend, request, tmp_path / "later")
    try:
        _bulk(backend, full, series, request)
        if backend == "sqlite":
            fleet.load_sqlite(later, iter(series), raw_from_ns=raw_from)
        else:
            database = later.url.rsplit("/", 1)[1].split("?")[0]
            harness = request.getfixturevalue("influx")
            fleet.load_influxdb(harness.server.url, database, iter(series), raw_from_ns=raw_from)
        for tier in TIERS:
            max_points = HOURS * 3600 * 10**9 // tier.width_ns
            assert _answers(later, tier.name, max_points) == _answers(full, tier.name, max_points)
        raw = _answers(later, "raw", 180)
        assert len(raw) == WORKERS * sum(len(fleet.fields_of(m)) for m in fleet.FLEET_MEASUREMENTS)
        for times, count, *_ in raw.values():
            kept = [t for t, c in zip(times, count, strict=True) if c]
            assert sum(count) == 360  # the last hour's samples, and none before raw_from
            assert min(kept) >= raw_from
    finally:
        full.close()
        later.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_read_without_spread_gives_the_same_counts_and_means(
    backend: str,
    request,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    series = list(fleet.fleet(START_NS, HOURS / 24, WORKERS))
    store = make_store(backend, request, tmp_path / "store")
    end = START_NS + HOURS * 3600 * 10**9
    try:
        _bulk(backend, store, series, request)
        for m in fleet.FLEET_MEASUREMENTS:
            fields = fleet.fields_of(m)
            full, means = (
                store.read_buckets(m.name, fields, START_NS, end, 18, None, ["worker"], "10m", s)
                for s in (True, False)
            )
            assert [s.tags for s in full.series] == [s.tags for s in means.series]
            assert len(full.series) == WORKERS
            for a, b in zip(full.series, means.series, strict=True):
                assert a.times == b.times and len(a.times) == 18  # 3 h of 10 min buckets
                for name in fields:
                    fa, fb = a.fields[name], b.fields[name]
                    assert fa.count == fb.count
                    assert all(map(math.isclose, fa.mean, fb.mean)), (m.name, name)
                    if backend == "influxdb":  # min and max left unread: the mean stands in
                        assert fb.min == fb.mean and fb.max == fb.mean
                    else:  # SQLite reads all four at once
                        assert fb.min == fa.min and fb.max == fa.max
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_grid_read_holds_the_counts_and_sums_of_the_curves_read(
    backend: str,
    request,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """``read_grid`` (judging a fleet) and ``read_buckets`` (drawing it) answer the same
    buckets: from a tier and from raw points, with a filter and with device tags."""
    import numpy as np

    from fleetgauge.stores.buckets import grid_from_buckets

    series = list(fleet.fleet(START_NS, HOURS / 24, WORKERS))
    store = make_store(backend, request, tmp_path / "store")
    end = START_NS + HOURS * 3600 * 10**9
    try:
        _bulk(backend, store, series, request)
        for m in fleet.FLEET_MEASUREMENTS:
            fields = fleet.fields_of(m)
            group_by = ("worker", *m.device_tags)
            for where, points, level in [
                (None, 18, "10m"),
                ({"worker": [fleet.worker_name(1), fleet.worker_name(2)]}, 3, "1h"),
                (None, 200, "raw"),
            ]:
                args = (m.name, fields, START_NS, end, points, where, group_by, level)
                grid, curves = store.read_grid(*args), store.read_buckets(*args)
                want = grid_from_buckets(curves, fields)
                assert grid.keys == want.keys and len(grid.keys) == len(curves.series) > 0
                assert (grid.step_ns, grid.level) == (curves.step_ns, level)
                assert grid.times.tolist() == list(
                    range(curves.start_ns, curves.end_ns, curves.step_ns)
                )
                for f in fields:
                    assert np.array_equal(grid.count[f], want.count[f]), (m.name, f, level)
                    np.testing.assert_allclose(grid.total[f], want.total[f], rtol=1e-12)
                    assert grid.count[f].sum() == sum(sum(s.fields[f].count) for s in curves.series)
    finally:
        store.close()
