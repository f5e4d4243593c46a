"""SQLite tier layout: a store written with the earlier one-row-per-field layout is moved on open.

The old ``rollup`` table is rebuilt here from a store written today, row for
row as the earlier code wrote it (one row per tier, series, field, bucket and
generation), so the test does not depend on an old fleetgauge being installed.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from fleetgauge.catalogue import CPU, Point
from fleetgauge.stores import open_store

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01, a whole hour
WORKERS = ("w1", "w2")
OLD_ROLLUP = """
CREATE TABLE rollup (
    tier INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    field_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (tier, series_id, field_id, bucket, generation)
) WITHOUT ROWID;
"""


def cpu(worker: str, t: int, usage: float) -> Point:
    fields = {"usage_percent": usage, "load1": usage / 10}
    return Point("cpu", {"environment": "e", "worker": worker}, fields, t)


def write_store(path: Path) -> None:
    """Two hours of two workers, plus late points that open old buckets again."""
    store = open_store(f"sqlite:///{path}")
    store.write(
        [
            cpu(w, T0 + i * 10 * S, 10 + i % 37 + k)
            for i in range(720)
            for k, w in enumerate(WORKERS)
        ]
    )
    store.close()
    late = open_store(f"sqlite:///{path}")  # a new writer: a second generation of old buckets
    late.write([cpu("w1", T0 + 5 * S, 99.0), cpu("w2", T0 + 3605 * S, -1.0)])
    late.close()


def to_old_layout(path: Path) -> int:
    """Rewrite ``tier`` as the earlier ``rollup`` table; returns the rows written."""
    db = sqlite3.connect(path)
    with db:
        db.executescript(OLD_ROLLUP)
        rows = []
        for tier, sid, bucket, generation, blob in db.execute("SELECT * FROM tier"):
            values = struct.unpack(f"<{len(blob) // 8}d", blob)
            for i in range(0, len(values), 5):
                fid, count, total, low, high = values[i : i + 5]
                rows.append((tier, sid, bucket, int(fid), generation, int(count), total, low, high))
        db.executemany("INSERT INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("DROP TABLE tier")
    db.close()
    return len(rows)


def reads(path: Path) -> dict[str, list]:
    store = open_store(f"sqlite:///{path}")
    try:
        out = {}
        for level, points in (("1m", 120), ("10m", 12), ("1h", 2), ("raw", 120)):
            b = store.read_buckets(
                CPU.name,
                ["usage_percent", "load1"],
                T0,
                T0 + 7200 * S,
                points,
                group_by=["worker"],
                level=level,
            )
            out[level] = [(s.tags, s.times, s.fields) for s in b.series]
        return out
    finally:
        store.close()


def test_a_store_with_the_old_rollup_table_is_moved_and_reads_the_same(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    current = tmp_path / "current.db"
    write_store(current)
    old = tmp_path / "old.db"
    shutil.copy(current, old)
    old_rows = to_old_layout(old)
    assert old_rows > 0

    with caplog.at_level(logging.INFO, logger="fleetgauge.stores.sqlite"):
        migrated = reads(old)
    assert "one-row-per-bucket layout" in caplog.text

    want = reads(current)
    assert migrated == want
    # every level answered both workers; the late points count once in every tier
    for level in ("1m", "10m", "1h"):
        assert [tags["worker"] for tags, _, _ in want[level]] == list(WORKERS)
        counts = [sum(fields["usage_percent"].count) for _, _, fields in want[level]]
        assert counts == [721, 721], level
    first_minute = want["1m"][0][2]["usage_percent"]
    assert first_minute.max[0] == 99.0 and first_minute.count[0] == 7

    db = sqlite3.connect(old)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    # the first minute: w1's two generations (the late writer's and the first) and w2's one
    (rows,) = db.execute(
        "SELECT count(*) FROM tier WHERE tier = 60 AND bucket = ?", (T0,)
    ).fetchone()
    db.close()
    assert "rollup" not in tables and "tier" in tables
    assert rows == 3


def test_opening_a_moved_store_again_changes_nothing(tmp_path: Path, caplog) -> None:
    path = tmp_path / "s.db"
    write_store(path)
    to_old_layout(path)
    first = reads(path)
    assert first == reads_of_a_fresh_copy(tmp_path)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fleetgauge.stores.sqlite"):
        assert reads(path) == first
    assert "layout" not in caplog.text


def reads_of_a_fresh_copy(tmp_path: Path) -> dict[str, list]:
    path = tmp_path / "fresh.db"
    write_store(path)
    return reads(path)
