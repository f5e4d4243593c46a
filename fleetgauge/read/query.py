"""Query SDK: what fleetgauge stored, read back as plain rows from any store.

Model and notebook code reads pipeline metrics, list metrics, events and
resource samples with four functions, whatever the store (SQLite or InfluxDB)::

    from fleetgauge.read.query import get_events, get_metrics, get_resource_metrics

    rows = get_metrics("score", deployment="fraud-v2", start="2026-01-01")
    text = get_resource_metrics("2026-01-01", "2026-01-02", workers="gpu-01", csv=True)
    get_resource_metrics("2026-01-01", "2026-01-02", csv="resources.csv")

Arguments, the same in every function:

- ``store``: a store URL (``sqlite:///PATH``, ``influxdb+http://...``), opened
  read-only for the call and closed afterwards, or an open ``Store`` object,
  left open. Default: ``fleetgauge.stores.default_store_url()``.
- times (``start``/``end``, ``start_date``/``end_date``): a ``datetime``
  (naive means UTC), a ``date`` (midnight UTC), ISO-8601 text (UTC unless it
  has an offset) or epoch seconds; ``None`` leaves that side open. The window
  is [start, end): start inclusive, end exclusive.
- filters (``deployment``, ``workers``, ...): one name or a list of names; a
  row matches when its tag is one of them. ``None`` does not filter; an empty
  list matches nothing.

Rows are dicts in time order, with the keys of the CSV export's columns:
``time`` (a timezone-aware UTC ``datetime``, to the microsecond; the CSV keeps
nanoseconds), the catalogue's tag columns (``None`` where a point lacks the
tag), the field columns, and ``other_tags`` (a dict of tags outside the
catalogue). Each ``get_*`` function returns a list; its ``iter_*`` twin yields
the same rows one at a time, in constant memory. ``get_resource_metrics(...,
csv=...)`` streams the CSV of ``fleetgauge export resources`` (the same
writer, ``fleetgauge.read.export``) instead of building rows.

Bad arguments raise ValueError (unknown measurement, bad time text, start not
before end) or TypeError (a value of the wrong type) before any store is opened.
"""

from __future__ import annotations

import io
import json
import numbers
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TextIO, overload

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read import executions
from fleetgauge.read.export import Layout, export_csv, export_file, layout, merged_points
from fleetgauge.stores import StoreReader, default_store_url, open_store
from fleetgauge.timeutil import NS_PER_S, datetime_to_ns, format_time, parse_time

__all__ = [
    "get_metrics",
    "get_list_metrics",
    "get_events",
    "get_resource_metrics",
    "get_execution",
    "list_executions",
    "iter_metrics",
    "iter_list_metrics",
    "iter_events",
    "iter_resource_metrics",
    "to_time_ns",
    "EARLIEST_NS",
    "LATEST_NS",
]

TimeLike = datetime | date | str | int | float | None
"""A time as the functions accept it; see the module docstring."""
Names = str | Iterable[str] | None
"""A filter: one name, several, or None for no filter."""
StoreLike = StoreReader | str | None
"""A store URL, an open store, or None for the default store."""
Row = dict[str, Any]

