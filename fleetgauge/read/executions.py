"""Executions read back: what each run of a pipeline was given, how it ended, how it did.

An execution is written as records of three kinds (``catalogue.EXECUTION`` when it
starts, with its inputs, ``catalogue.EXECUTION_END`` when it ends, with its
status and outputs, and ``catalogue.EXECUTION_TAG`` whenever its tags change)
plus whatever values and events were recorded with its ``execution_id``. This
module joins them, for the query SDK (``fleetgauge.read.query.get_execution`` /
``list_executions``), ``fleetgauge export executions`` and the dashboard's
Executions page:

- the executions *started* in a window (newest first), optionally of some
  pipelines or statuses; one still without an end record is ``running``;
- *implicit* executions: an id that values, events, log lines or an end record carry but no
  start record does is an execution of status ``unknown`` (or the end record's), from
  its first record to its last (or its end record); listed when that first record
  falls in the window;
- per execution, the last value of each simple (pipeline) metric and, per list
  metric, its values by step: the last (highest step), min, max and mean. A
  step recorded twice keeps the later value, as a re-run epoch would;
- what its processes used (they registered with their agent for this
  execution, see :mod:`fleetgauge.agent.collectors.process`): peak GPU
  memory and mean GPU utilisation share of any one of its processes on any
  GPU, peak RSS of any one of its processes, and the CPU seconds all of them
  used while they worked for it; and, for one execution, those curves over
  its duration (:func:`read_resource_curves`);
- its tags: every tag write folded in time order (the latest write of a tag
  wins; a null removes it);
- the table columns: metadata, ``input.NAME``, ``output.NAME``, ``tag.NAME``,
  ``metric.NAME``, ``list.NAME.MODE`` and ``resource.NAME``, and the CSV of chosen columns (same
  writer rules as every export: formula cells neutralised, numbers as numbers, CRLF).

Values and events are matched on the execution id alone (with the
environment), whatever their time.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from fleetgauge import catalogue
from fleetgauge.read.export import LINE_END, neutralize
from fleetgauge.stores import StoreReader
from fleetgauge.stores.summaries import OFFSET_NS, SLACK_NS
from fleetgauge.timeutil import EARLIEST_NS, LATEST_NS, NS_PER_S, format_time, format_time_ns

__all__ = [
    "ExecutionRecord",
    "ListMetric",
    "MODES",
    "METADATA_COLUMNS",
    "read_executions",
    "read_execution",
    "add_metrics",
    "summaries_since",
    "add_list_values",
    "BULK_MARGIN_NS",
    "read_events",
    "read_resource_curves",
    "RESOURCE_COLUMNS",
    "ResourceCurve",
    "columns_of",
    "column_label",
    "check_column",
    "cell",
    "cell_getter",
    "iter_executions_csv",
]

MODES = ("last", "min", "max", "mean")
"""How a list metric is reduced to one table cell."""
METADATA_COLUMNS = ("execution_id", "pipeline", "worker", "status", "start", "end", "duration_s")
"""Columns every execution has; ``environment`` is available too."""
ENVIRONMENT_COLUMN = "environment"
_ID_CHUNK = 200  # ids per store filter, so an InfluxQL statement stays small
INPUTS = catalogue.EXECUTION.get_field("inputs").name
DEFAULTS = catalogue.EXECUTION.get_field("defaults").name
STATUS = catalogue.EXECUTION_END.get_field("status").name
OUTPUTS = catalogue.EXECUTION_END.get_field("outputs").name
TAGS = catalogue.EXECUTION_TAG.get_field("tags").name
VALUE = catalogue.PIPELINE_METRIC.get_field("value").name
STEP = catalogue.LIST_METRIC.get_field("step").name
_PROCESS = catalogue.PROCESS_MEASUREMENT
_GPU_PROCESS = catalogue.GPU_PROCESS
CPU_CORES, CPU_SECONDS, RSS_BYTES, _ = _PROCESS.field_names
GPU_MEMORY, GPU_SM, _ = _GPU_PROCESS.field_names
RESOURCE_COLUMNS = {
    "peak_gpu_memory_bytes": "peak GPU memory (bytes)",
    "mean_gpu_utilization_percent": "mean GPU share (%)",
    "peak_rss_bytes": "peak RSS (bytes)",
    "cpu_seconds": "CPU seconds",
}
"""What an execution's processes used (``resource.NAME`` columns) and their headers."""
_PER_PROCESS = (catalogue.WORKER, catalogue.PID)


