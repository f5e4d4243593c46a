"""The store contract: the same tests run against SQLite and the real InfluxDB.

Given points written through ``Store.write``, the user reads back exactly those
values: as raw points, as tag listings, and as bucketed curves.
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest
from conftest import InfluxHarness

from fleetgauge.catalogue import CPU, DISK, EVENT, LIST_METRIC, MEMORY, PIPELINE_METRIC, Point
from fleetgauge.stores import Store, StoreError, StoreUnavailable, open_store
from fleetgauge.validation import InvalidPoint

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def cpu(worker: str, t: int, usage: float, environment: str = "prod", **extra: str) -> Point:
    return Point(
        "cpu",
        {"environment": environment, "worker": worker, **extra},
        {"usage_percent": usage, "load1": usage / 50},
        t,
    )


def test_points_round_trip_exactly(store: Store) -> None:
    points = [
        cpu("w1", T0, 12.5),
        cpu("w2", T0 + S, 99.0, team="vision"),
        Point(
            "memory",
            {"environment": "prod", "worker": "w1"},
            {"used_bytes": 8.0e9, "total_bytes": 1.6e10, "used_percent": 50.0},
            T0 + 2 * S,
        ),
        Point(
            "disk",
            {"environment": "prod", "worker": "w1", "mount": "/data"},
            {"used_bytes": 1.0e11, "total_bytes": 4.0e11, "used_percent": 25.0},
            T0 + 3 * S,
        ),
        Point(
            "pipeline_metric",
            {
                "environment": "prod",
                "deployment": "fraud-v2",
                "metric": "score",
                "execution_id": "run-7",
            },
            {"value": 1.0},
            T0,
        ),
        Point(
            "list_metric",
            {"environment": "prod", "pipeline": "train", "metric": "accuracy"},
            {"value": 0.91, "step": 3},
            T0 + 4 * S,
        ),
        Point(
            "event",
            {"environment": "prod", "name": "checkpoint_started", "source": "trainer"},
            {"metadata": json.dumps({"epoch": 3, "note": 'line\nbreak "quoted"'})},
            T0 + 5 * S,
        ),
    ]
    store.write(points)
    for m in (CPU, MEMORY, DISK, PIPELINE_METRIC, LIST_METRIC, EVENT):
        got = list(store.stream_points(m.name, T0, T0 + 60 * S))
        want = [p for p in points if p.measurement == m.name]
        assert [(p.time_ns, dict(p.tags), dict(p.fields)) for p in got] == [
            (p.time_ns, dict(p.tags), dict(p.fields)) for p in want
        ], m.name
    (step_point,) = store.stream_points("list_metric", T0, T0 + 60 * S)
    assert step_point.fields["step"] == 3 and isinstance(step_point.fields["step"], int)


def test_a_batch_whose_points_share_tag_mappings_reads_back_exactly(store: Store) -> None:
    """As the push endpoint writes: one tags object per series, shared by measurements."""
    a = {"environment": "prod", "deployment": "fraud-v2", "metric": "score"}
    b = {"environment": "prod", "deployment": "fraud-v3", "metric": "score"}
    points = []
    for i in range(24):
        tags = a if i % 4 < 2 else b  # runs of two of one series, then of the other
        if i % 3 == 2:
            points.append(Point("list_metric", tags, {"value": i / 8, "step": i}, T0 + i * S))
        else:
            points.append(Point("pipeline_metric", tags, {"value": i / 8}, T0 + i * S))
    store.write(points)
    for m in (PIPELINE_METRIC, LIST_METRIC):
        got = [
            (p.time_ns, dict(p.tags), dict(p.fields))
            for p in store.stream_points(m.name, T0, T0 + 60 * S)
        ]
        want = [(p.time_ns, p.tags, p.fields) for p in points if p.measurement == m.name]
        assert got == want, m.name


def test_same_series_and_time_is_replaced_not_duplicated(store: Store) -> None:
    store.write([cpu("w1", T0, 10.0)])
    store.write([cpu("w1", T0, 20.0)])
    (p,) = store.stream_points("cpu", T0, T0 + S)
    assert p.fields["usage_percent"] == 20.0


def test_stream_is_in_time_order_across_series_and_bounded_by_range(store: Store) -> None:
    points = [cpu(f"w{i % 3}", T0 + i * S, float(i)) for i in range(30)]
    store.write(list(reversed(points)))
    got = list(store.stream_points("cpu", T0 + 5 * S, T0 + 25 * S))
    assert [p.time_ns for p in got] == [T0 + i * S for i in range(5, 25)]
    assert [p.fields["usage_percent"] for p in got] == [float(i) for i in range(5, 25)]


def test_stream_filters_by_tags(store: Store) -> None:
    store.write([cpu("a", T0, 1.0), cpu("b", T0, 2.0), cpu("c", T0, 3.0, environment="dev")])
    got = store.stream_points(
        "cpu", T0, T0 + S, where={"worker": ["a", "c"], "environment": ["prod"]}
    )
    assert [p.tags["worker"] for p in got] == ["a"]
    assert list(store.stream_points("cpu", T0, T0 + S, where={"worker": []})) == []


def test_an_empty_value_in_a_filter_matches_points_without_that_tag(store: Store) -> None:
    """As InfluxQL has it (``tag = ''``), on both stores: tags are never empty."""
    store.write([cpu("a", T0, 1.0), cpu("b", T0, 2.0, gpu="0"), cpu("c", T0, 3.0, gpu="1")])
    without = store.stream_points("cpu", T0, T0 + S, where={"gpu": [""]})
    assert [p.tags["worker"] for p in without] == ["a"]
    either = store.stream_points("cpu", T0, T0 + S, where={"gpu": ["", "1"]})
    assert sorted(p.tags["worker"] for p in either) == ["a", "c"]
    assert store.tag_values("worker", T0, T0 + S, ["cpu"], where={"gpu": [""]}) == ["a"]


def test_tag_values_only_lists_what_has_points_in_the_range(store: Store) -> None:
    day = 86400 * S
    store.write(
        [
            cpu("old", T0 - 2 * day, 1.0),
            cpu("edge-start", T0 + 17 * S, 1.0),  # inside, in a partial first minute
            cpu("middle", T0 + day // 2, 1.0),  # inside, in a whole hour
            cpu("edge-end", T0 + day - 3 * S, 1.0),  # inside, in a partial last minute
            cpu("after", T0 + day + 5 * S, 1.0),
            cpu("dev-box", T0 + 100 * S, 1.0, environment="dev"),
        ]
    )
    got = store.tag_values("worker", T0 + 10 * S, T0 + day, ["cpu", "memory"])
    assert got == ["dev-box", "edge-end", "edge-start", "middle"]
    prod = store.tag_values("worker", T0, T0 + day, ["cpu"], where={"environment": ["prod"]})
    assert prod == ["edge-end", "edge-start", "middle"]
    assert store.tag_values("environment", T0, T0 + day, ["cpu"]) == ["dev", "prod"]
    assert store.tag_values("worker", T0, T0 + day, ["memory"]) == []
    # the fields a reader draws: a point holding one is listed, within a partial minute too
    drawn = {"cpu": ["usage_percent"], "memory": ["used_percent"]}
    got = store.tag_values("worker", T0 + 10 * S, T0 + day, ["cpu", "memory"], None, drawn)
    assert got == ["dev-box", "edge-end", "edge-start", "middle"]


def test_tag_values_of_drawn_fields_leave_other_fields_uncounted_on_influxdb(
    store: Store,
) -> None:
    """InfluxDB counts only the fields named (its work is per series and field); SQLite,
    whose probe finds any field's sample at once, may list the point either way."""
    store.write([Point("cpu", {"environment": "e", "worker": "w"}, {"load1": 1.0}, T0)])
    end = T0 + 3600 * S
    assert store.tag_values("worker", T0, end, ["cpu"]) == ["w"]
    drawn = store.tag_values("worker", T0, end, ["cpu"], None, {"cpu": ["usage_percent"]})
    assert drawn == ([] if "influxdb" in store.url else ["w"])