EARLIEST_NS = -(2**63) + 2
"""Start of an open window: the earliest time InfluxDB can hold."""
LATEST_NS = 2**63 - 2
"""End of an open window: the latest time InfluxDB can hold."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- arguments -------------------------------------------------------------------
def to_time_ns(value: TimeLike, what: str = "time") -> int | None:
    """Nanoseconds since the epoch for a time argument; None stays None.

    Raises ValueError for text that is not a time or a time no store can hold
    (outside the years 1677-2262: often nanoseconds given as epoch seconds),
    TypeError for other types.
    """
    if value is None:
        return None
    time_ns = _time_ns(value, what)
    if not EARLIEST_NS <= time_ns <= LATEST_NS:
        raise ValueError(
            f"{what} {value!r} is outside the times a store can hold (years 1677 to 2262);"
            " epoch times are in seconds"
        )
    return time_ns


def _time_ns(value: datetime | date | str | float, what: str) -> int:
    if isinstance(value, datetime):
        return datetime_to_ns(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return datetime_to_ns(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return int(value) * NS_PER_S
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what}: not a time: {value!r}")
        return round(float(value) * NS_PER_S)
    raise TypeError(
        f"{what} must be a datetime, a date, ISO-8601 text or epoch seconds,"
        f" got {type(value).__name__}"
    )


def _window(start: TimeLike, end: TimeLike, names: tuple[str, str]) -> tuple[int, int]:
    start_ns = to_time_ns(start, names[0])
    end_ns = to_time_ns(end, names[1])
    start_ns = EARLIEST_NS if start_ns is None else start_ns
    end_ns = LATEST_NS if end_ns is None else end_ns
    if start_ns >= end_ns:
        raise ValueError(
            f"{names[0]} {format_time(start_ns)} is not before {names[1]} {format_time(end_ns)}"
        )
    return start_ns, end_ns


def _names(value: Names, what: str) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if isinstance(values, bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a name or a list of names, got {type(value).__name__}")
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{what} must hold names (str), got {type(v).__name__} {v!r}")
    return out


def _where(*filters: tuple[str, str, Names]) -> dict[str, list[str]]:
    """The store filter from ``(tag, argument name, argument)`` triples; None is no filter."""
    where = {}
    for tag, argument, value in filters:
        names = _names(value, argument)
        if names is not None:
            where[tag] = names
    return where


def _context(
    deployment: Names, pipeline: Names, execution_id: Names, environment: Names
) -> tuple[tuple[str, str, Names], ...]:
    return (
        (catalogue.DEPLOYMENT, "deployment", deployment),
        (catalogue.PIPELINE, "pipeline", pipeline),
        (catalogue.EXECUTION_ID, "execution_id", execution_id),
        (catalogue.ENVIRONMENT, "environment", environment),
    )


def _check_store(store: StoreLike) -> None:
    if store is not None and not isinstance(store, str) and not hasattr(store, "stream_points"):
        raise TypeError(f"store must be a store URL or a Store, got {type(store).__name__}")


# --- rows --------------------------------------------------------------------------
def _utc(time_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=time_ns // 1000)


def _decoded(text: object) -> object:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _row_maker(lay: Layout, with_measurement: bool) -> Callable[[Point], Row]:
    types = lay.field_types

    def row(p: Point) -> Row:
        out: Row = {"time": _utc(p.time_ns)}
        if with_measurement:
            out["measurement"] = p.measurement
        for t in lay.tag_columns:
            out[t] = p.tags.get(t)
        for f in lay.field_columns:
            value = p.fields.get(f)
            out[f] = None if value is None else types[f](value)
        out["other_tags"] = lay.other_tags(p)
        return out

    return row


def _event_row(lay: Layout) -> Callable[[Point], Row]:
    plain = _row_maker(lay, with_measurement=False)

    def row(p: Point) -> Row:
        out = plain(p)
        out["metadata"] = _decoded(out["metadata"])
        return out

    return row


def _stream(
    store: StoreLike,
    lay: Layout,
    window: tuple[int, int],
    where: dict[str, list[str]],
    make_row: Callable[[Point], Row],
) -> Iterator[Row]:
    """Rows from the store, opened on the first row asked for and closed at the end."""
    if store is None or isinstance(store, str):
        opened = open_store(store or default_store_url(), create=False)
        try:
            for p in merged_points(opened, lay, *window, where):
                yield make_row(p)
        finally:
            opened.close()
    else:
        for p in merged_points(store, lay, *window, where):
            yield make_row(p)


# --- pipeline metrics, list metrics, events ----------------------------------------------
def _metric_rows(
    measurement: str,
    name: Names,
    context: tuple[tuple[str, str, Names], ...],
    start: TimeLike,
    end: TimeLike,
    store: StoreLike,
) -> Iterator[Row]:
    lay = layout("metrics", [measurement])
    window = _window(start, end, ("start", "end"))
    where = _where((catalogue.METRIC, "name", name), *context)
    _check_store(store)
    return _stream(store, lay, window, where, _row_maker(lay, with_measurement=False))


def iter_metrics(
    name: Names,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    environment: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Values recorded for metric ``name`` (None: every metric), one row at a time.

    Rows: time, environment, pipeline, deployment, metric, execution_id,
    value, other_tags.
    """
    context = _context(deployment, pipeline, execution_id, environment)
    return _metric_rows(catalogue.PIPELINE_METRIC.name, name, context, start, end, store)


