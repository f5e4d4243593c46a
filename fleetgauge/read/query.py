"""Query SDK: what fleetgauge stored, read back as plain rows from any store.

Model and notebook code reads pipeline metrics, list metrics, events and
resource samples with four functions, whatever the store (SQLite or InfluxDB)::

    from fleetgauge import get_events, get_metrics, get_resource_metrics

    rows = get_metrics("score", deployment="fraud-v2", start="2026-01-01")
    text = get_resource_metrics("2026-01-01", "2026-01-02", workers="gpu-01", csv=True)
    get_resource_metrics("2026-01-01", "2026-01-02", csv="resources.csv")

Arguments are the same in every function (``store``, times, filters) and are
checked before any store is opened (:mod:`fleetgauge.read.arguments`).

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
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TextIO, overload

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read import arguments, executions, usage
from fleetgauge.read.arguments import Names, StoreLike, TimeLike
from fleetgauge.read.export import Layout, export_csv, export_file, layout, merged_points
from fleetgauge.stores import StoreReader, default_store_url, open_store

__all__ = [
    "get_metrics",
    "get_list_metrics",
    "get_events",
    "get_resource_metrics",
    "get_execution",
    "get_execution_input",
    "get_execution_output",
    "list_executions",
    "search_executions",
    "get_execution_logs",
    "get_deployment_usage",
    "iter_metrics",
    "iter_list_metrics",
    "iter_events",
    "iter_resource_metrics",
]

Row = dict[str, Any]
"""One stored point as the CSV export's columns (see the module docstring)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _context(
    deployment: Names, pipeline: Names, execution_id: Names, environment: Names, worker: Names
) -> tuple[tuple[str, str, Names], ...]:
    return (
        (catalogue.DEPLOYMENT, "deployment", deployment),
        (catalogue.PIPELINE, "pipeline", pipeline),
        (catalogue.EXECUTION_ID, "execution_id", execution_id),
        (catalogue.ENVIRONMENT, "environment", environment),
        (catalogue.WORKER, "worker", worker),
    )


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
    window = arguments.window(start, end, ("start", "end"))
    where = arguments.where((catalogue.METRIC, "name", name), *context)
    arguments.check_store(store)
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
    worker: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Values recorded for metric ``name`` (None: every metric), one row at a time.

    Rows: time, environment, worker, pipeline, deployment, metric,
    execution_id, value, other_tags. ``worker`` is the worker whose agent took
    the value (stamped by the agent); filter by it like the other names.
    """
    context = _context(deployment, pipeline, execution_id, environment, worker)
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
    worker: Names = None,
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
            worker=worker,
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
    worker: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Elements of list metric ``name`` (a value per step), in time order, one at a time.

    Rows: as :func:`iter_metrics` plus ``step`` (an int).
    """
    context = _context(deployment, pipeline, execution_id, environment, worker)
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
    worker: Names = None,
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
            worker=worker,
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
    worker: Names = None,
    store: StoreLike = None,
) -> Iterator[Row]:
    """Events called ``name`` (None: every event), in time order, one at a time.

    Rows: time, environment, worker, name, source, deployment, pipeline,
    execution_id, metadata (decoded back to a dict), other_tags.
    """
    lay = layout("events")
    window = arguments.window(start, end, ("start", "end"))
    where = arguments.where(
        (catalogue.EVENT_NAME, "name", name),
        (catalogue.EVENT_SOURCE, "source", source),
        *_context(deployment, pipeline, execution_id, environment, worker),
    )
    arguments.check_store(store)
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
    worker: Names = None,
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
            worker=worker,
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
    lay = layout("resources", arguments.names(measurements, "measurements"))
    window = arguments.window(start_date, end_date, ("start_date", "end_date"))
    where = arguments.where(
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
    arguments.check_store(store)
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
    arguments.check_store(store)
    only = [m.name for m in lay.measurements]
    if csv is True:
        text = io.StringIO()
        arguments.with_store(
            store, lambda s: export_csv(s, "resources", *window, text, where, only=only)
        )
        return text.getvalue()
    if isinstance(csv, str | os.PathLike):
        if not str(csv):
            raise ValueError("csv must be True, False, a file path or an open text file, got ''")
        return arguments.with_store(
            store, lambda s: export_file(s, "resources", *window, csv, where, only=only)
        )
    if hasattr(csv, "write"):
        return arguments.with_store(
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

    Keys: execution_id, pipeline, environment, worker (whose agent took its
    start), status (running, succeeded or failed), start and end (ISO 8601
    UTC; end None while running), duration_s, inputs and outputs (name ->
    value), input_defaults (the inputs taken from a default, not given by the
    caller), tags (name -> text), metrics
    (last value of each simple metric), list_metrics (per name: steps, values,
    and their last, min, max and mean), resources (what its processes used:
    peak_gpu_memory_bytes, mean_gpu_utilization_percent, peak_rss_bytes,
    cpu_seconds; empty when none registered with an agent) and resource_curves
    (per process and field: ``{"field": "process.cpu_cores", "process": "pid
    41 on gpu-01", "times": [datetime, ...], "values": [...]}``, bucket means
    over its duration).
    """
    if not isinstance(execution_id, str) or not execution_id:
        raise TypeError(f"execution_id must be a non-empty str, got {execution_id!r}")
    envs = arguments.names(environment, "environment")
    arguments.check_store(store)

    def read(s: StoreReader) -> dict[str, Any] | None:
        found = executions.read_execution(s, execution_id, envs)
        if found is None:
            return None
        curves = [
            {
                "field": c.field,
                "process": c.label,
                "times": [_utc(t) for t in c.times_ns],
                "values": c.values,
            }
            for c in executions.read_resource_curves(s, found)
        ]
        return {**found.as_dict(), "resource_curves": curves}

    return arguments.with_store(store, read)


def get_execution_input(
    execution_id: str, name: str, *, environment: Names = None, store: StoreLike = None
) -> Any:
    """The value of input ``name`` of execution ``execution_id``; KeyError naming the
    execution's inputs when it has none of that name, LookupError when no such execution."""
    return _execution_value(execution_id, name, "inputs", environment, store)


def get_execution_output(
    execution_id: str, name: str, *, environment: Names = None, store: StoreLike = None
) -> Any:
    """The value of output ``name`` of execution ``execution_id`` (given when it ended);
    KeyError naming its outputs when it has none of that name, LookupError when no such
    execution."""
    return _execution_value(execution_id, name, "outputs", environment, store)


def _execution_value(
    execution_id: str, name: str, kind: str, environment: Names, store: StoreLike
) -> Any:
    if not isinstance(execution_id, str) or not execution_id:
        raise TypeError(f"execution_id must be a non-empty str, got {execution_id!r}")
    envs = arguments.names(environment, "environment")
    arguments.check_store(store)
    found = arguments.with_store(store, lambda s: executions.read_execution(s, execution_id, envs))
    if found is None:
        raise LookupError(f"no execution {execution_id!r} was recorded")
    values = getattr(found, kind)
    if name not in values:
        known = ", ".join(map(repr, values)) or "none"
        raise KeyError(f"execution {execution_id!r} has no {kind[:-1]} {name!r} ({kind}: {known})")
    return values[name]


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
    return search_executions(
        None,
        pipeline,
        start,
        end,
        status=status,
        environment=environment,
        limit=limit,
        store=store,
    )


def search_executions(
    filter: str | None = None,
    pipeline: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    status: Names = None,
    environment: Names = None,
    limit: int | None = None,
    store: StoreLike = None,
) -> list[dict[str, Any]]:
    """Executions started in [start, end) that pass ``filter``, newest first, as dicts (see
    :func:`list_executions`).

    ``filter`` is the grammar of :mod:`fleetgauge.read.filters`, for example
    ``'input.batch_size = 128 and metric.accuracy > 0.9'`` or ``'tag.stage = "tuned" or
    list.loss.min < 0.1'``; a filter that does not parse raises
    :class:`~fleetgauge.read.filters.FilterError` (a ValueError) naming the column where
    it fails, before anything is read. ``limit`` keeps the newest that pass.
    """
    from fleetgauge.read import filters

    if filter is not None:
        filters.parse_filter(filter)  # a bad filter fails before the store is opened
    window = arguments.window(start, end, ("start", "end"))
    pipelines = arguments.names(pipeline, "pipeline")
    statuses = arguments.names(status, "status")
    envs = arguments.names(environment, "environment")
    arguments.check_store(store)
    records = arguments.with_store(
        store,
        lambda s: filters.read_matching(s, *window, filter, envs, pipelines, statuses, limit),
    )
    return [r.as_dict(with_values=False) for r in records]


def get_execution_logs(
    pipeline: str | None,
    execution_id: str,
    start: TimeLike = None,
    end: TimeLike = None,
    limit: int = 1000,
    level: str | None = None,
    *,
    order: str = "newest",
    search: str | None = None,
    environment: Names = None,
    store: StoreLike = None,
) -> list[dict[str, Any]]:
    """The log lines of execution ``execution_id`` (of ``pipeline``; None: any) in [start,
    end) (default: all of them): the ``limit`` newest, newest first, or with
    ``order="oldest"`` the oldest first; ``level`` keeps that level and graver (DEBUG,
    INFO, WARNING, ERROR, CRITICAL); ``search`` keeps messages holding that text (any case).

    Each line: time (ISO 8601 UTC), level, logger, message, cut_bytes (bytes cut from an
    over-long message, else 0), worker, pipeline, deployment, execution_id.
    """
    from fleetgauge.read import logs

    if not isinstance(execution_id, str) or not execution_id:
        raise TypeError(f"execution_id must be a non-empty str, got {execution_id!r}")
    pipelines = arguments.names(pipeline, "pipeline")
    window = arguments.window(start, end, ("start", "end"))
    envs = arguments.names(environment, "environment")
    logs.levels_from(level)  # a bad level fails before the store is opened
    arguments.check_store(store)
    lines = arguments.with_store(
        store,
        lambda s: logs.read_logs(
            s,
            *window,
            execution_id=execution_id,
            pipeline=pipelines,
            environment=envs,
            level=level,
            search=search,
            limit=limit,
            order=order,
        ),
    )
    return [line.as_dict() for line in lines]


def get_deployment_usage(
    deployment: Names = None,
    start: TimeLike = None,
    end: TimeLike = None,
    *,
    prices: usage.Prices | dict[str, float] | None = None,
    environment: str | None = None,
    store: StoreLike = None,
) -> list[dict[str, Any]]:
    """What deployments did and used in [start, end) (default: the last 24 hours), and
    what it cost: one dict per deployment (None: every one), sorted by name.

    Keys: deployment, predictions (values of its most-recorded metric),
    predictions_per_second, cpu_seconds, gpu_seconds (GPU time split by SM share,
    or by memory share while the GPU is idle), peak_gpu_memory_bytes,
    gpu_memory_total_bytes (of the largest GPU it was on), cost and
    cost_per_1000_predictions (None without ``prices``). ``prices``:
    ``{"gpu_hour": 2.5, "cpu_core_hour": 0.04}`` or ``{"worker_hour": 12}``, or a
    :class:`fleetgauge.read.usage.Prices`. The method is in :mod:`fleetgauge.read.usage`.
    """
    deployments = arguments.names(deployment, "deployment")
    window = arguments.window(*_default_day(start, end), ("start", "end"))
    if isinstance(prices, dict):
        prices = usage.Prices(**prices)
    if environment is not None and not isinstance(environment, str):
        raise TypeError(f"environment must be a name, got {type(environment).__name__}")
    arguments.check_store(store)
    found = arguments.with_store(
        store,
        lambda s: usage.deployment_usage(s, *window, deployments, prices, environment),
    )
    return [u.as_dict() for u in found]


def _default_day(start: TimeLike, end: TimeLike) -> tuple[TimeLike, TimeLike]:
    """``start`` and ``end``, the last 24 hours when not given."""
    if end is None:
        end = datetime.now(UTC)
    if start is None:
        end_ns = arguments.to_time_ns(end, "end")
        assert end_ns is not None
        start = _utc(end_ns - 86400 * 10**9)
    return start, end