@dataclass
class ListMetric:
    """One list metric of one execution: its values by step (the later value of a step wins)."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times_ns: list[int] = field(default_factory=list)
    summary: dict[str, float] | None = None
    """Its last, min, max and mean when only the store's summaries were read (a table of
    many executions): ``steps``, ``values`` and ``times_ns`` are empty then."""

    def reduce(self, mode: str) -> float | None:
        """The value at the last step, or the min, max or mean over all steps."""
        if self.summary is not None and not self.values:
            if mode not in MODES:
                raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
            return self.summary[mode]
        if not self.values:
            return None
        if mode == "last":
            return self.values[-1]
        if mode == "min":
            return min(self.values)
        if mode == "max":
            return max(self.values)
        if mode == "mean":
            return math.fsum(self.values) / len(self.values)
        raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")


@dataclass
class ExecutionRecord:
    """One execution: metadata, inputs, last simple-metric values and list metrics."""

    execution_id: str
    pipeline: str
    environment: str
    start_ns: int
    inputs: dict[str, Any]
    worker: str = ""
    """The worker whose agent took the start record ("" for a record written by hand
    without one)."""
    status: str = catalogue.RUNNING
    end_ns: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    list_metrics: dict[str, ListMetric] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    """What its processes used (keys of ``RESOURCE_COLUMNS``; none when none registered)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    defaulted: tuple[str, ...] = ()
    """Inputs taken from the run's defaults (not given by the caller)."""
    summarized: set[str] | None = field(default_factory=set, repr=False, compare=False)
    """Metrics whose summaries were read (None: every one), so none is read twice."""

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; None while running."""
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / NS_PER_S

    def as_dict(self, with_values: bool = True) -> dict[str, Any]:
        """Plain data: metadata, inputs, metrics, and list metrics (steps and values, or
        only their last/min/max/mean when ``with_values`` is false)."""
        lists: dict[str, Any] = {}
        for name, lm in self.list_metrics.items():
            summary = {mode: lm.reduce(mode) for mode in MODES}
            if with_values and lm.summary is None:
                summary.update(steps=list(lm.steps), values=list(lm.values))
            lists[name] = summary
        return {
            "execution_id": self.execution_id,
            "pipeline": self.pipeline,
            "environment": self.environment,
            "worker": self.worker,
            "status": self.status,
            "start": format_time(self.start_ns),
            "end": None if self.end_ns is None else format_time(self.end_ns),
            "duration_s": self.duration_s,
            "inputs": dict(self.inputs),
            "input_defaults": list(self.defaulted),
            "outputs": dict(self.outputs),
            "tags": dict(self.tags),
            "metrics": dict(self.metrics),
            "list_metrics": lists,
            "resources": dict(self.resources),
        }


def _where(
    environment: Sequence[str] | None = None, **tags: Sequence[str] | None
) -> dict[str, list[str]]:
    where = {catalogue.ENVIRONMENT: list(environment)} if environment is not None else {}
    for key, values in tags.items():
        if values is not None:
            where[key] = list(values)
    return where


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), _ID_CHUNK):
        yield list(ids[i : i + _ID_CHUNK])


def _key(tags: dict[str, str]) -> tuple[str, str]:
    return tags[catalogue.ENVIRONMENT], tags[catalogue.EXECUTION_ID]


def read_executions(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    environment: Sequence[str] | None = None,
    pipeline: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
    limit: int | None = None,
    with_metrics: bool = True,
) -> list[ExecutionRecord]:
    """Executions started in [start, end), newest first, at most ``limit`` of them.

    ``environment``, ``pipeline`` and ``status`` filter (None: no filter). A
    start recorded twice for one id keeps the later one; the latest end record
    gives the status. Their metrics come from the store's summaries (list metrics
    carry their last, min, max and mean, not every value: see :func:`add_list_values`);
    ``with_metrics=False`` leaves metrics and resources out (:func:`add_metrics`).
    """
    if status is not None:
        unknown = [s for s in status if s not in catalogue.SHOWN_STATUSES]
        if unknown:
            known = ", ".join(catalogue.SHOWN_STATUSES)
            raise ValueError(f"unknown status {unknown[0]!r} (known: {known})")
    found: dict[tuple[str, str], ExecutionRecord] = {}
    where = _where(environment, **{catalogue.PIPELINE: pipeline})
    since = max(EARLIEST_NS, start_ns - SLACK_NS)  # a census row may be this much late
    with ThreadPoolExecutor(1) as pool:  # the census beside the starts (InfluxDB: at once)
        census = pool.submit(
            store.tag_values,
            catalogue.EXECUTION_ID,
            since,
            min(LATEST_NS, end_ns + OFFSET_NS),  # and stamped up to OFFSET_NS late
            [_CENSUS],
            _where(environment),
            _CENSUS_STATS,
        )
        if not store.concurrent_reads:
            census.result()
        for p in store.stream_points(catalogue.EXECUTION.name, start_ns, end_ns, where):
            found[_key(p.tags)] = _record(p)
        carried = census.result()
    started_here = {execution_id for _, execution_id in found}
    implicit = _implicit(store, [i for i in carried if i not in started_here], environment)
    for key, record in implicit.items():
        if start_ns <= record.start_ns < end_ns and key not in found:
            if pipeline is None or record.pipeline in pipeline:
                found[key] = record
    records = _finish(store, found, start_ns, environment)
    if status is not None:
        records = [r for r in records if r.status in status]
    records.sort(key=lambda r: (r.start_ns, r.execution_id), reverse=True)
    if limit is not None:
        records = records[:limit]
    if with_metrics:
        add_metrics(store, records)
    return records


def read_execution(
    store: StoreReader, execution_id: str, environment: Sequence[str] | None = None
) -> ExecutionRecord | None:
    """The execution called ``execution_id`` (the latest started, if several environments
    have one), with its metrics read from every value; an implicit one (status ``unknown``)
    when only its values were recorded; None when nothing carries that id."""
    found: dict[tuple[str, str], ExecutionRecord] = {}
    where = _where(environment, **{catalogue.EXECUTION_ID: [execution_id]})
    for p in store.stream_points(catalogue.EXECUTION.name, EARLIEST_NS, LATEST_NS, where):
        found[_key(p.tags)] = _record(p)
    if not found:
        found = _implicit(store, [execution_id], environment)
    records = _finish(store, found, EARLIEST_NS, environment)
    if not records:
        return None
    latest = max(records, key=lambda r: r.start_ns)
    _add_values(store, [latest])
    _add_resources(store, [latest])
    return latest


def _json_object(text: object) -> dict[str, Any]:
    """A JSON object field ({} when empty or not an object: what was stored is never trusted)."""
    if not text or text == "{}":
        return {}
    try:
        found = orjson.loads(text if type(text) is str else str(text))
    except ValueError:  # orjson refuses what json takes: integers past 64 bits
        try:
            found = json.loads(str(text))
        except ValueError:
            return {}
    return found if isinstance(found, dict) else {}


def _record(p: catalogue.Point) -> ExecutionRecord:
    given = _json_object(p.fields.get(INPUTS))
    defaults = {k: v for k, v in _json_object(p.fields.get(DEFAULTS)).items() if k not in given}
    record = ExecutionRecord(
        p.tags[catalogue.EXECUTION_ID],
        p.tags[catalogue.PIPELINE],
        p.tags[catalogue.ENVIRONMENT],
        p.time_ns,
        {**given, **defaults},
        p.tags.get(catalogue.WORKER, ""),
    )
    record.defaulted = tuple(defaults)
    return record


IMPLICIT_SOURCES = catalogue.CENSUSED
"""What makes an execution whose start was never recorded appear (the store's writer
counts them in ``execution_census``)."""
_CENSUS = catalogue.EXECUTION_CENSUS.name
_SUMMARY = catalogue.SERIES_SUMMARY.name
BULK_MARGIN_NS = 86_400 * NS_PER_S
"""Reading the end records, tag writes and summaries of more executions than one id
filter holds, a store is read by time from this long before the earliest start (by id
it would take a query per 200 executions): a value, end or tag written more than this
before its execution started is left out of such a table (its own page reads them all)."""


def _implicit(
    store: StoreReader, ids: Sequence[str], environment: Sequence[str] | None
) -> dict[tuple[str, str], ExecutionRecord]:
    """Executions of ``ids`` known only by their values: status ``unknown``, from the first
    record carrying the id to the last (as the census counted them). An id started anywhere
    (in that environment) is not one; a later end record gives its status and end (see
    :func:`_finish`)."""
    if not ids:
        return {}
    started: set[tuple[str, str]] = set()
    spans: dict[tuple[str, str], ExecutionRecord] = {}
    for chunk in _chunks(sorted(set(ids))):
        where = _where(environment, **{catalogue.EXECUTION_ID: chunk})
        for p in store.stream_points(catalogue.EXECUTION.name, EARLIEST_NS, LATEST_NS, where):
            started.add(_key(p.tags))
        # an id with a start (in an environment asked for) is not read further: its values
        # belong to that execution, which may have started before the window
        begun = {execution_id for _, execution_id in started}
        chunk = [i for i in chunk if i not in begun]
        if not chunk:
            continue
        where = _where(environment, **{catalogue.EXECUTION_ID: chunk})
        for p in store.stream_points(_CENSUS, EARLIEST_NS, LATEST_NS, where):
            key = _key(p.tags)
            stats = _stats(p)
            first, last = int(stats[_FIRST]), int(stats[_LAST])
            record = spans.get(key)
            if record is None or first < record.start_ns:
                pipeline = str(stats.get(_CENSUS_PIPELINE) or "")
                worker = str(stats.get(_CENSUS_WORKER) or "")
                end = last if record is None else max(last, record.end_ns or last)
                record = spans[key] = ExecutionRecord(
                    key[1], pipeline, key[0], first, {}, worker, catalogue.UNKNOWN
                )
                record.end_ns = end
            record.end_ns = max(record.end_ns or last, last)
    return {key: r for key, r in spans.items() if key not in started}


_STATS = catalogue.SERIES_SUMMARY.fields[0].name
_SUMMARY_TAGS = catalogue.ENVIRONMENT, catalogue.EXECUTION_ID, catalogue.METRIC, catalogue.SOURCE
_LIST_SOURCE = catalogue.LIST_METRIC.name
_CENSUS_STATS = {_CENSUS: [catalogue.EXECUTION_CENSUS.fields[0].name]}
_, _FIRST, _LAST, _CENSUS_PIPELINE, _CENSUS_WORKER = catalogue.CENSUS_STATS


def _stats(p: catalogue.Point) -> dict[str, Any]:
    """The ``stats`` of a summary or census row ({} when unreadable: never trusted)."""
    return _json_object(p.fields.get(_STATS))


def _by_ids(
    store: StoreReader,
    measurement: str,
    ids: Sequence[str],
    since_ns: int,
    environment: Sequence[str] | None,
    **tags: Sequence[str] | None,
) -> Iterator[catalogue.Point]:
    """Points of ``measurement`` carrying one of ``ids`` since ``since_ns`` (and ``tags``):
    by id, a query per 200 of them; for more, by time from ``BULK_MARGIN_NS`` earlier (the
    caller keeps the ids it wants)."""
    if len(ids) > _ID_CHUNK:
        where = _where(environment, **tags)
        since_ns = max(EARLIEST_NS, since_ns - BULK_MARGIN_NS)
        yield from store.stream_points(measurement, since_ns, LATEST_NS, where)
        return
    for chunk in _chunks(ids):
        where = _where(environment, **{catalogue.EXECUTION_ID: chunk}, **tags)
        yield from store.stream_points(measurement, since_ns, LATEST_NS, where)


def _finish(
    store: StoreReader,
    found: dict[tuple[str, str], ExecutionRecord],
    since_ns: int,
    environment: Sequence[str] | None,
) -> list[ExecutionRecord]:
    """Statuses, ends and outputs from the end records written since the earliest start,
    and tags from the tag records written since then, in time order."""
    if not found:
        return []
    since = min([since_ns, *(r.start_ns for r in found.values())])
    ids = sorted({execution_id for _, execution_id in found})
    with ThreadPoolExecutor(1) as pool:  # the tag writes beside the ends (InfluxDB: at once)
        tagged = _by_ids(store, catalogue.EXECUTION_TAG.name, ids, since, environment)
        tag_writes = pool.submit(list, tagged)
        if not store.concurrent_reads:
            tag_writes.result()
        for p in _by_ids(store, catalogue.EXECUTION_END.name, ids, since, environment):
            record = found.get(_key(p.tags))
            if record is not None and p.time_ns >= record.start_ns:
                record.status, record.end_ns = str(p.fields.get(STATUS)), p.time_ns
                record.outputs = _json_object(p.fields.get(OUTPUTS))
    for p in sorted(tag_writes.result(), key=lambda p: p.time_ns):
        record = found.get(_key(p.tags))
        if record is not None:
            for name, value in _json_object(p.fields.get(TAGS)).items():
                if value is None:
                    record.tags.pop(name, None)
                else:
                    record.tags[name] = str(value)
    for record in found.values():
        if len(record.tags) > 1:
            record.tags = dict(sorted(record.tags.items()))
    return list(found.values())


def add_metrics(
    store: StoreReader,
    records: Sequence[ExecutionRecord],
    metrics: Collection[str] | None = None,
    resources: bool = True,
    early: Sequence[catalogue.Point] | None = None,
) -> None:
    """The metrics of ``records`` from the store's summaries (only those named
    ``metrics``; None: all) and, with ``resources``, what their processes used.

    ``early``: the summary rows of those metrics read by time (:func:`summaries_since`)
    from at least ``BULK_MARGIN_NS`` before every record's start, beside other reads;
    used when more records than one id filter holds are asked for (as they would be
    read then).

    A simple metric's value is its latest; a list metric's last, min, max and mean come
    from the summaries when the generations of its series cover disjoint step ranges,
    each in order, and from its values otherwise (see :mod:`fleetgauge.stores.summaries`).
    """
    if metrics is None:
        wanted = [r for r in records if r.summarized is not None]
    else:
        wanted = [r for r in records if r.summarized is not None and set(metrics) - r.summarized]
    for r in wanted:
        r.summarized = None if metrics is None else r.summarized | set(metrics)  # type: ignore[operator]
    if resources:
        _add_resources(store, records)
    by_key = {(r.environment, r.execution_id): r for r in wanted}
    if not by_key:
        return
    records = wanted
    ids = sorted({r.execution_id for r in records})
    since = min(r.start_ns for r in records)
    environments = sorted({r.environment for r in records})
    chosen = None if metrics is None else sorted(metrics)
    latest: dict[tuple[tuple[str, str], str], tuple[int, float]] = {}
    lists: dict[tuple[tuple[str, str], str], list[Mapping[str, Any]]] = {}
    since = EARLIEST_NS if len(ids) <= _ID_CHUNK else since  # by id: every summary
    rows: Iterable[catalogue.Point] = ()
    if early is not None and len(ids) > _ID_CHUNK:
        rows = early
    elif chosen != []:
        rows = _by_ids(store, _SUMMARY, ids, since, environments, metric=chosen)
    env_tag, id_tag, metric_tag, source_tag = _SUMMARY_TAGS
    for p in rows:  # (names held in locals: this loop runs for every summary row)
        tags = p.tags
        key = tags[env_tag], tags[id_tag]
        if key not in by_key:
            continue
        series = (key, tags[metric_tag])
        stats = _json_object(p.fields.get(_STATS))
        if tags.get(source_tag) == _LIST_SOURCE:
            lists.setdefault(series, []).append(stats)
            continue
        try:
            t, value = int(stats[_S_LAST_NS]), float(stats[_S_LAST])
        except (KeyError, TypeError, ValueError):
            continue  # not a row this writer wrote
        if series not in latest or t >= latest[series][0]:
            latest[series] = (t, value)
    for (key, metric), (_, value) in latest.items():
        by_key[key].metrics[metric] = value
    unsure: dict[tuple[str, str], set[str]] = {}
    for (key, metric), generations in lists.items():
        summary = _merged(generations)
        if summary is None:
            unsure.setdefault(key, set()).add(metric)
        else:
            by_key[key].list_metrics[metric] = ListMetric(summary=summary)
    if unsure:  # steps written twice or out of order: their values decide
        _add_values(store, [by_key[k] for k in unsure], sorted(set().union(*unsure.values())))
    for r in records:
        if len(r.metrics) > 1:
            r.metrics = dict(sorted(r.metrics.items()))
        if len(r.list_metrics) > 1:
            r.list_metrics = dict(sorted(r.list_metrics.items()))


_S_COUNT, _S_FIRST, _S_LAST_NS, _S_SUM, _S_MIN, _S_MAX, _S_LAST = catalogue.SUMMARY_STATS[:7]
_S_STEP_LO, _S_STEP_HI, _S_ORDERED = catalogue.SUMMARY_STATS[7:]


def summaries_since(
    store: StoreReader,
    since_ns: int,
    environment: Sequence[str] | None,
    metrics: Collection[str],
) -> list[catalogue.Point]:
    """The summary rows of ``metrics`` written from ``BULK_MARGIN_NS`` before ``since_ns``
    on: what :func:`add_metrics` reads for many executions that started since then."""
    since = max(EARLIEST_NS, since_ns - BULK_MARGIN_NS)
    where = _where(environment, **{catalogue.METRIC: sorted(metrics)})
    return list(store.stream_points(_SUMMARY, since, LATEST_NS, where))


def _merged(generations: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    """Last, min, max and mean of a list metric from its summaries; None when they cannot
    tell (a generation with a step out of order, or two whose step ranges overlap, or one
    that is not what this writer writes)."""
    try:
        return _merged_or_fail(generations)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _merged_or_fail(generations: Sequence[Mapping[str, Any]]) -> dict[str, float] | None:
    if len(generations) == 1:  # the usual case: a series written by one writer in one go
        only = generations[0]
        if not int(only.get(_S_ORDERED, 0)):
            return None
        return {
            "last": float(only[_S_LAST]),
            "min": float(only[_S_MIN]),
            "max": float(only[_S_MAX]),
            "mean": float(only[_S_SUM]) / int(only[_S_COUNT]),
        }
    ordered = sorted(generations, key=lambda g: int(g[_S_STEP_LO]))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if int(after[_S_STEP_LO]) <= int(before[_S_STEP_HI]):
            return None
    if any(not int(g.get(_S_ORDERED, 0)) for g in ordered):
        return None
    count = sum(int(g[_S_COUNT]) for g in ordered)
    return {
        "last": float(ordered[-1][_S_LAST]),
        "min": min(float(g[_S_MIN]) for g in ordered),
        "max": max(float(g[_S_MAX]) for g in ordered),
        "mean": math.fsum(float(g[_S_SUM]) for g in ordered) / count,
    }


def add_list_values(store: StoreReader, records: Sequence[ExecutionRecord]) -> None:
    """Every value of the list metrics of ``records`` (what a comparison draws)."""
    _add_values(store, records)


def _add_values(
    store: StoreReader, records: Sequence[ExecutionRecord], lists: Sequence[str] | None = None
) -> None:
    """Simple-metric values (latest) and list-metric values of ``records`` read from every
    value, in chunks; ``lists`` names the only list metrics to read (then no simple ones)."""
    by_key = {(r.environment, r.execution_id): r for r in records}
    ids = sorted({r.execution_id for r in records})
    environments = sorted({r.environment for r in records})
    if lists is None:
        for r in records:
            r.summarized = None  # every value read: no summary needed
    for chunk in _chunks(ids):
        where = _where(environments, **{catalogue.EXECUTION_ID: chunk})
        if lists is None:
            simple = store.stream_points(
                catalogue.PIPELINE_METRIC.name, EARLIEST_NS, LATEST_NS, where
            )
            for p in simple:
                record = by_key.get(_key(p.tags))
                if record is not None:
                    record.metrics[p.tags[catalogue.METRIC]] = float(p.fields[VALUE])
        else:
            where[catalogue.METRIC] = list(lists)
        steps: dict[tuple[tuple[str, str], str], dict[int, tuple[int, float]]] = {}
        for p in store.stream_points(catalogue.LIST_METRIC.name, EARLIEST_NS, LATEST_NS, where):
            key = _key(p.tags)
            if key in by_key:
                per_step = steps.setdefault((key, p.tags[catalogue.METRIC]), {})
                per_step[int(p.fields[STEP])] = (p.time_ns, float(p.fields[VALUE]))
        for (key, metric), per_step in steps.items():
            lm = by_key[key].list_metrics[metric] = ListMetric()
            for step in sorted(per_step):
                t, value = per_step[step]
                lm.steps.append(step)
                lm.times_ns.append(t)
                lm.values.append(value)
    for r in records:
        if len(r.metrics) > 1:
            r.metrics = dict(sorted(r.metrics.items()))
        if len(r.list_metrics) > 1:
            r.list_metrics = dict(sorted(r.list_metrics.items()))


def _window(records: Sequence[ExecutionRecord]) -> tuple[int, int]:
    """From the first start to the last end (now, for one still running)."""
    end = max(LATEST_NS if r.end_ns is None else r.end_ns + 1 for r in records)
    return min(r.start_ns for r in records), min(end, time.time_ns() + NS_PER_S)


def _add_resources(store: StoreReader, records: Sequence[ExecutionRecord]) -> None:
    """The ``resources`` of ``records``: one bucketed read per measurement and id chunk.

    Few buckets over the whole window: each process's count, min, max and mean are
    what the summary needs (CPU seconds are the growth of a cumulative counter), and
    the rollup tiers keep them exact.
    """
    if not records:
        return
    for r in records:  # read anew, never added twice
        r.resources = {}
    by_key = {(r.environment, r.execution_id): r for r in records}
    start_ns, end_ns = _window(records)
    environments = sorted({r.environment for r in records})
    group = (catalogue.ENVIRONMENT, catalogue.EXECUTION_ID, *_PER_PROCESS)
    for chunk in _chunks(sorted({r.execution_id for r in records})):
        where = _where(environments, **{catalogue.EXECUTION_ID: chunk})
        cpu = store.read_buckets(
            _PROCESS.name, [CPU_SECONDS, RSS_BYTES], start_ns, end_ns, 4, where, group
        )
        for s in cpu.series:
            record = by_key.get(_key(s.tags))
            if record is None:
                continue
            seconds, rss = s.fields[CPU_SECONDS], s.fields[RSS_BYTES]
            _add(record, "cpu_seconds", _span(seconds), sum)
            _add(record, "peak_rss_bytes", _peak(rss), max)
        gpu_group = (*group, catalogue.GPU)
        gpu = store.read_buckets(
            _GPU_PROCESS.name, [GPU_MEMORY, GPU_SM], start_ns, end_ns, 4, where, gpu_group
        )
        shares: dict[tuple[str, str], list[float]] = {}
        for s in gpu.series:
            record = by_key.get(_key(s.tags))
            if record is None:
                continue
            _add(record, "peak_gpu_memory_bytes", _peak(s.fields[GPU_MEMORY]), max)
            sm = s.fields[GPU_SM]
            total = shares.setdefault(_key(s.tags), [0.0, 0])
            for n, mean in zip(sm.count, sm.mean, strict=True):
                if n and mean is not None:
                    total[0] += n * mean
                    total[1] += n
        for key, (weighted, n) in shares.items():
            if n:
                by_key[key].resources["mean_gpu_utilization_percent"] = weighted / n


def _span(f: Any) -> float | None:
    """How much a cumulative field grew over the buckets (max - min), None without points."""
    lows = [v for v in f.min if v is not None]
    highs = [v for v in f.max if v is not None]
    return max(highs) - min(lows) if lows and highs else None


def _peak(f: Any) -> float | None:
    highs = [v for v in f.max if v is not None]
    return max(highs) if highs else None


def _add(record: ExecutionRecord, name: str, value: float | None, combine: Any) -> None:
    if value is None:
        return
    old = record.resources.get(name)
    record.resources[name] = value if old is None else combine((old, value))


@dataclass
class ResourceCurve:
    """One process's use over an execution: what, which process, when, how much."""

    field: str
    label: str
    times_ns: list[int]
    values: list[float]


