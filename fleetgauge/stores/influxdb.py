"""InfluxDB store: writes through influxdb-client to /api/v2/write, reads InfluxQL over /query.

``/api/v2/write`` is served by InfluxDB 1.8+, 2.x, 3.x and Cloud; ``/query``
(InfluxQL) by 1.x, 2.x (virtual DBRP mapping: bucket ``name`` is database
``name``, retention policy ``autogen``) and 3.x. Flux is never used.

Each batch is written with the client's *synchronous* call, so the caller
knows what was acknowledged (the client's batching mode loses data on outages
and does not flush on close). Rollup tiers go to measurements named
``<measurement>_<tier>`` (see ``catalogue.tier_measurement``) with fields
``<field>_count|sum|min|max``; the point time is bucket start + generation
(see ``tiers.py``). Bodies are gzipped unless the server is on loopback
(``?gzip=true|false`` decides): compressing costs about 1 µs a point, which
only pays off over a network. ``influxdb_client`` is imported only when this
store is opened: it adds about 27 MiB to a process.

Reads ask for MessagePack answers (``Accept: application/x-msgpack``): influxd
encodes them about twice as fast as JSON and they are half the size, which is
most of a dashboard read's time. A server that answers JSON instead is decoded
as JSON: the answer's ``Content-Type`` decides.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import msgpack
import orjson
import urllib3

from fleetgauge.catalogue import (
    EXECUTION_CENSUS,
    EXECUTION_ID,
    MEASUREMENTS,
    SERIES_SUMMARY,
    TIER_AGGREGATES,
    TIERS,
    Point,
    tier_field,
    tier_measurement,
)
from fleetgauge.net import is_loopback
from fleetgauge.stores.base import (
    RowBlock,
    StoreError,
    StoreRejected,
    StoreUnavailable,
    Where,
)
from fleetgauge.stores.buckets import (
    Buckets,
    BucketSeries,
    Grid,
    bucket_series_from_rows,
    fill_grid,
    grid_from_buckets,
    merge_arrays,
    series_from_columns,
)
from fleetgauge.stores.influx_text import (
    decode_name,
    encode_name,
    forget_heads,
    influxql_ident,
    influxql_string,
    line,
    lines,
    run_lines,
)
from fleetgauge.stores.planning import RAW, cover, start_read
from fleetgauge.stores.runs import split
from fleetgauge.stores.summaries import Staged as SummaryStaged
from fleetgauge.stores.summaries import SummaryAccumulator
from fleetgauge.stores.tiers import Staged, TierAccumulator, TierRow
from fleetgauge.validation import validate_point

_SUMMARIES = frozenset({SERIES_SUMMARY.name, EXECUTION_CENSUS.name})
"""Small rows, one field each: listed by reading them (see ``InfluxDBStore._listed``)."""

__all__ = ["InfluxDBStore", "Prepared", "TOKEN_ENV"]

TOKEN_ENV = "FLEETGAUGE_INFLUX_TOKEN"
_REJECTED_STATUS = {400, 413, 422}
_MSGPACK = "application/x-msgpack"
# arrays as tuples: decoded ~40 % faster than lists, and answers are only read
_UNPACK: dict[str, Any] = {"raw": False, "strict_map_key": False, "use_list": False}
_READ_SLICES = 2  # concurrent queries for one long tier read
_FINEST_TIER_NS = min(t.width_ns for t in TIERS)  # raw reads of finer steps bucket here
_CONNECTIONS = 16  # kept open per store: reads of several measurements at once, each sliced
_MIN_SLICE_STEPS = 200  # shorter reads are one query
_TIER_INT_FIELDS = {
    m.name: frozenset(tier_field(f.name, "count") for f in m.fields) for m in MEASUREMENTS.values()
}
_INT_FIELDS = {
    m.name: frozenset(f.name for f in m.fields if f.type is int) for m in MEASUREMENTS.values()
}


def _flag(url: str, name: str, text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"store URL {url!r}: {name}={text!r} is not true or false")


class Prepared(NamedTuple):
    """A batch ready to post (:meth:`InfluxDBStore.prepare`): its staged rows and body."""

    tiers: Staged
    summaries: SummaryStaged
    body: str


class InfluxDBStore:
    """Store backed by an InfluxDB bucket; see the module docstring."""

    concurrent_reads = True  # each read is its own HTTP request: influxd answers them at once

    def __init__(
        self,
        base_url: str,
        bucket: str,
        org: str = "",
        token: str | None = None,
        timeout_s: float = 10.0,
        url: str = "",
        chunk_size: int = 10_000,
        gzip: bool | None = None,
    ) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url = url or f"influxdb+{base_url}/{bucket}"
        self._base = base_url.rstrip("/")
        self._host = urlsplit(self._base).hostname or ""
        self.bucket = bucket
        self.org = org
        self._database, _, self._rp = bucket.partition("/")
        self._token = token
        self._chunk_size = chunk_size
        self._timeout_s = timeout_s
        self._client = InfluxDBClient(
            url=self._base,
            token=token or "",
            org=org or "-",
            timeout=int(timeout_s * 1000),
            enable_gzip=gzip if gzip is not None else not is_loopback(self._host),
        )
        self._writer = self._client.write_api(write_options=SYNCHRONOUS)
        self._http = urllib3.PoolManager(
            maxsize=_CONNECTIONS,  # concurrent reads keep their connections (no warning per read)
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s * 6),
            retries=False,
        )
        self._tiers = TierAccumulator()
        self._summaries = SummaryAccumulator()

    def __repr__(self) -> str:
        return f"InfluxDBStore({self.url!r})"

    @classmethod
    def from_url(cls, url: str) -> InfluxDBStore:
        """Open ``influxdb+http(s)://HOST:PORT/BUCKET?org=ORG``; token from the environment."""
        parts = urlsplit(url)
        scheme = parts.scheme.removeprefix("influxdb+")
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"store URL {url!r}: use influxdb+http://HOST:PORT/BUCKET?org=ORG")
        if parts.username or parts.password:
            raise ValueError(
                f"store URL for {parts.hostname}: do not put credentials in the URL;"
                f" set {TOKEN_ENV} instead"
            )
        bucket = parts.path.strip("/")
        if not bucket:
            raise ValueError(f"store URL {url!r} names no bucket: add /BUCKET after the port")
        query = parse_qs(parts.query)
        unknown = set(query) - {"org", "timeout", "gzip"}
        if unknown:
            raise ValueError(f"store URL {url!r}: unknown option(s) {sorted(unknown)}")
        port = f":{parts.port}" if parts.port else ""
        return cls(
            f"{scheme}://{parts.hostname}{port}",
            bucket,
            org=query.get("org", [""])[0],
            token=os.environ.get(TOKEN_ENV) or None,
            timeout_s=float(query.get("timeout", ["10"])[0]),
            url=url,
            gzip=_flag(url, "gzip", query["gzip"][0]) if "gzip" in query else None,
        )

    # --- write -----------------------------------------------------------
    def write(self, points: Sequence[Point], validated: bool = False) -> None:
        """Write raw points and their tier rows in one synchronous request."""
        batch = self.prepare(points, validated)
        self.send(batch)
        self.commit(batch)

    def prepare(
        self, points: Sequence[Point], validated: bool = False, after: Prepared | None = None
    ) -> Prepared:
        """The request that writes ``points`` with their tier and summary rows, not sent.

        :meth:`write` is prepare, :meth:`send`, :meth:`commit`. A writer may prepare the
        next batch while the last is being sent, passing it as ``after``: the next is then
        staged as if the last were written, and must be prepared again (without ``after``)
        if the last is not committed. Only :meth:`send` may run on another thread.
        """
        if not validated:
            for p in points:
                validate_point(p)
        runs = split(points)
        staged = self._tiers.stage_runs(runs, after.tiers if after is not None else None)
        summaries = self._summaries.stage_runs(runs, after.summaries if after else None)
        text = run_lines(runs, _INT_FIELDS)
        text.extend(self._tier_line(r) for r in self._tiers.rows(staged))
        text.extend(lines(self._summaries.points(summaries), _INT_FIELDS))
        return Prepared(staged, summaries, "\n".join(text))

    def send(self, batch: Prepared) -> None:
        """Post a prepared batch; StoreUnavailable or StoreRejected as :meth:`write`."""
        if batch.body:
            self._post_lines(batch.body)

    def commit(self, batch: Prepared) -> None:
        """Make a sent batch's tier and summary rows the open ones."""
        self._tiers.commit(batch.tiers)
        self._summaries.commit(batch.summaries)

    def _tier_line(self, row: TierRow) -> str:
        fields: dict[str, float | int] = {}
        for name, stats in row.fields.items():
            for agg, value in zip(TIER_AGGREGATES, stats, strict=True):
                fields[tier_field(name, agg)] = value
        point = Point(
            tier_measurement(row.measurement, row.tier),
            dict(row.tags),
            fields,
            row.bucket_ns + row.generation,
        )
        return line(point, _TIER_INT_FIELDS[row.measurement])

    def _post_lines(self, body: str) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._writer.write(
                bucket=self.bucket,
                org=self.org or "-",
                record=body,
                write_precision=WritePrecision.NS,
            )
        except ApiException as e:
            message = _error_message(e.body) or e.reason
            if e.status in _REJECTED_STATUS:
                raise StoreRejected(f"InfluxDB refused the batch ({e.status}): {message}") from e
            raise StoreUnavailable(f"InfluxDB write failed ({e.status}): {message}") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _unreachable(self._base, e) from e

    def delete_before(self, cutoff_ns: int) -> int:
        """Not done by fleetgauge on InfluxDB: the bucket's retention period applies."""
        return 0

    # --- InfluxQL --------------------------------------------------------
    def _query_params(self, statement: str, **extra: str) -> dict[str, str]:
        params = {"db": self._database, "q": statement, "epoch": "ns", **extra}
        if self._rp:
            params["rp"] = self._rp
        return params

    def _post_query(self, params: dict[str, str], stream: bool = False) -> Any:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": _MSGPACK}
        if self._token:
            headers["Authorization"] = f"Token {self._token}"
        try:
            response = self._http.request(
                "POST",
                f"{self._base}/query",
                body=urlencode(params),
                headers=headers,
                preload_content=not stream,
            )
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise _unreachable(self._base, e) from e
        if response.status >= 400:
            try:
                message = _error_message(_decode(response))
            except ValueError:
                message = response.data.decode("utf-8", "replace")[:500]
            error = StoreUnavailable if response.status >= 500 else StoreError
            raise error(f"InfluxDB query failed ({response.status}): {message}", response.status)
        return response

    def _query(self, statement: str) -> list[dict]:
        response = self._post_query(self._query_params(statement))
        results = _decode(response).get("results", [])
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxQL error: {r['error']} in: {statement}")
        return results

    # --- reads -----------------------------------------------------------
    def check(self) -> None:
        """One cheap query: InfluxDB answers, takes the token and has the bucket."""
        try:
            self._query(f"SHOW RETENTION POLICIES ON {influxql_ident(self._database)}")
        except StoreUnavailable:
            raise
        except StoreError as e:
            text = str(e)
            if e.status in (401, 403):
                raise StoreError(
                    f"InfluxDB at {self._base} refused the token ({TOKEN_ENV}): {text}", e.status
                ) from e
            if e.status == 404 or "database not found" in text:  # InfluxQL's own words
                raise StoreError(
                    f"InfluxDB at {self._base} has no bucket {self.bucket!r}: {text}"
                ) from e
            raise

    def tag_values(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        measurements: Sequence[str],
        where: Where | None = None,
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """Values of ``key`` on points in [start, end), tiers covering the inner whole buckets;
        only series that carry ``key`` are counted (a deployment's values, without an
        ``execution_id``, cost nothing when execution ids are asked for).

        A tier point is counted by its ``<field>_count`` columns only: ``count(*)``
        over a tier reads all four aggregates of every field, four times the
        work (about 0.5 s over a fleet's week of tiers). With ``fields``, only those of
        a measurement are counted: influxd's work is per series and field counted
        (environments of 1,000 workers over an hour: 60 fields take about 180 ms).
        """
        filters = _where(where)
        if filters is None or not measurements:
            return []
        found: set[str] = set()
        if key == EXECUTION_ID:  # a value a series: the rows beat a count per series
            for name in (m for m in measurements if m in _SUMMARIES):
                found.update(self._listed(key, start_ns, end_ns, name, filters))
            measurements = [m for m in measurements if m not in _SUMMARIES]
        tiered = [m for m in measurements if MEASUREMENTS[m].tiered]
        plain = [m for m in measurements if not MEASUREMENTS[m].tiered]
        segments = [(tier, a, b, tiered) for tier, a, b in cover(start_ns, end_ns)]
        if plain:
            segments.append((None, start_ns, end_ns, plain))
        statements = []
        for tier, a, b, names in segments:
            for name in names:
                source = name
                columns = tuple((fields or {}).get(name) or MEASUREMENTS[name].field_names)
                if tier is not None:
                    source = tier_measurement(name, tier)
                    columns = tuple(tier_field(f, "count") for f in columns)
                counted = ", ".join(f"count({influxql_ident(c)})" for c in columns)
                statements.append(  # (series without the tag are not read at all)
                    f"SELECT {counted} FROM {influxql_ident(source)}"
                    f" WHERE time >= {a} AND time < {b}{filters} AND {influxql_ident(key)} != ''"
                    f" GROUP BY {influxql_ident(key)}"
                )
        for result in self._query(";".join(statements)) if statements else []:
            for s in result.get("series", []):
                value = (s.get("tags") or {}).get(encode_name(key))
                if value:
                    found.add(decode_name(value))
        return sorted(found)

    def _listed(self, key: str, start_ns: int, end_ns: int, measurement: str, filters: str) -> set:
        """Values of ``key`` on a summary measurement (a row per execution or series, one
        field): its rows read with that tag beat a count grouped by it, which influxd
        does per series (a month's 10,000 executions: 78 ms against 244 ms)."""
        field = MEASUREMENTS[measurement].fields[0].name
        statement = (
            f"SELECT {influxql_ident(field)}, {influxql_ident(key)}"
            f" FROM {influxql_ident(measurement)}"
            f" WHERE time >= {start_ns} AND time < {end_ns}{filters}"
        )
        found = set()
        for s in self._stream_series(statement):
            name = encode_name(key)
            if name in s["columns"]:
                column = s["columns"].index(name)
                found.update(decode_name(row[column]) for row in s["values"] if row[column])
        return found

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
        """Bucketed statistics: ``GROUP BY time`` on raw points, tier points re-bucketed here
        (without ``spread``, their count and sum only: the mean stands for min and max)."""
        plan, result = start_read(measurement, fields, start_ns, end_ns, max_points, level)
        level = result.level
        filters = _where(where)
        if filters is None or not fields:
            return result
        if level == RAW and plan.step_ns < _FINEST_TIER_NS:
            result.series = self._raw_series(measurement, fields, plan, filters, group_by)
            return result
        if level == RAW:
            rows = self._raw_bucket_rows(measurement, fields, plan, filters, group_by)
        else:
            tier = next(t for t in TIERS if t.name == level)
            result.series = self._tier_series(
                measurement, tier, fields, plan, filters, group_by, spread
            )
            return result
        result.series = bucket_series_from_rows(rows, fields)
        return result

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
        """Count and sum of the tier points of every group, summed into the grid by numpy
        (no curve built per group); a raw read is bucketed as in ``read_buckets``."""
        import numpy as np

        plan, empty = start_read(measurement, fields, start_ns, end_ns, max_points, level)
        filters = _where(where)
        if empty.level == RAW or filters is None or not fields:
            b = self.read_buckets(
                measurement, fields, start_ns, end_ns, max_points, where, group_by, level, False
            )
            return grid_from_buckets(b, fields)
        tier = next(t for t in TIERS if t.name == empty.level)
        answers = self._tier_answers(measurement, tier, fields, plan, filters, group_by, False)
        keys = sorted(set().union(*answers))
        if not keys:
            return fill_grid(empty, [], [], [], {f: ([], []) for f in fields})
        blocks = [[b for a in answers for b in a.get(key, [])] for key in keys]
        rows = np.repeat(np.arange(len(keys)), [sum(map(len, of_key)) for of_key in blocks])
        table = np.concatenate([b for of_key in blocks for b in of_key])
        times = table[:, 0].astype(np.int64) * 1000  # microseconds: exact in a float64
        columns = {f: (table[:, 1 + 2 * i], table[:, 2 + 2 * i]) for i, f in enumerate(fields)}
        return fill_grid(empty, keys, rows, times, columns)

    def _raw_series(self, measurement, fields, plan, filters, group_by) -> list[BucketSeries]:
        """Raw points read as they are and bucketed here: steps under the finest tier's width.

        Then a bucket holds at most that width's samples, and influxd's ``GROUP BY time``
        costs about 15 µs a point on two cores, several times reading the points and
        bucketing them with numpy (an hour of 10 workers at 10 s: 55 ms against 6).
        """
        import numpy as np

        group = ", ".join(influxql_ident(k) for k in dict.fromkeys(group_by))
        statement = (
            f"SELECT {', '.join(influxql_ident(f) for f in fields)}"
            f" FROM {influxql_ident(measurement)}"
            f" WHERE time >= {plan.start_ns} AND time < {plan.end_ns}{filters}"
            + (f" GROUP BY {group}" if group else "")
        )
        answers = [self._rows_by_group(statement, ["time", *fields])]
        series = []
        for key, times, rows in _floored_groups(answers, plan.start_ns, plan.step_ns):
            per_field = {}
            for i, f in enumerate(fields):
                values = rows[:, 1 + i]
                seen = ~np.isnan(values)  # NaN: a point without this field
                counts, sums = seen.astype(np.float64), np.where(seen, values, 0.0)
                per_field[f] = merge_arrays(times, counts, sums, values, values)
            curve = series_from_columns(dict(key), fields, per_field)
            if curve is not None:
                series.append(curve)
        return series

    def _raw_bucket_rows(self, measurement, fields, plan, filters, group_by) -> Iterator[tuple]:
        selects = [
            f'{fn}({influxql_ident(f)}) AS "{f}__{fn}"'
            for f in fields
            for fn in ("count", "sum", "min", "max")
        ]
        group = "".join(f", {influxql_ident(k)}" for k in group_by)
        statement = (
            f"SELECT {', '.join(selects)} FROM {influxql_ident(measurement)}"
            f" WHERE time >= {plan.start_ns} AND time < {plan.end_ns}{filters}"
            f" GROUP BY time({plan.step_ns // 1_000_000}ms){group} fill(none)"
        )
        return self._bucket_rows(statement, fields)

    def _tier_series(
        self, measurement, tier, fields, plan, filters, group_by, spread=True
    ) -> list[BucketSeries]:
        """Tier points read as they are, made numpy columns and re-bucketed here.

        InfluxDB 1.x's ``GROUP BY time`` costs about five times more than
        reading the (few) tier points and merging generations here. A long
        range is read as consecutive time slices queried concurrently (influxd
        answers each on its own core while this process decodes the other);
        each group's rows are stacked in time order, timestamps floored to the
        step, and equal buckets merged by :func:`merge_arrays`.
        """
        import numpy as np

        aggregates = TIER_AGGREGATES if spread else TIER_AGGREGATES[:2]  # count, sum
        answers = self._tier_answers(measurement, tier, fields, plan, filters, group_by, spread)
        series = []
        # the generation (ns) is dropped by the microsecond times, as flooring would drop it
        for key, times, rows in _floored_groups(answers, plan.start_ns, plan.step_ns):
            width = len(aggregates)
            per_field = {}
            for i, f in enumerate(fields):
                stats = [rows[:, 1 + i * width + j] for j in range(width)]
                if not spread:  # a mean (sum / count) in place of min and max
                    mean = stats[1] / np.where(stats[0] > 0, stats[0], 1)
                    stats += [mean, mean]
                per_field[f] = merge_arrays(times, *stats)
            curve = series_from_columns(dict(key), fields, per_field)
            if curve is not None:
                series.append(curve)
        return series

    def _tier_answers(
        self, measurement, tier, fields, plan, filters, group_by, spread
    ) -> list[dict[tuple, list[Any]]]:
        """The tier points of a read, per time slice: group key -> blocks of rows (time,
        then count, sum and, with ``spread``, min and max of each field)."""
        aggregates = TIER_AGGREGATES if spread else TIER_AGGREGATES[:2]  # count, sum
        columns = [tier_field(f, agg) for f in fields for agg in aggregates]
        group = ", ".join(influxql_ident(k) for k in dict.fromkeys(group_by))
        statements = [
            f"SELECT {', '.join(influxql_ident(c) for c in columns)}"
            f" FROM {influxql_ident(tier_measurement(measurement, tier))}"
            f" WHERE time >= {a} AND time < {b}{filters}" + (f" GROUP BY {group}" if group else "")
            for a, b in _slices(plan.start_ns, plan.end_ns, plan.step_ns)
        ]
        wanted = ["time", *columns]
        if len(statements) == 1:
            return [self._rows_by_group(statements[0], wanted)]
        with ThreadPoolExecutor(len(statements)) as pool:
            return list(pool.map(self._rows_by_group, statements, [wanted] * len(statements)))

    def _rows_by_group(self, statement: str, wanted: list[str]) -> dict[tuple, list[Any]]:
        """Group key -> blocks of rows (float64 arrays, columns as ``wanted``) in time order.

        Times come in microseconds: exact in a float64, so each block is made in C.
        """
        import numpy as np

        groups: dict[tuple, list[Any]] = {}
        for s in self._stream_series(statement, epoch="u"):
            values, width = s["values"], len(s["columns"])
            try:  # flattened in C: about 3 times faster than np.array of the row tuples
                flat = itertools.chain.from_iterable(values)
                block = np.fromiter(flat, np.float64, len(values) * width).reshape(-1, width)
            except TypeError:  # a null (a tier point without this field) -> NaN
                block = np.array(values, dtype=np.float64)
            order = [s["columns"].index(name) for name in wanted]
            if order != list(range(len(s["columns"]))):
                block = block[:, order]
            groups.setdefault(_tags_key(s.get("tags")), []).append(block)
        return groups

    def _bucket_rows(self, statement: str, fields: Sequence[str]) -> Iterator[tuple]:
        for res in self._query(statement):
            for s in res.get("series", []):
                key = _tags_key(s.get("tags"))
                index = {c: i for i, c in enumerate(s["columns"])}
                for row in s["values"]:
                    for f in fields:
                        count = row[index[f"{f}__count"]]
                        if count:
                            yield (
                                key,
                                f,
                                row[0],
                                count,
                                row[index[f"{f}__sum"]],
                                row[index[f"{f}__min"]],
                                row[index[f"{f}__max"]],
                            )

    def stream_points(
        self,
        measurement: str,
        start_ns: int,
        end_ns: int,
        where: Where | None = None,
    ) -> Iterator[Point]:
        """Raw points in time order, read as a chunked InfluxQL response line by line."""
        statement = _raw_statement(measurement, start_ns, end_ns, where)
        if statement is None:
            return
        field_types = {f.name: f.type for f in MEASUREMENTS[measurement].fields}
        for s in self._stream_series(statement):
            yield from _points(measurement, s, field_types)

    def stream_rows(
        self, measurement: str, start_ns: int, end_ns: int, where: Where | None = None
    ) -> Iterator[RowBlock]:
        """:meth:`stream_points` as the answer's own rows, a block per chunk."""
        statement = _raw_statement(measurement, start_ns, end_ns, where)
        if statement is None:
            return
        fields = {f.name for f in MEASUREMENTS[measurement].fields}
        for s in self._stream_series(statement, chunk_size=min(self._chunk_size, _ROW_BLOCK)):
            columns = s["columns"]
            named = [decode_name(c) if c not in fields else c for c in columns]
            yield RowBlock(
                named,
                tuple(i for i, c in enumerate(columns) if i and c not in fields),
                tuple(i for i, c in enumerate(columns) if i and c in fields),
                s["values"],
                decode_name,
            )

    def _stream_series(
        self, statement: str, epoch: str = "ns", chunk_size: int | None = None
    ) -> Iterator[dict]:
        """Series of a chunked InfluxQL answer, read chunk by chunk (memory stays flat)."""
        size = chunk_size or self._chunk_size
        params = self._query_params(statement, chunked="true", chunk_size=str(size), epoch=epoch)
        response = self._post_query(params, stream=True)
        try:
            for chunk in _documents(response):
                for res in chunk.get("results", []):
                    if "error" in res:
                        raise StoreError(f"InfluxQL error: {res['error']} in: {statement}")
                    yield from res.get("series", [])
        finally:
            response.release_conn()

    def forget_idle(self) -> None:
        """Drop the write path's per-series memory of series not written since the last call."""
        self._tiers.forget_idle()
        self._summaries.forget_idle()
        forget_heads()

    def close(self) -> None:
        """Close the HTTP clients."""
        self._writer.close()
        self._client.close()
        self._http.clear()


def _unreachable(base: str, error: BaseException) -> StoreUnavailable:
    """Why InfluxDB could not be reached, in words (urllib3 puts object reprs in its text)."""
    reason = getattr(error, "reason", None) or error  # MaxRetryError wraps the cause
    text = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*", "", str(reason)).strip()
    return StoreUnavailable(f"InfluxDB at {base} unreachable: {text or type(reason).__name__}")


def _raw_statement(measurement: str, start_ns: int, end_ns: int, where: Where | None) -> str | None:
    """The InfluxQL of every raw point of ``measurement`` in [start, end) that ``where``
    matches; None when nothing can match."""
    filters = _where(where)
    if filters is None:
        return None
    return (
        f"SELECT * FROM {influxql_ident(measurement)}"
        f" WHERE time >= {start_ns} AND time < {end_ns}{filters}"
    )


_ROW_BLOCK = 1000  # rows a block of stream_rows holds: what an export keeps per measurement
_SHARED_TAGS = 10_000  # tag mappings kept for sharing, per answer series


def _points(measurement: str, series: dict, field_types: dict[str, type]) -> Iterator[Point]:
    """Points from one InfluxQL answer; JSON numbers get their catalogue type back (50 -> 50.0)."""
    columns = series["columns"]
    roles = [(i, c, field_types.get(c)) for i, c in enumerate(columns) if c != "time"]
    tag_roles = [(i, decode_name(c)) for i, c, field_type in roles if field_type is None]
    field_roles = [(i, c, field_type) for i, c, field_type in roles if field_type is not None]
    # Rows of one series repeat its tag values: one tags mapping per distinct set of them,
    # shared by its points (as SQLite's are), is built once and lets readers cache by it.
    tag_values = operator.itemgetter(*(i for i, _ in tag_roles)) if tag_roles else None
    shared: dict[object, dict[str, str]] = {}
    for row in series["values"]:
        fields = {
            column: field_type(value)
            for i, column, field_type in field_roles
            if (value := row[i]) is not None and value != ""
        }
        if fields:
            key = tag_values(row) if tag_values is not None else ()
            tags = shared.get(key)
            if tags is None:
                tags = {
                    key: value if "%" not in value else decode_name(value)
                    for i, key in tag_roles
                    if (value := row[i])
                }
                if len(shared) >= _SHARED_TAGS:
                    shared.clear()
                shared[key] = tags
            yield Point(measurement, tags, fields, row[0])


def _floored_groups(
    answers: Sequence[dict[tuple, list[Any]]], start_ns: int, step_ns: int
) -> Iterator[tuple[tuple, Any, Any]]:
    """Per group key, in order: (key, bucket start of each row, the rows), the blocks of
    every answer (consecutive time slices of one read) stacked in time order."""
    import numpy as np

    for key in sorted(set().union(*answers)):
        blocks = [block for answer in answers for block in answer.get(key, [])]
        rows = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        times = rows[:, 0].astype(np.int64) * 1000  # microseconds: exact in a float64
        yield key, start_ns + (times - start_ns) // step_ns * step_ns, rows


def _slices(start_ns: int, end_ns: int, step_ns: int) -> list[tuple[int, int]]:
    """[start, end) cut at a step boundary into up to ``_READ_SLICES`` similar parts."""
    steps = (end_ns - start_ns) // step_ns
    parts = max(1, min(_READ_SLICES, steps // _MIN_SLICE_STEPS))
    cuts = [start_ns + steps * i // parts * step_ns for i in range(parts)] + [end_ns]
    return list(zip(cuts, cuts[1:], strict=False))


def _tags_key(tags: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    """Sorted, decoded group-by tags of an InfluxQL series; tags it lacks are left out."""
    return tuple(sorted((decode_name(k), decode_name(v)) for k, v in (tags or {}).items() if v))


def _is_msgpack(response: Any) -> bool:
    return response.headers.get("Content-Type", "").startswith(_MSGPACK)


def _decode(response: Any) -> Any:
    """The one document of a whole answer, MessagePack or JSON; ValueError if it is neither."""
    if _is_msgpack(response):
        try:
            return msgpack.unpackb(response.data, **_UNPACK)
        except (msgpack.UnpackException, ValueError) as e:
            raise ValueError(f"not MessagePack: {e}") from None
    return orjson.loads(response.data)


def _documents(response: Any) -> Iterator[dict]:
    """Documents of a chunked answer, decoded as they arrive (memory stays flat)."""
    if not _is_msgpack(response):
        yield from _json_lines(response)
        return
    unpacker = msgpack.Unpacker(**_UNPACK, max_buffer_size=1 << 30)
    for data in response.stream(65536):
        unpacker.feed(data)
        yield from unpacker


def _json_lines(response: Any) -> Iterator[dict]:
    """JSON documents of a newline-delimited answer; each network read is scanned once."""
    pending: list[bytes] = []
    for data in response.stream(65536):
        *complete, rest = data.split(b"\n")
        if complete:
            pending.append(complete[0])
            complete[0] = b"".join(pending)
            pending = []
            for text in complete:
                if text.strip():
                    yield orjson.loads(text)
        pending.append(rest)
    last = b"".join(pending)
    if last.strip():
        yield orjson.loads(last)


def _where(where: Where | None) -> str | None:
    """InfluxQL conditions for a tag filter (with a leading AND), or None if nothing matches."""
    parts = []
    for key, values in (where or {}).items():
        values = list(values)
        if not values:
            return None
        ident = influxql_ident(key)
        parts.append("(" + " OR ".join(f"{ident} = {influxql_string(v)}" for v in values) + ")")
    return "".join(f" AND {p}" for p in parts)


def _error_message(body: Any) -> str:
    """The message of an error answer: a decoded document, or JSON text (write errors)."""
    if not body:
        return ""
    if isinstance(body, dict):
        data = body
    else:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            return str(body)[:500]
    if not isinstance(data, dict):
        return str(data)[:500]
    return str(data.get("message") or data.get("error") or data)[:500]
