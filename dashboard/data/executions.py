"""Store reads for the executions page: the table's executions, its options, the compared runs.

The execution read model itself (start and end records joined with their values
and events) is :mod:`fleetgauge.read.executions`, shared with ``fleetgauge export
executions`` and the read API; this module asks it what one view of the page shows.

The table is paged on the server: every execution of the range that passes the
filter is listed (start, end and tag records, and the metrics a filter names), the
order of a sort by a metric reads that metric's summaries for all of them, and only
the page shown reads every metric and resource (:func:`read_page`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from fleetgauge import catalogue
from fleetgauge.dashboard.data.listings import list_environments
from fleetgauge.dashboard.data.resources import done
from fleetgauge.read import executions as ex
from fleetgauge.read import filters
from fleetgauge.stores import StoreReader

__all__ = [
    "ExecutionsView",
    "read_executions_view",
    "read_page",
    "RunView",
    "read_run_view",
    "MAX_COMPARED",
    "MAX_DRAWN",
    "PAGE_SIZE",
]

_INPUTS = {catalogue.EXECUTION.name: [catalogue.EXECUTION.get_field("inputs").name]}
MAX_COMPARED = 20
"""Compared executions whose resource curves are read (one bucketed read each)."""
MAX_DRAWN = 1000
"""Executions the parallel-coordinates chart draws at most: the newest the table lists."""
PAGE_SIZE = 25
"""Executions a page of the table shows."""


class ExecutionsView(NamedTuple):
    """What the page shows for one range and filter."""

    environments: list[str]
    pipelines: list[str]
    records: list[ex.ExecutionRecord]
    """Every execution the table lists, newest first (metrics: those the filter named)."""
    drawn: list[ex.ExecutionRecord]
    """The newest ``MAX_DRAWN`` of them, with the chart's metric (``by``)."""
    by: str | None
    """The chart's metric column: the one asked for, else the newest execution's first."""
    compared: list[ex.ExecutionRecord]
    events: list[catalogue.Point]
    curves: dict[str, list[ex.ResourceCurve]]
    """Per compared execution, what its processes used over its duration."""


def read_executions_view(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    environment: str | None,
    pipeline: str | None,
    status: str | None,
    compared: Sequence[str],
    where: str | None = None,
    *,
    mode: str = "last",
    by: str | None = None,
) -> ExecutionsView:
    """Executions started in [start, end) that pass the filter ``where``, options, the
    chart's executions and the compared runs; FilterError before any read for a bad
    filter. The table's rows come from :func:`read_page`."""
    if where and where.strip():
        filters.parse_filter(where)  # a bad filter fails before anything is read
    env = [environment] if environment else None
    # Every execution of the range is read before the filter: when no other choice
    # narrowed that read, the pipelines and environments of its starts are the lists'
    # (each a count over every execution's series otherwise: 0.1 to 0.2 s for 10,000).
    every_pipeline = pipeline is None and status is None
    with ThreadPoolExecutor(2) as pool:  # the listings beside the executions' reads
        beside = pool.submit if store.concurrent_reads else done
        pipelines = None
        if not every_pipeline:
            pipelines = beside(
                store.tag_values,
                catalogue.PIPELINE,
                start_ns,
                end_ns,
                [catalogue.EXECUTION.name],
                {catalogue.ENVIRONMENT: env} if env else None,
                _INPUTS,  # one field counted: every start has it
            )
        counted = env is not None or not every_pipeline  # else the starts read below
        environments = beside(list_environments, store, start_ns, end_ns, counted)
        candidates, test = filters.read_candidates(
            store,
            start_ns,
            end_ns,
            where,
            env,
            [pipeline] if pipeline else None,
            [status] if status else None,
        )
        found = sorted({*environments.result(), *(r.environment for r in candidates)})
        listed = pipelines.result() if pipelines is not None else []
    listed = sorted({*listed, *(r.pipeline for r in candidates if r.pipeline)})
    records = [r for r in candidates if test(r)]
    drawn = records[:MAX_DRAWN]
    if by is None and records:  # the newest execution's first metric
        ex.add_metrics(store, records[:1], resources=False)
        metrics = [c for c in ex.columns_of(records[:1], mode) if _is_metric(c)]
        by = metrics[0] if metrics else None
    if by is not None:
        add_column(store, drawn, by)
    runs = [r for r in records if r.execution_id in compared]
    ex.add_list_values(store, runs)  # a chart draws every value
    events = ex.read_events(store, runs) if runs else []
    curves = {r.execution_id: ex.read_resource_curves(store, r) for r in runs[:MAX_COMPARED]}
    return ExecutionsView(found, listed, records, drawn, by, runs, events, curves)


def _is_metric(column: str) -> bool:
    return column.startswith(("metric.", "list.", "resource."))


def add_column(store: StoreReader, records: Sequence[ex.ExecutionRecord], column: str) -> None:
    """What ``column`` needs read for ``records`` (a metric's summaries, the resources)."""
    if column.startswith("metric."):
        ex.add_metrics(store, records, [column[len("metric.") :]], resources=False)
    elif column.startswith("list."):
        name = column[len("list.") :].rsplit(".", 1)[0]
        ex.add_metrics(store, records, [name], resources=False)
    elif column.startswith("resource."):
        ex.add_metrics(store, records, (), resources=True)


def read_page(
    store: StoreReader,
    records: Sequence[ex.ExecutionRecord],
    page: int,
    page_size: int,
    sort: tuple[str, bool] | None = None,
    keep: Collection[str] | None = None,
) -> tuple[list[ex.ExecutionRecord], int]:
    """Page ``page`` (from 0) of ``records`` (only those whose ids are in ``keep``, when
    given) in the order of ``sort`` (column, descending), with every metric and
    resource; and how many executions the pages hold. A sort by a metric reads that
    metric for every execution listed; numbers come first, then text, then empty cells,
    whichever the direction (as a click on the table's header sorts)."""
    listed = [r for r in records if keep is None or r.execution_id in keep]
    if sort is not None:
        column, descending = sort
        add_column(store, listed, column)
        listed = _sorted(listed, column, descending)
    first = max(0, page) * page_size
    shown = listed[first : first + page_size]
    ex.add_metrics(store, shown)
    return shown, len(listed)


def _sorted(
    records: list[ex.ExecutionRecord], column: str, descending: bool
) -> list[ex.ExecutionRecord]:
    if column in ("start", "end"):
        value = (lambda r: r.start_ns) if column == "start" else (lambda r: r.end_ns)
    else:
        value = ex.cell_getter(column)
    numbers, texts, empty = [], [], []
    for r in records:
        v = value(r)
        if v is None:
            empty.append(r)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            numbers.append((v, r))
        else:
            texts.append((str(v), r))
    numbers.sort(key=lambda p: p[0], reverse=descending)  # stable: newest first among equals
    texts.sort(key=lambda p: p[0], reverse=descending)
    return [r for _, r in numbers] + [r for _, r in texts] + empty


class RunView(NamedTuple):
    """What one execution's page shows (its log lines are read on their own)."""

    record: ex.ExecutionRecord
    events: list[catalogue.Point]
    curves: list[ex.ResourceCurve]


def read_run_view(store: StoreReader, execution_id: str, environment: str | None) -> RunView | None:
    """The execution ``execution_id`` with its events and resource curves; None when nothing
    was recorded under that id."""
    record = ex.read_execution(store, execution_id, [environment] if environment else None)
    if record is None:
        return None
    return RunView(record, ex.read_events(store, [record]), ex.read_resource_curves(store, record))