def test_tag_values_for_pipeline_metrics(store: Store) -> None:
    def m(dep: str, metric: str, t: int) -> Point:
        return Point(
            "pipeline_metric",
            {"environment": "e", "deployment": dep, "metric": metric},
            {"value": 1.0},
            t,
        )

    store.write([m("a", "score", T0), m("b", "latency", T0 + S), m("c", "score", T0 - 3600 * S)])
    assert store.tag_values("deployment", T0, T0 + 60 * S, ["pipeline_metric"]) == ["a", "b"]
    assert store.tag_values(
        "metric", T0, T0 + 60 * S, ["pipeline_metric"], where={"deployment": ["a"]}
    ) == ["score"]


def test_invalid_points_are_refused_whole(store: Store) -> None:
    good = cpu("w1", T0, 1.0)
    bad_batches = [
        [good, Point("cpu", {"environment": "prod"}, {"usage_percent": 1.0}, T0)],
        [good, Point("cpu", {"environment": "prod", "worker": "w"}, {"nope": 1.0}, T0)],
        [
            good,
            Point(
                "cpu", {"environment": "prod", "worker": "w"}, {"usage_percent": float("nan")}, T0
            ),
        ],
        [good, Point("cpu", {"environment": "prod", "worker": ""}, {"usage_percent": 1.0}, T0)],
        [good, Point("nope", {"environment": "prod", "worker": "w"}, {"usage_percent": 1.0}, T0)],
        [good, Point("pipeline_metric", {"environment": "e", "metric": "m"}, {"value": 1.0}, T0)],
    ]
    for batch in bad_batches:
        with pytest.raises(InvalidPoint):
            store.write(batch)
    assert list(store.stream_points("cpu", T0 - S, T0 + S)) == []


