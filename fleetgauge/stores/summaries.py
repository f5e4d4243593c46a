"""Execution summaries computed by fleetgauge's own write path, identical on every store.

A table of 10,000 executions cannot read their 10 million list-metric values
each time it is drawn, so the writer keeps, beside the points, two small
measurements of what carries an ``execution_id`` tag (catalogue
``SERIES_SUMMARY`` and ``EXECUTION_CENSUS``):

- per series of a pipeline or list metric (``catalogue.SUMMARIZED``): the count,
  sum, min and max of its values, the times of the earliest and latest, the last
  value (at the highest step of a list metric, at the latest time of a simple
  metric), the lowest and highest step, and whether every step came after the one
  before (``ordered``);
- per execution whose start record this writer has not seen (``catalogue.CENSUSED``
  points: values, events, end records, log lines): how many points, the times of the
  earliest and latest, and the first pipeline and worker seen. It finds the executions
  whose start was never recorded, and costs nothing for those whose start was (the
  writer remembers up to ``max_open`` started ids; one it forgot, after a restart, is
  counted again, and a reader finds its start and leaves it be).

Generations, as the rollup tiers have (:mod:`fleetgauge.stores.tiers`). The
writer holds the summaries still open in memory and writes each one's
*cumulative* row with every batch that touches it, replacing the row it wrote
before. A row is keyed by its series and its timestamp: the time of the first
point it counts plus a random offset under ``OFFSET_NS`` (a millisecond), which
is what tells its generation from another (a tag would not do: InfluxDB 1.x
refuses a tag of more than 100,000 values). A point more than ``SLACK_NS``
earlier than the row's first, a restarted writer, or a series evicted from memory
(``max_open``, :meth:`SummaryAccumulator.forget_idle`) opens a new generation,
never overwriting an older one. So a row's timestamp is within ``SLACK_NS``
before and ``OFFSET_NS`` after the time of the earliest point it counts (a point
up to an hour earlier joins the row: points of one batch need not be in time
order), and a time-bounded read widened by those finds an execution by its first
point. The
readers merge the generations of a series: counts and sums add, and the
generations of a list metric whose step ranges do not overlap, each ``ordered``,
give its last, min, max and mean exactly. Anything else (a step written twice, a
spool replayed after a restart) is read from the raw points instead
(:mod:`fleetgauge.read.executions`).

Staging, as the tiers: :meth:`SummaryAccumulator.stage` computes the new rows
without changing the accumulator, the store writes them with the batch and calls
:meth:`~SummaryAccumulator.commit` only once the write succeeded, so a batch
that failed and is replayed counts once.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.stores.runs import Runs, split

__all__ = ["SummaryAccumulator", "Staged", "SLACK_NS", "OFFSET_NS"]

SLACK_NS = 3600 * 1_000_000_000
"""How much earlier than its row's first point a point may be and still join that row."""
OFFSET_NS = 1_000_000
"""A row's timestamp is its first point's time plus a random offset under this."""

_SUMMARY = catalogue.SERIES_SUMMARY.name
_CENSUS = catalogue.EXECUTION_CENSUS.name
_LIST = catalogue.LIST_METRIC.name
_VALUE = catalogue.LIST_METRIC.get_field("value").name
_STEP = catalogue.LIST_METRIC.get_field("step").name
_EXECUTION_ID = catalogue.EXECUTION_ID
_SUMMARIZED = frozenset(catalogue.SUMMARIZED)
_CENSUSED = frozenset(catalogue.CENSUSED)
_START = catalogue.EXECUTION.name
_SUMMARY_TAGS = (catalogue.ENVIRONMENT, _EXECUTION_ID, catalogue.METRIC, catalogue.SOURCE)
"""A summary row's tags: what a reader selects and joins by. Two series of one metric of
one execution (two workers, two deployments) keep their own rows in memory and are
written as rows of one series, told apart by their timestamps as generations are."""

# A summary's state: [time of the point that opened it, row time, count, first, last, sum,
# min, max, last value, step_lo, step_hi, ordered]; a census's: [opened, row time, count,
# first, last, pipeline, worker].
OPENED, ROW_NS, COUNT, FIRST, LAST = range(5)
SUM, MIN, MAX, LAST_VALUE, STEP_LO, STEP_HI, ORDERED = range(5, 12)
PIPELINE, WORKER = 5, 6