def get_metrics(
    name: Names,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    environment: Names = None,
    store: StoreLike = None,
) -> list[Row]:
    """Values recorded for metric ``name`` (None: every metric), as a list of rows.

    See :func:`iter_metrics`; for example ``get_metrics("score",
    deployment="fraud-v2")`` gives every score that deployment recorded.
    """
    return list(
        iter_metrics(
            name,
            deployment,
            pipeline,
            execution_id,
            start,
            end,
            environment=environment,
            store=store,
        )
    )


def iter_list_metrics(
    name: Names,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    environment: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Elements of list metric ``name`` (a value per step), in time order, one at a time.

    Rows: as :func:`iter_metrics` plus ``step`` (an int).
    """
    context = _context(deployment, pipeline, execution_id, environment)
    return _metric_rows(catalogue.LIST_METRIC.name, name, context, start, end, store)


def get_list_metrics(
    name: Names,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    environment: Names = None,
    store: StoreLike = None,
) -> list[Row]:
    """Elements of list metric ``name`` as a list of rows; see :func:`iter_list_metrics`."""
    return list(
        iter_list_metrics(
            name,
            deployment,
            pipeline,
            execution_id,
            start,
            end,
            environment=environment,
            store=store,
        )
    )


def iter_events(
    name: Names = None,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    source: Names = None,
    environment: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Events called ``name`` (None: every event), in time order, one at a time.

    Rows: time, environment, name, source, deployment, pipeline,
    execution_id, metadata (decoded back to a dict), other_tags.
    """
    lay = layout("events")
    window = _window(start, end, ("start", "end"))
    where = _where(
        (catalogue.EVENT_NAME, "name", name),
        (catalogue.EVENT_SOURCE, "source", source),
        *_context(deployment, pipeline, execution_id, environment),
    )
    _check_store(store)
    return _stream(store, lay, window, where, _event_row(lay))


def get_events(
    name: Names = None,
    deployment: Names = None,
    pipeline: Names = None,
    execution_id: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    source: Names = None,
    environment: Names = None,
    store: StoreLike = None,
) -> list[Row]:
    """Events called ``name`` (None: every event) as a list of rows; see :func:`iter_events`."""
    return list(
        iter_events(
            name,
            deployment,
            pipeline,
            execution_id,
            start,
            end,
            source=source,
            environment=environment,
            store=store,
        )
    )


# --- resources -------------------------------------------------------------------------
def _resource_query(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names,
    environment: Names,
    measurements: Names,
) -> tuple[Layout, tuple[int, int], dict[str, list[str]]]:
    lay = layout("resources", _names(measurements, "measurements"))
    window = _window(start_date, end_date, ("start_date", "end_date"))
    where = _where(
        (catalogue.WORKER, "workers", workers), (catalogue.ENVIRONMENT, "environment", environment)
    )
    return lay, window, where


def iter_resource_metrics(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names = None,
    environment: Names = None,
    *,
    measurements: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Resource samples of the workers in [start_date, end_date), one row at a time.

    One row per measurement and time: time, measurement, environment, worker,
    the device tags (gpu, core, mount, ...), the fields of every resource
    measurement (``None`` where a row's measurement has no such field) and
    other_tags. ``measurements`` limits the rows (and field columns) to some
    measurements, for example ``["cpu", "gpu"]``.
    """
    lay, window, where = _resource_query(start_date, end_date, workers, environment, measurements)
    _check_store(store)
    return _stream(store, lay, window, where, _row_maker(lay, with_measurement=True))


@overload
def get_resource_metrics(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names = ...,
    environment: Names = ...,
    csv: Literal[False] = ...,
    *,
    measurements: Names = ...,
    store: StoreLike = ...,
) -> list[Row]: ...
@overload
def get_resource_metrics(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names = ...,
    environment: Names = ...,
    *,
    csv: Literal[True],
    measurements: Names = ...,
    store: StoreLike = ...,
) -> str: ...
@overload
def get_resource_metrics(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names = ...,
    environment: Names = ...,
    *,
    csv: str | os.PathLike[str] | TextIO,
    measurements: Names = ...,
    store: StoreLike = ...,
) -> int: ...
def get_resource_metrics(
    start_date: TimeLike,
    end_date: TimeLike,
    workers: Names = None,
    environment: Names = None,
    csv: bool | str | os.PathLike[str] | TextIO = False,
    *,
    measurements: Names = None,
    store: StoreLike = None,
) -> list[Row] | str | int:
    """Resource samples of the workers in [start_date, end_date), as rows or as CSV.

    - ``csv=False`` (default): a list of rows, see :func:`iter_resource_metrics`.
    - ``csv=True``: the CSV text ``fleetgauge export resources`` writes.
    - ``csv=PATH``: that CSV streamed into the file ``PATH`` (which appears only
      once complete); returns the number of rows.
    - ``csv=FILE`` (a text file opened with ``newline=""``, as for any CSV):
      that CSV streamed into it; returns the number of rows.
    """
    if csv is False:
        return list(
            iter_resource_metrics(
                start_date,
                end_date,
                workers,
                environment,
                measurements=measurements,
                store=store,
            )
        )
    lay, window, where = _resource_query(start_date, end_date, workers, environment, measurements)
    _check_store(store)
    only = [m.name for m in lay.measurements]
    if csv is True:
        text = io.StringIO()
        _with_store(store, lambda s: export_csv(s, "resources", *window, text, where, only=only))
        return text.getvalue()
    if isinstance(csv, str | os.PathLike):
        if not str(csv):
            raise ValueError("csv must be True, False, a file path or an open text file, got ''")
        return _with_store(
            store, lambda s: export_file(s, "resources", *window, csv, where, only=only)
        )
    if hasattr(csv, "write"):
        return _with_store(
            store, lambda s: export_csv(s, "resources", *window, csv, where, only=only)
        )
    raise TypeError(
        f"csv must be True, False, a file path or an open text file, got {type(csv).__name__}"
    )


# --- executions ------------------------------------------------------------------------
def get_execution(
    execution_id: str, *, environment: Names = None, store: StoreLike = None
) -> dict[str, Any] | None:
    """Execution ``execution_id`` as a dict, or None when no start was recorded for it.

    Keys: execution_id, pipeline, environment, status (running, succeeded or
    failed), start and end (ISO 8601 UTC; end None while running), duration_s,
    inputs (name -> value), metrics (last value of each simple metric) and
    list_metrics (per name: steps, values, and their last, min, max and mean).
    """
    if not isinstance(execution_id, str) or not execution_id:
        raise TypeError(f"execution_id must be a non-empty str, got {execution_id!r}")
    envs = _names(environment, "environment")
    _check_store(store)
    found = _with_store(store, lambda s: executions.read_execution(s, execution_id, envs))
    return None if found is None else found.as_dict()


def list_executions(
    pipeline: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    status: Names = None,
    environment: Names = None,
    limit: int | None = None,
    store: StoreLike = None,
) -> list[dict[str, Any]]:
    """Executions started in [start, end), newest first, as dicts (see :func:`get_execution`).

    ``pipeline``, ``status`` and ``environment`` filter; ``limit`` keeps the
    newest ones. List metrics carry their last, min, max and mean (not every value).
    """
    window = _window(start, end, ("start", "end"))
    pipelines = _names(pipeline, "pipeline")
    statuses = _names(status, "status")
    envs = _names(environment, "environment")
    _check_store(store)
    records = _with_store(
        store,
        lambda s: executions.read_executions(s, *window, envs, pipelines, statuses, limit),
    )
    return [r.as_dict(with_values=False) for r in records]


def _with_store(store: StoreLike, work: Callable[[StoreReader], Any]) -> Any:
    """``work(store)`` on an open store; a store opened here from a URL is closed after."""
    if store is not None and not isinstance(store, str):
        return work(store)
    opened = open_store(store or default_store_url(), create=False)
    try:
        return work(opened)
    finally:
        opened.close()