def read_resource_curves(
    store: StoreReader, record: ExecutionRecord, max_points: int = 300
) -> list[ResourceCurve]:
    """CPU %, RSS, GPU memory and GPU share of each of ``record``'s processes over its
    duration, bucketed (bucket means) to at most about ``max_points`` per curve."""
    start_ns, end_ns = _window([record])
    where = _where([record.environment], **{catalogue.EXECUTION_ID: [record.execution_id]})
    curves = []
    reads = (
        (_PROCESS.name, (CPU_CORES, RSS_BYTES), _PER_PROCESS),
        (_GPU_PROCESS.name, (GPU_MEMORY, GPU_SM), (*_PER_PROCESS, catalogue.GPU)),
    )
    for measurement, fields, group in reads:
        b = store.read_buckets(
            measurement, list(fields), start_ns, end_ns, max_points, where, group
        )
        for s in sorted(b.series, key=lambda s: sorted(s.tags.items())):
            label = f"pid {s.tags.get(catalogue.PID, '?')} on {s.tags.get(catalogue.WORKER, '?')}"
            if catalogue.GPU in s.tags:
                label += f", GPU {s.tags[catalogue.GPU]}"
            for name in fields:
                f = s.fields[name]
                keep = [i for i, n in enumerate(f.count) if n and f.mean[i] is not None]
                if keep:
                    times = [s.times[i] for i in keep]
                    values = [float(f.mean[i]) for i in keep]  # type: ignore[arg-type]
                    curves.append(ResourceCurve(f"{measurement}.{name}", label, times, values))
    return curves


