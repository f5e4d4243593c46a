"""Store reads for the executions page: the table's executions, its options, the compared runs.

The execution read model itself (start and end records joined with their values
and events) is :mod:`fleetgauge.read.executions`, shared with ``fleetgauge export
executions`` and the read API; this module asks it what one view of the page shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from fleetgauge import catalogue
from fleetgauge.dashboard.data.listings import list_environments
from fleetgauge.read import executions as ex
from fleetgauge.read import filters
from fleetgauge.stores import StoreReader

__all__ = ["ExecutionsView", "read_executions_view", "RunView", "read_run_view", "MAX_COMPARED"]

MAX_COMPARED = 20
"""Compared executions whose resource curves are read (one bucketed read each)."""


class ExecutionsView(NamedTuple):
    """What the page shows for one range and filter."""

    environments: list[str]
    pipelines: list[str]
    records: list[ex.ExecutionRecord]
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
    limit: int,
    where: str | None = None,
) -> ExecutionsView:
    """Executions started in [start, end) that pass the filter ``where`` (the newest
    ``limit``), options, compared runs; FilterError before any read for a bad filter."""
    test = filters.compile_filter(where) if where and where.strip() else None
    env = [environment] if environment else None
    where = {catalogue.ENVIRONMENT: env} if env else None
    pipelines = store.tag_values(
        catalogue.PIPELINE, start_ns, end_ns, [catalogue.EXECUTION.name], where
    )
    records = ex.read_executions(
        store,
        start_ns,
        end_ns,
        env,
        [pipeline] if pipeline else None,
        [status] if status else None,
        None if test else limit,
    )
    if test is not None:
        records = [r for r in records if test(r)][:limit]
    runs = [r for r in records if r.execution_id in compared]
    events = ex.read_events(store, runs) if runs else []
    curves = {r.execution_id: ex.read_resource_curves(store, r) for r in runs[:MAX_COMPARED]}
    environments = list_environments(store, start_ns, end_ns)
    return ExecutionsView(environments, pipelines, records, runs, events, curves)


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