def test_bucketed_read_of_a_short_range_comes_from_raw_points(store: Store) -> None:
    store.write([cpu("w1", T0 + i * S, float(i)) for i in range(100)])
    b = store.read_buckets(
        "cpu", ["usage_percent"], T0, T0 + 100 * S, max_points=10, group_by=["worker"]
    )
    assert b.level == "raw" and b.step_ns == 10 * S
    (series,) = b.series
    assert series.tags == {"worker": "w1"}
    assert series.times == [T0 + k * 10 * S for k in range(10)]
    f = series.fields["usage_percent"]
    assert f.count == [10] * 10
    assert f.mean == [k * 10 + 4.5 for k in range(10)]
    assert f.min == [float(k * 10) for k in range(10)]
    assert f.max == [float(k * 10 + 9) for k in range(10)]


def test_values_near_the_largest_float_are_stored_and_their_rollups_saturate(
    store: Store,
) -> None:
    """1e308 is a finite value, so it is taken; two of them add up past the largest float,
    which line protocol cannot write (InfluxDB refused the whole batch): the rollup's sum
    holds at the largest float instead."""
    store.write([cpu("w1", T0 + i * S, 1e308) for i in range(3)])
    assert [p.fields["usage_percent"] for p in store.stream_points("cpu", T0, T0 + 9 * S)] == [
        1e308
    ] * 3
    b = store.read_buckets(
        "cpu", ["usage_percent"], T0, T0 + 3 * 3600 * S, max_points=3, group_by=["worker"]
    )
    assert b.level != "raw", b.level  # from a rollup tier
    f = b.series[0].fields["usage_percent"]
    assert f.count[0] == 3 and f.max[0] == 1e308 and f.min[0] == 1e308


def test_bucketed_read_leaves_gaps_where_nothing_was_sent(store: Store) -> None:
    store.write([cpu("w1", T0 + i * S, 5.0) for i in range(100) if not 30 <= i < 60])
    b = store.read_buckets(
        "cpu", ["usage_percent"], T0, T0 + 100 * S, max_points=10, group_by=["worker"]
    )
    assert b.series[0].times == [T0 + k * 10 * S for k in (0, 1, 2, 6, 7, 8, 9)]


def test_unreachable_influxdb_is_reported_as_unavailable_in_words() -> None:
    s = open_store("influxdb+http://127.0.0.1:9/nothing?org=o&timeout=2")
    with pytest.raises(StoreUnavailable) as write:
        s.write([cpu("w1", T0, 1.0)])
    with pytest.raises(StoreUnavailable) as read:
        s.tag_values("worker", T0, T0 + S, ["cpu"])
    with pytest.raises(StoreUnavailable) as check:
        s.check()
    for e in (write, read, check):
        text = str(e.value)
        assert "InfluxDB at http://127.0.0.1:9 unreachable" in text, text
        assert "refused" in text.lower() and " object at 0x" not in text, text


def test_check_names_a_missing_bucket(influx: InfluxHarness) -> None:
    good = open_store(influx.store_url(influx.new_database()))
    good.check()
    good.close()
    missing = open_store(influx.store_url("absent_bucket"))
    with pytest.raises(StoreError) as e:
        missing.check()
    assert "has no bucket" in str(e.value), e.value


def test_influxdb_url_chooses_gzip_and_both_ways_store_the_same(influx: InfluxHarness) -> None:
    for choice in ("true", "false"):
        url = influx.store_url(influx.new_database()) + f"&gzip={choice}"
        s = open_store(url)
        try:
            s.write([cpu("w1", T0, 1.5), cpu("w2", T0, 2.5)])
            got = [p.fields["usage_percent"] for p in s.stream_points("cpu", T0, T0 + S)]
            assert got == [1.5, 2.5]
        finally:
            s.close()
    with pytest.raises(ValueError, match="gzip='maybe' is not true or false"):
        open_store(influx.store_url("x") + "&gzip=maybe")


def test_check_names_a_refused_token_by_the_answers_status() -> None:
    """An InfluxDB that answers 401 (a wrong or missing token): the error says so, by the
    HTTP status the store error carries, not by the wording of the server's message."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            body = b'{"code":"unauthorized","message":"unauthorized access"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _refuse

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = open_store(f"influxdb+http://127.0.0.1:{server.server_port}/fleet?org=ml")
        with pytest.raises(StoreError) as e:
            store.check()
        store.close()
    finally:
        server.shutdown()
        server.server_close()
    assert e.value.status == 401
    assert "refused the token (FLEETGAUGE_INFLUX_TOKEN)" in str(e.value), e.value
