"""The embedded store: one SQLite file in WAL mode, one writer and many readers.

Layout. ``series`` gives each (measurement, tag set) an id; ``sample`` holds one
row per series, time and field (``WITHOUT ROWID``, keyed by series then time, so
a time range of one series is one contiguous range of the key); ``rollup``
holds the tier rows (keyed by tier, series, bucket, field, generation).
Filters on tags are resolved against the small ``series`` table in memory, so
every data query walks the primary key of the series it needs and nothing else.

A point written again with the same series, time and field replaces the
earlier value, as InfluxDB does. Every value is bound as a parameter: no name
or tag is ever part of SQL text.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agent.schema import TIERS, Point, validate_point
from agent.stores.base import (
    RAW,
    Buckets,
    BucketSeries,
    StoreRejected,
    StoreUnavailable,
    Where,
    bucket_series_from_rows,
    series_from_columns,
    start_read,
)
from agent.stores.tiers import TierAccumulator
from agent.timeutil import parse_duration

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, tags)
);
CREATE TABLE IF NOT EXISTS field (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS sample (
    series_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    field_id INTEGER NOT NULL,
    value NOT NULL,
    PRIMARY KEY (series_id, time, field_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup (
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
_RETENTION_EVERY_NS = 600 * 1_000_000_000
_MAX_PARAMS = 900


def _tags_text(tags: dict[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))


class SQLiteStore:
    """Store backed by one SQLite file; see the module docstring for the layout."""

    def __init__(self, path: str | Path, retention_ns: int | None = None, url: str = "") -> None:
        self.path = Path(path)
        self.url = url or f"sqlite:///{self.path}"
        self.retention_ns = retention_ns
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {e}") from e
        self._series: dict[tuple[str, str], int] = {}
        self._series_tags: dict[int, tuple[str, dict[str, str]]] = {}
        self._fields: dict[str, int] = {}
        self._field_names: dict[int, str] = {}
        self._tiers = TierAccumulator()
        self._tier_index = {t.name: t for t in TIERS}
        self._last_retention = 0

    @classmethod
    def from_url(cls, url: str, create: bool = True) -> SQLiteStore:
        """Open ``sqlite:///PATH[?retention=30d]`` (``sqlite:////abs/path`` for absolute)."""
        parts = urlsplit(url)
        path = url[len("sqlite:///") :].split("?", 1)[0]
        if not path:
            raise ValueError(f"store URL {url!r} names no file: use sqlite:///PATH")
        if not create and not Path(path).exists():
            raise StoreUnavailable(
                f"no store at {path}: run 'fleetgauge demo' or point --store at an existing one"
            )
        query = parse_qs(parts.query)
        unknown = set(query) - {"retention"}
        if unknown:
            raise ValueError(f"store URL {url!r}: unknown option(s) {sorted(unknown)}")
        retention = parse_duration(query["retention"][0]) if "retention" in query else None
        return cls(path, retention, url=url)

    # --- names -----------------------------------------------------------
    def _refresh(self) -> None:
        last = max(self._series_tags, default=0)
        for sid, m, tags in self._db.execute(
            "SELECT id, measurement, tags FROM series WHERE id > ?", (last,)
        ):
            self._series[(m, tags)] = sid
            self._series_tags[sid] = (m, json.loads(tags))
        for fid, name in self._db.execute("SELECT id, name FROM field"):
            self._fields[name] = fid
            self._field_names[fid] = name

    def _series_id(self, measurement: str, tags: dict[str, str]) -> int:
        key = (measurement, _tags_text(tags))
        sid = self._series.get(key)
        if sid is None:
            self._db.execute("INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)", key)
            (sid,) = self._db.execute(
                "SELECT id FROM series WHERE measurement = ? AND tags = ?", key
            ).fetchone()
            self._series[key] = sid
            self._series_tags[sid] = (measurement, dict(tags))
        return sid

    def _field_id(self, name: str) -> int:
        fid = self._fields.get(name)
        if fid is None:
            self._db.execute("INSERT OR IGNORE INTO field (name) VALUES (?)", (name,))
            (fid,) = self._db.execute("SELECT id FROM field WHERE name = ?", (name,)).fetchone()
            self._fields[name] = fid
            self._field_names[fid] = name
        return fid

    def _matching(self, measurements: Sequence[str], where: Where | None) -> list[int]:
        self._refresh()
        wanted = set(measurements)
        conds = {k: set(v) for k, v in (where or {}).items()}
        return [
            sid
            for sid, (m, tags) in self._series_tags.items()
            if m in wanted and all(tags.get(k) in vals for k, vals in conds.items())
        ]

    # --- write -----------------------------------------------------------
    def write(self, points: Sequence[Point], validated: bool = False) -> None:
        """Write a batch and its rollups in one transaction."""
        if not validated:
            for p in points:
                validate_point(p)
        staged = self._tiers.stage(points)
        try:
            with self._db:
                self._write(points, staged)
        except sqlite3.IntegrityError as e:
            raise StoreRejected(f"SQLite refused the batch: {e}") from e
        except sqlite3.Error as e:
            self._forget_uncommitted()
            raise StoreUnavailable(f"SQLite write failed: {e}") from e
        self._tiers.commit(staged)
        self._maybe_apply_retention()

    def _write(self, points: Sequence[Point], staged: dict) -> None:
        rows = []
        for p in points:
            sid = self._series_id(p.measurement, dict(p.tags))
            for name, value in p.fields.items():
                rows.append((sid, p.time_ns, self._field_id(name), value))
        self._db.executemany("INSERT OR REPLACE INTO sample VALUES (?, ?, ?, ?)", rows)
        rollups = []
        for r in self._tiers.rows(staged):
            sid = self._series_id(r.measurement, dict(r.tags))
            width = r.tier.width_ns // 1_000_000_000
            for name, (count, total, lo, hi) in r.fields.items():
                fid = self._field_id(name)
                rollups.append((width, sid, r.bucket_ns, fid, r.generation, count, total, lo, hi))
        self._db.executemany(
            "INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rollups
        )

    def _forget_uncommitted(self) -> None:
        self._series.clear()
        self._series_tags.clear()
        self._fields.clear()
        self._field_names.clear()

    # --- retention -------------------------------------------------------
    def _maybe_apply_retention(self) -> None:
        if self.retention_ns is None:
            return
        now = time.time_ns()
        if now - self._last_retention >= _RETENTION_EVERY_NS:
            self._last_retention = now
            self.delete_before(now - self.retention_ns)

    def delete_before(self, cutoff_ns: int) -> int:
        """Delete samples and rollup buckets older than ``cutoff_ns``, series by series."""
        self._refresh()
        deleted = 0
        try:
            with self._db:
                for sid in list(self._series_tags):
                    cur = self._db.execute(
                        "DELETE FROM sample WHERE series_id = ? AND time < ?", (sid, cutoff_ns)
                    )
                    deleted += cur.rowcount
                    for tier in TIERS:
                        cur = self._db.execute(
                            "DELETE FROM rollup WHERE tier = ? AND series_id = ? AND bucket < ?",
                            (tier.width_ns // 1_000_000_000, sid, cutoff_ns - tier.width_ns),
                        )
                        deleted += cur.rowcount
        except sqlite3.Error as e:
            raise StoreUnavailable(f"SQLite retention failed: {e}") from e
        return deleted

    # --- reads -----------------------------------------------------------
    def tag_values(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        measurements: Sequence[str],
        where: Where | None = None,
    ) -> list[str]:
        """Values of ``key`` on series that have at least one sample in [start, end)."""
        found: set[str] = set()
        probe = "SELECT 1 FROM sample WHERE series_id = ? AND time >= ? AND time < ? LIMIT 1"
        for sid in self._matching(measurements, where):
            value = self._series_tags[sid][1].get(key)
            if value is None or value in found:
                continue
            if self._db.execute(probe, (sid, start_ns, end_ns)).fetchone():
                found.add(value)
        return sorted(found)

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
        """Bucketed statistics computed by SQLite over raw samples or a rollup tier."""
        plan, result = start_read(measurement, fields, start_ns, end_ns, max_points, level)
        level = result.level
        sids = self._matching([measurement], where)  # refreshes the series and field names
        fids = [self._fields[f] for f in fields if f in self._fields]
        if not sids or not fids:
            return result
        keys = {}
        for sid in sids:
            tags = self._series_tags[sid][1]
            keys[sid] = tuple((k, tags[k]) for k in group_by if k in tags)
        if level != RAW and len(set(keys.values())) == len(keys):
            result.series = self._tier_series(level, plan, sids, fields, keys)
        else:
            rows = self._bucket_rows(level, plan, sids, fids, keys)
            result.series = bucket_series_from_rows(rows, fields)
        return result

    def _tier_series(self, level, plan, sids, fields, keys) -> list[BucketSeries]:
        """One curve per series, each field read as columns in key order, generations merged.

        The rollup key leads with (tier, series, field, bucket), so each query is
        one range scan; when the step is the tier width SQLite groups on the
        stored bucket in index order, with no temporary sort. Python only
        transposes rows into columns.
        """
        width_ns = self._tier_index[level].width_ns
        bucket = "bucket" if plan.step_ns == width_ns else "? + (bucket - ?) / ? * ?"
        lead = (
            ()
            if plan.step_ns == width_ns
            else (plan.start_ns, plan.start_ns, plan.step_ns, plan.step_ns)
        )
        sql = (
            f"SELECT {bucket}, sum(count), sum(sum), min(min), max(max) FROM rollup"
            " WHERE tier = ? AND series_id = ? AND field_id = ? AND bucket >= ? AND bucket < ?"
            " GROUP BY 1 ORDER BY 1"
        )
        fids = {f: self._fields[f] for f in fields if f in self._fields}
        series = []
        for sid in sids:
            columns = {}
            for f, fid in fids.items():
                params = (*lead, width_ns // 1_000_000_000, sid, fid, plan.start_ns, plan.end_ns)
                rows = self._db.execute(sql, params).fetchall()
                if rows:
                    columns[f] = tuple(map(list, zip(*rows, strict=True)))
            curve = series_from_columns(dict(keys[sid]), fields, columns)
            if curve is not None:
                series.append((keys[sid], curve))
        return [curve for _, curve in sorted(series, key=lambda kc: kc[0])]

    def _bucket_rows(self, level, plan, sids, fids, keys) -> Iterator[tuple]:
        fid_marks = ",".join("?" * len(fids))
        if level == RAW:
            sql = (
                "SELECT series_id, field_id, (time - ?) / ?, count(*), sum(value), min(value),"
                " max(value) FROM sample WHERE series_id IN ({}) AND field_id IN ({})"
                " AND time >= ? AND time < ? GROUP BY series_id, field_id, 3"
            )
            lead: tuple = ()
        else:
            sql = (
                "SELECT series_id, field_id, (bucket - ?) / ?, sum(count), sum(sum), min(min),"
                " max(max) FROM rollup WHERE tier = ? AND series_id IN ({}) AND field_id IN ({})"
                " AND bucket >= ? AND bucket < ? GROUP BY series_id, field_id, 3"
            )
            lead = (self._tier_index[level].width_ns // 1_000_000_000,)
        names, start, step = self._field_names, plan.start_ns, plan.step_ns
        for i in range(0, len(sids), _MAX_PARAMS):
            chunk = sids[i : i + _MAX_PARAMS]
            query = sql.format(",".join("?" * len(chunk)), fid_marks)
            params = (start, step, *lead, *chunk, *fids, start, plan.end_ns)
            for sid, fid, b, count, total, lo, hi in self._db.execute(query, params):
                yield keys[sid], names[fid], start + b * step, count, total, lo, hi

    def stream_points(
        self,
        measurement: str,
        start_ns: int,
        end_ns: int,
        where: Where | None = None,
    ) -> Iterator[Point]:
        """Merge one time-ordered cursor per series; holds one row per series at a time."""
        sids = self._matching([measurement], where)
        streams = [self._series_points(sid, start_ns, end_ns) for sid in sorted(sids)]
        for _, _, point in heapq.merge(*streams):
            yield point

    def _series_points(self, sid: int, start_ns: int, end_ns: int) -> Iterator[tuple]:
        measurement, tags = self._series_tags[sid]
        cursor = self._db.execute(
            "SELECT time, field_id, value FROM sample WHERE series_id = ? AND time >= ?"
            " AND time < ? ORDER BY time, field_id",
            (sid, start_ns, end_ns),
        )
        names = self._field_names
        current, fields = None, {}
        while batch := cursor.fetchmany(2000):
            for t, fid, value in batch:
                if t != current:
                    if fields:
                        yield current, sid, Point(measurement, tags, fields, current)
                    current, fields = t, {}
                fields[names[fid]] = value
        if fields:
            yield current, sid, Point(measurement, tags, fields, current)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
