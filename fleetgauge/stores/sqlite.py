"""The embedded store: one SQLite file in WAL mode, one writer and many readers.

Layout. ``series`` gives each (measurement, tag set) an id; ``sample`` holds one
row per series, time and field (``WITHOUT ROWID``, keyed by series then time, so
a time range of one series is one contiguous range of the key); ``tier`` holds
one row per tier bucket generation (keyed by tier, series, bucket, generation)
whose ``stats`` blob packs, for every field, the field id, count, sum, min and
max as little-endian float64s. One row per bucket rather than per field keeps a
tier read to a few rows per bucket: a week of one series' 10-minute buckets is
1,008 rows whatever the number of fields, decoded by numpy in one go.
Filters on tags are resolved against the small ``series`` table in memory, so
every data query walks the primary key of the series it needs and nothing else.

A point written again with the same series, time and field replaces the
earlier value, as InfluxDB does. Every value is bound as a parameter: no name
or tag is ever part of SQL text.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import logging
import re
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from fleetgauge.catalogue import (
    EXECUTION_CENSUS,
    EXECUTION_ID,
    METRIC,
    SERIES_SUMMARY,
    TIERS,
    Point,
)
from fleetgauge.stores.base import StoreRejected, StoreUnavailable, Where
from fleetgauge.stores.buckets import (
    Buckets,
    BucketSeries,
    Grid,
    fill_grid,
    grid_from_buckets,
    merge_arrays,
    series_from_columns,
)
from fleetgauge.stores.planning import RAW, start_read
from fleetgauge.stores.runs import split
from fleetgauge.stores.summaries import SummaryAccumulator
from fleetgauge.stores.tiers import TierAccumulator
from fleetgauge.timeutil import NS_PER_S, parse_duration
from fleetgauge.validation import validate_point

__all__ = ["SQLiteStore", "pack_stats"]

log = logging.getLogger("fleetgauge.stores.sqlite")

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
CREATE TABLE IF NOT EXISTS tier (
    tier INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    stats BLOB NOT NULL,
    PRIMARY KEY (tier, series_id, bucket, generation)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summary (
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    time INTEGER NOT NULL,
    execution_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, tags, time)
);
CREATE INDEX IF NOT EXISTS summary_time ON summary (measurement, time);
CREATE INDEX IF NOT EXISTS summary_execution ON summary (measurement, execution_id, time);
CREATE INDEX IF NOT EXISTS summary_metric ON summary (measurement, metric, time);
"""
_SUMMARIES = frozenset({SERIES_SUMMARY.name, EXECUTION_CENSUS.name})
"""Kept in ``summary``: a row per series generation (its time tells which), found by time or
execution id."""
_STAT_COLUMNS = 5  # field id, count, sum, min, max
_STAT_BYTES = 8 * _STAT_COLUMNS
_INSERT_TIER = "INSERT OR REPLACE INTO tier VALUES (?, ?, ?, ?, ?)"
_RETENTION_EVERY_NS = 600 * NS_PER_S
_MAX_PARAMS = 900
_MANY_SERIES = 500  # past this many series a raw read is one query sorted by time
_FEW_VALUES = 64  # up to this many values of a tag are listed by a probe each
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a tag key a JSON path names as $.key


# Series ids a writer keeps at hand; past this the caches start over (a client inventing
# series must not grow them without bound: 900,000 series took an agent to 2.0 GB).
_MAX_WRITE_SERIES = 30_000