Key = tuple[str, tuple[tuple[str, str], ...]]  # measurement (summary or census), tags


class Staged(NamedTuple):
    """A batch's rows: every row to write (by key and generation), the open ones, and the
    executions whose start the batch holds."""

    rows: dict[tuple[Key, int], list]
    current: dict[Key, list]
    started: dict[tuple[str, str], None]


class SummaryAccumulator:
    """Keeps the open summaries and census rows and stages their new rows per batch."""

    def __init__(self, max_open: int = 100_000, rng: random.Random | None = None) -> None:
        self._open: dict[Key, list] = {}
        self._started: dict[tuple[str, str], None] = {}  # (environment, id), oldest first
        self._touched: set[Key] = set()
        self._max_open = max_open
        self._rng = rng or random.Random()

    def stage(self, points: Sequence[Point], after: Staged | None = None) -> Staged:
        """The rows a batch changes, each cumulative (what was open plus the batch).

        ``after`` is a batch staged but not committed yet (being written): this batch
        is staged as if it were (see :meth:`TierAccumulator.stage`).
        """
        return self.stage_runs(split(points), after)

    def stage_runs(self, runs: Runs, after: Staged | None = None) -> Staged:
        """:meth:`stage` of a batch already split into runs (:func:`~.runs.split`): a
        plain run of values outside any execution is passed over whole."""
        staged = Staged({}, {}, {})
        started, seen = self._started, staged.started
        pending = after.started if after is not None else {}
        opened = after.current if after is not None else {}
        # (id(tags), measurement) -> census and summary keys: a series' points share a tags
        # object, and the points hold theirs, so an id stays theirs for the whole loop
        keys: dict[tuple[int, str], tuple[Key, Key]] = {}
        for run, plain in runs:
            if (
                plain is not None
                and plain.measurement in _CENSUSED
                and not run[0].tags.get(_EXECUTION_ID)
            ):
                continue
            self._stage_points(run, staged, started, seen, pending, opened, keys)
        return staged

    def _stage_points(
        self,
        points: Sequence[Point],
        staged: Staged,
        started: Mapping[tuple[str, str], object],
        seen: dict[tuple[str, str], None],
        pending: Mapping[tuple[str, str], object],
        opened: dict[Key, list],
        keys: dict[tuple[int, str], tuple[Key, Key]],
    ) -> None:
        for measurement, tags, fields, t in points:
            if measurement not in _CENSUSED:
                if measurement == _START and tags.get(_EXECUTION_ID):
                    seen[tags.get(catalogue.ENVIRONMENT, ""), tags[_EXECUTION_ID]] = None
                continue
            known = keys.get((id(tags), measurement))
            if known is None:
                execution_id = tags.get(_EXECUTION_ID)
                if not execution_id:
                    continue
                env = (catalogue.ENVIRONMENT, tags.get(catalogue.ENVIRONMENT, ""))
                series = (*sorted(tags.items()), (catalogue.SOURCE, measurement))
                known = (_CENSUS, (env, (_EXECUTION_ID, execution_id))), (_SUMMARY, series)
                keys[id(tags), measurement] = known
            if measurement in _SUMMARIZED:
                self._summarize(staged, opened, measurement, known[1], fields, t)
            key = known[0]
            started_as = key[1][0][1], key[1][1][1]
            if started_as in seen or started_as in started or started_as in pending:
                continue
            census = self._row(staged, opened, key, t)
            if census is None:
                census = self._new(staged, key, t, [0, t, t, "", ""])
            census[COUNT] += 1
            census[FIRST] = min(census[FIRST], t)
            census[LAST] = max(census[LAST], t)
            if not census[PIPELINE]:
                census[PIPELINE] = tags.get(catalogue.PIPELINE, "")
            if not census[WORKER]:
                census[WORKER] = tags.get(catalogue.WORKER, "")

    def _summarize(
        self,
        staged: Staged,
        opened: dict[Key, list],
        measurement: str,
        key: Key,
        fields: Mapping,
        t: int,
    ) -> None:
        value = float(fields[_VALUE])
        step = int(fields[_STEP]) if measurement == _LIST else t
        row = self._row(staged, opened, key, t)
        if row is None:
            self._new(staged, key, t, [1, t, t, value, value, value, value, step, step, 1])
            return
        row[COUNT] += 1
        row[FIRST] = min(row[FIRST], t)
        row[SUM] += value
        row[MIN] = min(row[MIN], value)
        row[MAX] = max(row[MAX], value)
        if measurement == _LIST:
            row[LAST] = max(row[LAST], t)
            if step <= row[STEP_HI]:
                row[ORDERED] = 0
                row[STEP_LO] = min(row[STEP_LO], step)
            if step >= row[STEP_HI]:
                row[STEP_HI], row[LAST_VALUE] = step, value
        elif t >= row[LAST]:  # a simple metric's last value: the latest time (later write wins)
            row[LAST], row[LAST_VALUE] = t, value

    def _row(self, staged: Staged, opened: dict[Key, list], key: Key, t: int) -> list | None:
        """The open row of ``key`` that a point at ``t`` joins (staged as a copy; ``opened``
        holds rows of a batch staged before, not committed yet); None when it opens a new
        one."""
        row = staged.current.get(key)
        if row is None:
            row = opened.get(key) or self._open.get(key)
            if row is None or t < row[OPENED] - SLACK_NS:
                return None
            row = staged.current[key] = staged.rows[key, row[ROW_NS]] = list(row)
        return row if t >= row[OPENED] - SLACK_NS else None

    def _new(self, staged: Staged, key: Key, t: int, state: list) -> list:
        """A new generation of ``key`` from a point at ``t`` (a row staged before it is still
        written)."""
        row = [t, t + self._rng.randrange(OFFSET_NS), *state]
        staged.current[key] = staged.rows[key, row[ROW_NS]] = row
        return row

    def points(self, staged: Staged) -> list[Point]:
        """The rows a store writes for a staged batch (the timestamp tells the generation)."""
        out = []
        stats = catalogue.SERIES_SUMMARY.fields[0].name
        for ((measurement, tags), _), row in staged.rows.items():
            all_tags = dict(tags)  # (a summary's source comes last: it wins)
            if measurement == _SUMMARY:
                all_tags = {k: all_tags[k] for k in _SUMMARY_TAGS if k in all_tags}
                keys = catalogue.SUMMARY_STATS
                if all_tags[catalogue.SOURCE] != _LIST:  # no steps: a simple metric
                    keys = keys[:7]
            else:
                keys = catalogue.CENSUS_STATS
            values = dict(zip(keys, map(_finite, row[COUNT:]), strict=False))
            text = json.dumps(values, separators=(",", ":"), allow_nan=False)
            out.append(Point(measurement, all_tags, {stats: text}, row[ROW_NS]))
        return out

    def commit(self, staged: Staged) -> None:
        """Make a written batch part of the open rows (at most ``max_open`` kept)."""
        self._open.update(staged.current)
        self._touched.update(staged.current)
        self._started.update(staged.started)
        if len(self._started) > self._max_open:  # the oldest go: counted again if seen
            for key in list(self._started)[: len(self._started) - self._max_open]:
                del self._started[key]
        excess = len(self._open) - self._max_open
        if excess > 0:  # the oldest opened go first; their next point opens a new generation
            for key in list(self._open)[:excess]:
                del self._open[key]

    def forget_idle(self) -> int:
        """Close the rows no batch touched since the last call; returns how many."""
        idle = len(self._open) - len(self._touched & self._open.keys())
        self._open = {k: v for k, v in self._open.items() if k in self._touched}
        self._touched = set()
        return idle

    @property
    def open_rows(self) -> int:
        """How many rows are held in memory (bounded by ``max_open``)."""
        return len(self._open)


def _finite(value: object) -> object:
    """A stat as JSON can hold it: a sum past the largest float (values near 1e308 added up)
    saturates at it, rather than failing the whole batch (JSON has no infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return math.copysign(sys.float_info.max, value) if value == value else 0.0
    return value
