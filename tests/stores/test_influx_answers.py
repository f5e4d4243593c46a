"""InfluxDB answers: MessagePack when the server speaks it, JSON when it does not, same values.

The store asks for MessagePack (influxd encodes it about twice as fast as JSON);
a server that ignores ``Accept`` answers JSON. Both go through the real influxd:
the write front drops ``Accept`` to play the JSON-only server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import InfluxHarness

from fleetgauge.catalogue import CPU, Point
from fleetgauge.stores import Store, StoreError, open_store

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
HOURS = 3


def _fleet() -> list[Point]:
    """Two workers (one with a non-ASCII name), a point every 10 s for three hours."""
    points = []
    for w, worker in enumerate(["w-1", "wörker 2"]):
        for i in range(HOURS * 360):
            usage = (i % 100) + w * 0.25
            t = T0 + i * 10 * S
            points.append(
                Point("cpu", {"environment": "prod", "worker": worker}, {"usage_percent": usage}, t)
            )
    return points


@pytest.fixture
def seeded(influx: InfluxHarness) -> Iterator[tuple[InfluxHarness, str]]:
    database = influx.new_database()
    store = open_store(influx.store_url(database))
    try:
        store.write(_fleet())
    finally:
        store.close()
    yield influx, database
    influx.front.answer_json_only(False)


def _reads(store: Store) -> dict[str, object]:
    end = T0 + HOURS * 3600 * S
    where = {"environment": ["prod"]}
    fields = ["usage_percent"]
    answers: dict[str, object] = {
        "workers": store.tag_values("worker", T0, end, ["cpu"], where),
        "points": [
            (p.tags["worker"], p.time_ns, p.fields)
            for p in store.stream_points("cpu", T0, end, where)
        ],
    }
    for level in ("raw", "10m", "1h"):
        b = store.read_buckets("cpu", fields, T0, end, HOURS, where, ("worker",), level)
        answers[level] = [
            (s.tags, list(s.times), list(s.fields["usage_percent"].mean))
            for s in sorted(b.series, key=lambda s: s.tags["worker"])
        ]
    return answers


def test_msgpack_and_json_answers_read_back_the_same_values(
    seeded: tuple[InfluxHarness, str],
) -> None:
    influx, database = seeded
    store = open_store(influx.store_url(database))
    try:
        seen = len(influx.front.answer_types())
        packed = _reads(store)
        assert set(influx.front.answer_types()[seen:]) == {"application/x-msgpack"}
        influx.front.answer_json_only()
        seen = len(influx.front.answer_types())
        plain = _reads(store)
        assert set(influx.front.answer_types()[seen:]) == {"application/json"}
    finally:
        store.close()

    assert packed == plain
    assert packed["workers"] == ["w-1", "wörker 2"]
    points = packed["points"]
    assert len(points) == 2 * HOURS * 360
    assert points[0] == ("w-1", T0, {"usage_percent": 0.0})
    assert isinstance(points[0][2]["usage_percent"], CPU.fields[0].type)
    # the first hour of worker 2: usage cycles 0..99 (+0.25), 360 points
    hour = [(i % 100) + 0.25 for i in range(360)]
    tags, times, means = packed["1h"][1]
    assert tags == {"worker": "wörker 2"} and times[0] == T0
    assert means[0] == pytest.approx(sum(hour) / 360)
    for level in ("raw", "10m"):  # hourly buckets from raw points and 10m tiers agree
        for ours, tiered in zip(packed[level], packed["1h"], strict=True):
            assert ours[:2] == tiered[:2] and ours[2] == pytest.approx(tiered[2])


@pytest.mark.parametrize("json_only", [False, True], ids=["msgpack", "json"])
def test_a_missing_database_is_a_readable_error_in_either_format(
    influx: InfluxHarness, json_only: bool
) -> None:
    influx.front.answer_json_only(json_only)
    store = open_store(influx.store_url("no_such_database"))
    try:
        with pytest.raises(StoreError, match="database not found: no_such_database"):
            store.tag_values("worker", T0, T0 + 3600 * S, ["cpu"], {"environment": ["prod"]})
        with pytest.raises(StoreError, match="database not found: no_such_database"):
            list(store.stream_points("cpu", T0, T0 + 3600 * S, {"environment": ["prod"]}))
    finally:
        store.close()
        influx.front.answer_json_only(False)