def _tags_text(tags: dict[str, str]) -> str:
    return json.dumps(dict(sorted(tags.items())), ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _pack(values: int) -> Callable[..., bytes]:
    return struct.Struct(f"<{values}d").pack


def pack_stats(stats: Sequence[tuple[int, float, float, float, float]]) -> bytes:
    """A ``tier.stats`` blob: (field id, count, sum, min, max) per field, float64 LE."""
    return _pack(_STAT_COLUMNS * len(stats))(*itertools.chain.from_iterable(stats))


def _tag_conditions(
    tags_column: str, where: Where
) -> tuple[str, list[object], dict[str, set[str]]]:
    """`` AND ...`` conditions on a JSON tags column, their parameters, and the conditions
    left to check in Python (a key a JSON path cannot name plainly, or more values than
    SQLite takes parameters)."""
    sql, params, rest = "", [], {}
    for key, values in where.items():
        values = set(values)
        if _PLAIN_KEY.fullmatch(key) and len(values) <= _MAX_PARAMS // 2:
            tag = f"json_extract({tags_column}, '$.{key}')"
            listed = f"{tag} IN ({','.join('?' * len(values))})"
            # "" stands for a point without the tag, as in InfluxQL (tags are never empty)
            sql += f" AND ({listed} OR {tag} IS NULL)" if "" in values else f" AND {listed}"
            params.extend(values)
        else:
            rest[key] = values
    return sql, params, rest


class SQLiteStore:
    """Store backed by one SQLite file; see the module docstring for the layout."""

    concurrent_reads = False  # one connection: reads from several threads would only queue

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
            self._migrate_rollup()
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {e}") from e
        self._series: dict[tuple[str, str], int] = {}
        self._series_fast: dict[tuple[str, tuple], int] = {}
        self._fields: dict[str, int] = {}
        self._field_names: dict[int, str] = {}
        self._tiers = TierAccumulator()
        self._summaries = SummaryAccumulator()
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

    def _migrate_rollup(self) -> None:
        """Move tier rows of the earlier layout (one row per field) into ``tier``, once.

        Stores written before the ``tier`` table kept one ``rollup`` row per
        (tier, series, field, bucket, generation). Each bucket generation's rows
        become one ``tier`` row, in one transaction, and ``rollup`` is dropped.
        """
        (old,) = self._db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'rollup'"
        ).fetchone()
        if not old:
            return
        started = time.monotonic()
        rows = self._db.execute(
            "SELECT tier, series_id, bucket, generation, field_id, count, sum, min, max"
            " FROM rollup ORDER BY tier, series_id, bucket, generation, field_id"
        )
        moved = 0
        with self._db:
            for key, group in itertools.groupby(rows, key=lambda r: r[:4]):
                stats = pack_stats([r[4:] for r in group])
                self._db.execute(_INSERT_TIER, (*key, stats))
                moved += 1
            self._db.execute("DROP TABLE rollup")
        log.info(
            "%s: moved %d tier buckets to the one-row-per-bucket layout in %.1f s",
            self.path,
            moved,
            time.monotonic() - started,
        )

    # --- names -----------------------------------------------------------
    def _refresh_fields(self) -> None:
        for fid, name in self._db.execute("SELECT id, name FROM field"):
            self._fields[name] = fid
            self._field_names[fid] = name

    def _series_id(self, measurement: str, tags: Mapping[str, str]) -> int:
        fast = (measurement, tuple(tags.items()))  # tags in the order the writer gave them
        sid = self._series_fast.get(fast)
        if sid is not None:
            return sid
        if len(self._series_fast) >= _MAX_WRITE_SERIES:  # bounded: ids are found again in the db
            self._series_fast.clear()
            self._series.clear()
        key = (measurement, _tags_text(tags))
        sid = self._series.get(key)
        if sid is None:
            self._db.execute("INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)", key)
            (sid,) = self._db.execute(
                "SELECT id FROM series WHERE measurement = ? AND tags = ?", key
            ).fetchone()
            self._series[key] = sid
        self._series_fast[fast] = sid
        return sid

    def _field_id(self, name: str) -> int:
        fid = self._fields.get(name)
        if fid is None:
            self._db.execute("INSERT OR IGNORE INTO field (name) VALUES (?)", (name,))
            (fid,) = self._db.execute("SELECT id FROM field WHERE name = ?", (name,)).fetchone()
            self._fields[name] = fid
            self._field_names[fid] = name
        return fid

    def _series_filter(
        self, measurements: Sequence[str], where: Where | None
    ) -> tuple[str, list[object], dict[str, set[str]]]:
        """SQL conditions on ``series`` (alias s) for a read, their parameters, and the rest.

        Reads keep no copy of the series table in memory (a store may hold
        hundreds of thousands of series): each read selects its series in SQL,
        a tag condition through ``json_extract`` on the tags column. A condition
        on a tag key that a JSON path cannot name plainly, or with more values
        than SQLite takes parameters, is returned to be checked in Python.
        """
        conditions, params, rest = _tag_conditions("s.tags", where or {})
        sql = f"s.measurement IN ({','.join('?' * len(measurements))}){conditions}"
        return sql, [*measurements, *params], rest

    def _matching(
        self, measurements: Sequence[str], where: Where | None, with_tags: bool = True
    ) -> dict[int, dict]:
        """Series id -> tags of the series of ``measurements`` that ``where`` selects.

        ``with_tags=False`` may leave the tags empty (they are not parsed then).
        """
        self._refresh_fields()
        if not measurements:
            return {}
        sql, params, rest = self._series_filter(measurements, where)
        if not with_tags and not rest:
            query = f"SELECT s.id FROM series s WHERE {sql}"
            return {sid: {} for (sid,) in self._db.execute(query, params)}
        found = {}
        for sid, text in self._db.execute(f"SELECT s.id, s.tags FROM series s WHERE {sql}", params):
            tags = _tags_of(text)
            if all(tags.get(k, "") in values for k, values in rest.items()):
                found[sid] = tags
        return found

    # --- write -----------------------------------------------------------
    def write(self, points: Sequence[Point], validated: bool = False) -> None:
        """Write a batch and its rollups in one transaction."""
        if not validated:
            for p in points:
                validate_point(p)
        runs = split(points)
        staged = self._tiers.stage_runs(runs)
        summaries = self._summaries.stage_runs(runs)
        try:
            with self._db:
                self._write(points, staged)
                self._write_summaries(self._summaries.points(summaries))
        except sqlite3.IntegrityError as e:
            raise StoreRejected(f"SQLite refused the batch: {e}") from e
        except sqlite3.Error as e:
            self._forget_uncommitted()
            raise StoreUnavailable(f"SQLite write failed: {e}") from e
        self._tiers.commit(staged)
        self._summaries.commit(summaries)
        self._maybe_apply_retention()

    def _write(self, points: Sequence[Point], staged: dict) -> None:
        # The hot path of every agent flush: cached ids are looked up inline, and a
        # tier row's sorted tags find its series id without building a dict.
        series, fields = self._series_fast, self._fields
        rows = []
        for measurement, tags, values, time_ns in points:
            sid = series.get((measurement, tuple(tags.items())))
            if sid is None:
                sid = self._series_id(measurement, tags)
            for name, value in values.items():
                fid = fields.get(name)
                if fid is None:
                    fid = self._field_id(name)
                rows.append((sid, time_ns, fid, value))
        self._db.executemany("INSERT OR REPLACE INTO sample VALUES (?, ?, ?, ?)", rows)
        tier_rows = []
        for r in self._tiers.rows(staged):
            sid = series.get((r.measurement, r.tags))
            if sid is None:
                sid = self._series_id(r.measurement, dict(r.tags))
            flat: list[float] = []
            for name, agg in r.fields.items():
                fid = fields.get(name)
                flat.append(self._field_id(name) if fid is None else fid)
                flat.extend(agg)
            stats = _pack(len(flat))(*flat)
            tier_rows.append((r.tier.width_ns // NS_PER_S, sid, r.bucket_ns, r.generation, stats))
        self._db.executemany(_INSERT_TIER, tier_rows)

    def _write_summaries(self, points: Sequence[Point]) -> None:
        rows = [
            (
                p.measurement,
                _tags_text(p.tags),  # type: ignore[arg-type]
                p.time_ns,
                p.tags[EXECUTION_ID],
                p.tags.get(METRIC, ""),
                json.dumps(p.fields, separators=(",", ":")),
            )
            for p in points
        ]
        self._db.executemany("INSERT OR REPLACE INTO summary VALUES (?, ?, ?, ?, ?, ?)", rows)

    def _forget_uncommitted(self) -> None:
        self._series.clear()
        self._series_fast.clear()
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
        """Delete samples and tier buckets older than ``cutoff_ns``, series by series."""
        deleted = 0
        try:
            with self._db:
                sids = [sid for (sid,) in self._db.execute("SELECT id FROM series")]
                for sid in sids:
                    cur = self._db.execute(
                        "DELETE FROM sample WHERE series_id = ? AND time < ?", (sid, cutoff_ns)
                    )
                    deleted += cur.rowcount
                    for tier in TIERS:
                        cur = self._db.execute(
                            "DELETE FROM tier WHERE tier = ? AND series_id = ? AND bucket < ?",
                            (tier.width_ns // NS_PER_S, sid, cutoff_ns - tier.width_ns),
                        )
                        deleted += cur.rowcount
                cur = self._db.execute("DELETE FROM summary WHERE time < ?", (cutoff_ns,))
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
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """Values of ``key`` on series that have at least one sample in [start, end): one
        index probe a series finds any field's, so ``fields`` is not needed here.

        Up to ``_FEW_VALUES`` values (environments, pipelines) are probed one by one
        until one of their series has a sample in range, so a value on 100,000 series
        costs one probe when the first has one; more (deployments, execution ids) are
        found in one pass that probes each series.
        """
        summaries = [m for m in measurements if m in _SUMMARIES]
        if summaries:
            found = set(self._summary_tag_values(key, start_ns, end_ns, summaries, where))
            rest_of = [m for m in measurements if m not in _SUMMARIES]
            return sorted(found.union(self.tag_values(key, start_ns, end_ns, rest_of, where)))
        if not measurements:
            return []
        sql, params, rest = self._series_filter(measurements, where)
        in_range = "EXISTS (SELECT 1 FROM sample WHERE series_id = s.id AND time >= ? AND time < ?)"
        if _PLAIN_KEY.fullmatch(key) and not rest:  # all in SQL, no tags parsed here
            value = f"json_extract(s.tags, '$.{key}')"
            query = f"SELECT DISTINCT {value} FROM series s WHERE {sql} AND {value} IS NOT NULL"
            candidates = self._db.execute(query, params).fetchmany(_FEW_VALUES + 1)
            if len(candidates) <= _FEW_VALUES:  # a probe per value, each stops at a hit
                probe = f"SELECT 1 FROM series s WHERE {sql} AND {value} = ? AND {in_range} LIMIT 1"
                return sorted(
                    v
                    for (v,) in candidates
                    if self._db.execute(probe, (*params, v, start_ns, end_ns)).fetchone()
                )
            query += f" AND {in_range}"  # many values: one pass, a probe per series
            return sorted(v for (v,) in self._db.execute(query, (*params, start_ns, end_ns)))
        found: set[str] = set()
        probe = "SELECT 1 FROM sample WHERE series_id = ? AND time >= ? AND time < ? LIMIT 1"
        for sid, tags in self._matching(measurements, where).items():
            value = tags.get(key)
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
        spread: bool = True,
    ) -> Buckets:
        """Bucketed statistics: raw samples grouped by SQLite, or tier rows merged by numpy.

        ``spread`` is ignored: a tier row's blob holds all four statistics, read at once."""
        plan, result = start_read(measurement, fields, start_ns, end_ns, max_points, level)
        level = result.level
        matched = self._matching([measurement], where, bool(group_by))  # and the field names
        fids = [self._fields[f] for f in fields if f in self._fields]
        if not matched or not fids:
            return result
        sids = list(matched)
        keys = {
            sid: tuple((k, tags[k]) for k in group_by if k in tags) for sid, tags in matched.items()
        }
        del matched
        if level != RAW:
            result.series = self._tier_series(level, plan, sids, fields, keys)
        else:
            result.series = self._raw_series(plan, sids, fields, keys)
        return result

    def _raw_series(self, plan, sids, fields, keys) -> list[BucketSeries]:
        """Curves from raw samples bucketed by SQLite: its rows made numpy columns, sorted
        by group, field and bucket, and each run merged by :func:`merge_arrays` (several
        series of one group in one bucket)."""
        import numpy as np

        fids = {f: self._fields[f] for f in fields if f in self._fields}
        found = list(self._bucket_rows(plan, sids, list(fids.values())))
        if not found:
            return []
        table = np.array(found, dtype=np.float64)  # ids and bucket numbers: exact
        del found
        order = sorted(set(keys.values()))
        index = {key: i for i, key in enumerate(order)}
        group = np.fromiter(
            (index[keys[sid]] for sid in table[:, 0].astype(np.int64).tolist()),
            np.int64,
            len(table),
        )
        field, bucket = table[:, 1].astype(np.int64), table[:, 2].astype(np.int64)
        by = np.lexsort((bucket, field, group))
        group, field, bucket, table = group[by], field[by], bucket[by], table[by]
        cuts = np.flatnonzero(np.diff(group)) + 1
        start, step = plan.start_ns, plan.step_ns
        series = []
        for g0, g1 in zip([0, *cuts.tolist()], [*cuts.tolist(), len(group)], strict=True):
            columns = {}
            for f, fid in fids.items():
                a, b = np.searchsorted(field[g0:g1], [fid, fid + 1]) + g0
                if b > a:
                    times = start + bucket[a:b] * step
                    columns[f] = merge_arrays(times, *(table[a:b, j] for j in range(3, 7)))
            curve = series_from_columns(dict(order[group[g0]]), fields, columns)
            if curve is not None:
                series.append(curve)
        return series

    def read_grid(
        self,
        measurement: str,
        fields: Sequence[str],
        start_ns: int,
        end_ns: int,
        max_points: int,
        where: Where | None = None,
        group_by: Sequence[str] = (),
        level: str | None = None,
    ) -> Grid:
        """Tier rows of every selected series in one scan per few hundred series, summed
        into the grid by numpy; a raw read is bucketed by SQLite as in ``read_buckets``."""
        import numpy as np

        plan, empty = start_read(measurement, fields, start_ns, end_ns, max_points, level)
        if empty.level == RAW:
            b = self.read_buckets(
                measurement, fields, start_ns, end_ns, max_points, where, group_by, RAW
            )
            return grid_from_buckets(b, fields)
        matched = self._matching([measurement], where, bool(group_by))
        fids = {f: self._fields[f] for f in fields if f in self._fields}
        key_of = {sid: tuple((k, t[k]) for k in group_by if k in t) for sid, t in matched.items()}
        keys = sorted(set(key_of.values()))
        index = {key: i for i, key in enumerate(keys)}
        row_of = {sid: index[key] for sid, key in key_of.items()}
        sql = (
            "SELECT series_id, bucket, stats FROM tier"
            " WHERE tier = ? AND series_id IN ({}) AND bucket >= ? AND bucket < ?"
        )
        width_s = self._tier_index[empty.level].width_ns // NS_PER_S
        found: list[tuple] = []
        sids = list(row_of) if fids else []
        for i in range(0, len(sids), _MAX_PARAMS):
            chunk = sids[i : i + _MAX_PARAMS]
            query = sql.format(",".join("?" * len(chunk)))
            found += self._db.execute(query, (width_s, *chunk, plan.start_ns, plan.end_ns))
        if not found:
            return fill_grid(empty, [], [], [], {f: ([], []) for f in fields})
        series, buckets, blobs = zip(*found, strict=True)
        del found
        stats = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(-1, _STAT_COLUMNS)
        per_row = np.fromiter(map(len, blobs), np.int64, len(blobs)) // _STAT_BYTES
        rows = np.repeat(np.fromiter(map(row_of.__getitem__, series), np.int64), per_row)
        times = np.repeat(np.fromiter(buckets, np.int64, len(buckets)), per_row)
        ids = stats[:, 0]  # an entry per tier row and field: count and sum of its field only
        columns = {}
        for f in fields:
            of_f = ids == fids.get(f, -1)
            columns[f] = (np.where(of_f, stats[:, 1], 0.0), np.where(of_f, stats[:, 2], 0.0))
        return fill_grid(empty, keys, rows, times, columns)

    def _tier_series(self, level, plan, sids, fields, keys) -> list[BucketSeries]:
        """Curves from tier rows: one range scan per series, decoded and merged by numpy.

        Each series' rows come in key order (bucket, then generation); their
        blobs are joined and read as one float64 matrix (field id, count, sum,
        min, max per row), bucket times floored to the step, and equal times
        merged by :func:`merge_arrays` (generations, buckets narrower than the
        step, and several series of one group).
        """
        import numpy as np

        fids = {f: self._fields[f] for f in fields if f in self._fields}
        sql = (
            "SELECT bucket, stats FROM tier"
            " WHERE tier = ? AND series_id = ? AND bucket >= ? AND bucket < ?"
        )
        width_s = self._tier_index[level].width_ns // NS_PER_S
        groups: dict[tuple, list[tuple]] = {}
        for sid in sids:
            rows = self._db.execute(sql, (width_s, sid, plan.start_ns, plan.end_ns)).fetchall()
            if not rows:
                continue
            buckets, blobs = zip(*rows, strict=True)
            stats = np.frombuffer(b"".join(blobs), dtype="<f8").reshape(-1, _STAT_COLUMNS)
            per_row = np.fromiter(map(len, blobs), np.int64, len(blobs)) // _STAT_BYTES
            times = np.repeat(np.fromiter(buckets, np.int64, len(buckets)), per_row)
            groups.setdefault(keys[sid], []).append((times, stats))
        start, step = plan.start_ns, plan.step_ns
        series = []
        for key in sorted(groups):
            blocks = groups[key]
            times, stats = blocks[0]
            if len(blocks) > 1:  # several series in one group: interleave them in time order
                times = np.concatenate([t for t, _ in blocks])
                order = np.argsort(times, kind="stable")
                times, stats = times[order], np.concatenate([m for _, m in blocks])[order]
            times = start + (times - start) // step * step
            ids = stats[:, 0]
            columns = {}
            for f, fid in fids.items():
                of_f = ids == fid
                columns[f] = merge_arrays(times[of_f], *(stats[of_f, 1 + j] for j in range(4)))
            curve = series_from_columns(dict(key), fields, columns)
            if curve is not None:
                series.append(curve)
        return series

    def _bucket_rows(self, plan, sids, fids) -> Iterator[tuple]:
        """Raw samples bucketed by SQLite: (series, field, bucket number, count, sum, min,
        max)."""
        sql = (
            "SELECT series_id, field_id, (time - ?) / ?, count(*), sum(value), min(value),"
            " max(value) FROM sample WHERE series_id IN ({}) AND field_id IN ({})"
            " AND time >= ? AND time < ? GROUP BY series_id, field_id, 3"
        )
        fid_marks = ",".join("?" * len(fids))
        start, step = plan.start_ns, plan.step_ns
        for i in range(0, len(sids), _MAX_PARAMS):
            chunk = sids[i : i + _MAX_PARAMS]
            query = sql.format(",".join("?" * len(chunk)), fid_marks)
            yield from self._db.execute(query, (start, step, *chunk, *fids, start, plan.end_ns))

    def stream_points(
        self,
        measurement: str,
        start_ns: int,
        end_ns: int,
        where: Where | None = None,
    ) -> Iterator[Point]:
        """Merge one time-ordered cursor per series; holds one row per series at a time."""
        if measurement in _SUMMARIES:
            yield from self._summary_points(measurement, start_ns, end_ns, where)
            return
        matched = self._matching([measurement], where)
        if len(matched) > _MANY_SERIES:
            yield from self._points_by_time(measurement, matched, start_ns, end_ns, where)
            return
        streams = [
            self._series_points(measurement, sid, matched[sid], start_ns, end_ns)
            for sid in sorted(matched)
        ]
        for _, _, point in heapq.merge(*streams):
            yield point

    def _points_by_time(
        self, measurement: str, matched: dict[int, dict], start_ns: int, end_ns: int, where
    ) -> Iterator[Point]:
        """The points of many series in one query sorted by time (SQLite's sorter spills to
        disk, so memory stays flat): a cursor per series costs more than the rows it reads
        when there are thousands of series of a few points each (execution records)."""
        sql, params, _ = self._series_filter([measurement], where)
        cursor = self._db.execute(
            "SELECT series_id, time, field_id, value FROM sample WHERE series_id IN"
            f" (SELECT s.id FROM series s WHERE {sql}) AND time >= ? AND time < ?"
            " ORDER BY time, series_id, field_id",
            (*params, start_ns, end_ns),
        )
        names = self._field_names
        sid, current, fields = None, None, {}
        while batch := cursor.fetchmany(5000):
            for row_sid, t, fid, value in batch:
                if t != current or row_sid != sid:
                    if fields and sid in matched:
                        yield Point(measurement, matched[sid], fields, current)
                    sid, current, fields = row_sid, t, {}
                fields[names[fid]] = value
        if fields and sid in matched:
            yield Point(measurement, matched[sid], fields, current)

    def _series_points(
        self, measurement: str, sid: int, tags: dict[str, str], start_ns: int, end_ns: int
    ) -> Iterator[tuple]:
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

    def _summary_tag_values(
        self, key: str, start_ns: int, end_ns: int, measurements: Sequence[str], where: Where | None
    ) -> list[str]:
        sql, params, rest = self._summary_filter(measurements, start_ns, end_ns, where)
        if not rest and (key == EXECUTION_ID or _PLAIN_KEY.fullmatch(key)):
            value = "execution_id" if key == EXECUTION_ID else f"json_extract(tags, '$.{key}')"
            query = f"SELECT DISTINCT {value} FROM summary WHERE {sql} AND {value} IS NOT NULL"
            return [v for (v,) in self._db.execute(query, params)]
        found = set()
        for text in self._db.execute(f"SELECT tags FROM summary WHERE {sql}", params):
            tags = _tags_of(text[0])
            if key in tags and all(tags.get(k, "") in values for k, values in rest.items()):
                found.add(tags[key])
        return list(found)

    def _summary_filter(
        self, measurements: Sequence[str], start_ns: int, end_ns: int, where: Where | None
    ) -> tuple[str, list[object], dict[str, set[str]]]:
        """SQL conditions on ``summary`` for a read, their parameters, and the rest (checked
        in Python): the execution id and metric by their columns, other tags through
        ``json_extract``."""
        where = dict(where or {})
        sql = f"measurement IN ({','.join('?' * len(measurements))}) AND time >= ? AND time < ?"
        params: list[object] = [*measurements, start_ns, end_ns]
        for column in (EXECUTION_ID, METRIC):
            values = where.pop(column, None)
            if values is not None and len(set(values)) <= _MAX_PARAMS // 2:
                sql += f" AND {column} IN ({','.join('?' * len(set(values)))})"
                params.extend(set(values))
            elif values is not None:
                where[column] = values
        conditions, more, rest = _tag_conditions("tags", where)
        return sql + conditions, [*params, *more], rest

    def _summary_points(
        self, measurement: str, start_ns: int, end_ns: int, where: Where | None
    ) -> Iterator[Point]:
        """Rows of ``summary`` in time order: by execution id when the filter names a few,
        else by time; the other tags are matched in SQL where a JSON path names them."""
        sql, params, rest = self._summary_filter([measurement], start_ns, end_ns, where)
        # one JSON text a row: [tags, fields]
        query = f"SELECT '[' || tags || ',' || fields || ']', time FROM summary WHERE {sql}"
        cursor = self._db.execute(query + " ORDER BY time", params)
        loads = orjson.loads
        while batch := cursor.fetchmany(2000):
            for text, t in batch:
                tags, fields = loads(text)
                if not rest or all(tags.get(k, "") in values for k, values in rest.items()):
                    yield Point(measurement, tags, fields, t)

    def check(self) -> None:
        """The file opened and holds fleetgauge's tables (nothing more to check)."""

    def forget_idle(self) -> None:
        """Drop the write path's per-series memory of series not written since the last call.

        Series ids are found again in the table on their next write.
        """
        self._tiers.forget_idle()
        self._summaries.forget_idle()
        self._series_fast = {}
        self._series = {}

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def _tags_of(text: str) -> dict[str, str]:
    """A series' tags from their JSON text (orjson, about 3x quicker; json for what orjson
    refuses, such as a lone surrogate)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
