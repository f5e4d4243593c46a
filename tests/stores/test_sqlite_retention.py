"""SQLite retention: rows older than the retention period are deleted, newer ones stay."""

from __future__ import annotations

import time
from pathlib import Path

from fleetgauge.catalogue import Point
from fleetgauge.stores import open_store

S = 1_000_000_000
DAY = 86400 * S


def cpu(worker: str, t: int) -> Point:
    return Point("cpu", {"environment": "e", "worker": worker}, {"usage_percent": 5.0}, t)


def test_retention_from_the_url_deletes_old_rows_on_write(tmp_path: Path) -> None:
    now = time.time_ns()
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}?retention=2d")
    store.write([cpu("old", now - 3 * DAY), cpu("recent", now - DAY), cpu("now", now)])
    remaining = [p.tags["worker"] for p in store.stream_points("cpu", 0, now + S)]
    assert remaining == ["recent", "now"]
    assert store.tag_values("worker", 0, now + S, ["cpu"]) == ["now", "recent"]
    old = store.read_buckets(
        "cpu", ["usage_percent"], now - 4 * DAY, now - 2 * DAY - 3600 * S, 4, level="1h"
    )
    assert old.series == []
    store.close()


def test_delete_before_returns_what_it_deleted_and_keeps_the_rest(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'd.db'}")
    t0 = 1_767_225_600 * S
    store.write([cpu("w", t0 + i * 3600 * S) for i in range(48)])
    deleted = store.delete_before(t0 + 24 * 3600 * S)
    assert deleted >= 24
    left = list(store.stream_points("cpu", t0, t0 + 48 * 3600 * S))
    assert [p.time_ns for p in left] == [t0 + i * 3600 * S for i in range(24, 48)]
    store.close()


def test_a_reader_in_another_connection_sees_new_series(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writer, reader = open_store(url), open_store(url, create=False)
    t0 = 1_767_225_600 * S
    writer.write([cpu("a", t0)])
    assert reader.tag_values("worker", t0, t0 + S, ["cpu"]) == ["a"]
    writer.write([cpu("b", t0)])
    assert reader.tag_values("worker", t0, t0 + S, ["cpu"]) == ["a", "b"]
    writer.close()
    reader.close()