def read_events(
    store: StoreReader, records: Sequence[ExecutionRecord], limit: int = 500
) -> list[catalogue.Point]:
    """Events recorded with the ids of ``records`` (their environments), in time order."""
    by_key = {(r.environment, r.execution_id) for r in records}
    ids = sorted({r.execution_id for r in records})
    environments = sorted({r.environment for r in records})
    events: list[catalogue.Point] = []
    for chunk in _chunks(ids):
        where = _where(environments, **{catalogue.EXECUTION_ID: chunk})
        for p in store.stream_points(catalogue.EVENT.name, EARLIEST_NS, LATEST_NS, where):
            if _key(p.tags) in by_key:
                events.append(p)
    events.sort(key=lambda p: p.time_ns)
    return events[:limit]


# --- columns -------------------------------------------------------------------------
def columns_of(records: Iterable[ExecutionRecord], mode: str = "last") -> list[str]:
    """Every column the records can fill: metadata, inputs, metrics, list metrics (``mode``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r} (known: {', '.join(MODES)})")
    inputs: dict[str, None] = {}
    outputs: dict[str, None] = {}
    tags: set[str] = set()
    metrics: set[str] = set()
    lists: set[str] = set()
    resources: set[str] = set()
    for r in records:
        inputs.update(dict.fromkeys(r.inputs))
        outputs.update(dict.fromkeys(r.outputs))
        tags.update(r.tags)
        metrics.update(r.metrics)
        lists.update(r.list_metrics)
        resources.update(r.resources)
    return [
        *METADATA_COLUMNS,
        *(f"input.{name}" for name in inputs),
        *(f"output.{name}" for name in outputs),
        *(f"tag.{name}" for name in sorted(tags)),
        *(f"metric.{name}" for name in sorted(metrics)),
        *(f"list.{name}.{mode}" for name in sorted(lists)),
        *(f"resource.{name}" for name in RESOURCE_COLUMNS if name in resources),
    ]


def column_label(column: str) -> str:
    """What a table header shows: ``learning_rate``, ``score (last value)``, ``accuracy (max)``."""
    if column.startswith("input."):
        return column[len("input.") :]
    if column.startswith("output."):
        return f"{column[len('output.') :]} (output)"
    if column.startswith("tag."):
        return f"tag {column[len('tag.') :]}"
    if column.startswith("metric."):
        return f"{column[len('metric.') :]} (last value)"
    if column.startswith("list."):
        name, mode = column[len("list.") :].rsplit(".", 1)
        return f"{name} ({mode})"
    if column.startswith("resource.") and column[len("resource.") :] in RESOURCE_COLUMNS:
        return RESOURCE_COLUMNS[column[len("resource.") :]]
    if column in ("start", "end"):
        return f"{column} (UTC)"
    return column


def check_column(column: str) -> str:
    """``column`` when it names a column of some execution; ValueError saying the forms."""
    ok = column in (*METADATA_COLUMNS, ENVIRONMENT_COLUMN) or column.startswith(
        ("input.", "output.", "tag.", "metric.")
    )
    if column.startswith("list."):
        ok = "." in column[len("list.") :] and column.rsplit(".", 1)[1] in MODES
    if column.startswith("resource."):
        ok = column[len("resource.") :] in RESOURCE_COLUMNS
    if not ok or column.endswith("."):
        raise ValueError(
            f"unknown column {column!r}: use {', '.join(METADATA_COLUMNS)}, {ENVIRONMENT_COLUMN},"
            f" input.NAME, output.NAME, tag.NAME, metric.NAME, list.NAME.MODE"
            f" (MODE: {', '.join(MODES)}) or"
            f" resource.NAME (NAME: {', '.join(RESOURCE_COLUMNS)})"
        )
    return column


def cell(record: ExecutionRecord, column: str) -> Any:
    """The value of ``column`` for ``record`` (None when it has none)."""
    return cell_getter(column)(record)


def cell_getter(column: str) -> Callable[[ExecutionRecord], Any]:
    """What :func:`cell` does for ``column``, with the column taken apart once (for a loop
    over many records)."""
    prefix, _, name = column.partition(".")
    if prefix == "input":
        return lambda r: r.inputs.get(name)
    if prefix == "output":
        return lambda r: r.outputs.get(name)
    if prefix == "tag":
        return lambda r: r.tags.get(name)
    if prefix == "metric":
        return lambda r: r.metrics.get(name)
    if prefix == "resource":
        return lambda r: r.resources.get(name)
    if prefix == "list":
        name, mode = name.rsplit(".", 1)

        def reduced(r: ExecutionRecord) -> Any:
            lm = r.list_metrics.get(name)
            return None if lm is None else lm.reduce(mode)

        return reduced
    if column == "start":  # as in every CSV: nine decimals, one width for every row
        return lambda r: format_time_ns(r.start_ns)
    if column == "end":
        return lambda r: None if r.end_ns is None else format_time_ns(r.end_ns)
    if column == "duration_s":
        return lambda r: r.duration_s
    return lambda r: getattr(r, column)


def _csv_value(value: Any) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    return neutralize(str(value))


def iter_executions_csv(
    records: Iterable[ExecutionRecord], columns: Sequence[str]
) -> Iterator[str]:
    """CSV text, one row per execution with ``columns`` (header first, one chunk per row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_END)
    writer.writerow([neutralize(c) for c in columns])
    yield buffer.getvalue()
    getters = [cell_getter(c) for c in columns]
    for r in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_csv_value(get(r)) for get in getters])
        yield buffer.getvalue()
