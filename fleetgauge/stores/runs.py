"""A batch of points as runs of one series, read a column at a time.

Pushed values arrive as long runs of one series: the points of a run share one
tags mapping, one measurement and one float field. What a store does per point
(a line of line protocol, a rollup sum, a census count) can then be done per
run, over its columns, in C loops (``map``, ``min``, ``sum``) instead of a
Python loop per point. Anything else (a run of mixed measurements or fields, a
short run) is taken point by point by the caller, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from fleetgauge.catalogue import Point

__all__ = ["Column", "Runs", "column", "split", "series_runs", "MIN_RUN"]

MIN_RUN = 16
"""Shorter runs are not worth the column checks: their caller loops over the points."""

_MEASUREMENT, _TAGS, _FIELDS, _TIME = (itemgetter(i) for i in range(4))
_ONE = {1}
_FLOAT = {float}


class Column(NamedTuple):
    """A plain run: its measurement, its one field's name, and that field's values and
    times, in the run's order (every value a float)."""

    measurement: str
    field: str
    values: list[float]
    times: list[int]


def series_runs(points: Sequence[Point]) -> Iterator[list[Point]]:
    """The points in order, as runs of consecutive points with equal tags.

    Points of one series share their tags object, and equality is checked by
    identity first, so the grouping costs a C call per point."""
    for _, run in groupby(points, _TAGS):
        yield list(run)


def column(run: list[Point]) -> Column | None:
    """The run as a :class:`Column` when it is plain and long enough, else None."""
    if len(run) < MIN_RUN:
        return None
    measurements = set(map(_MEASUREMENT, run))
    fields = list(map(_FIELDS, run))
    if len(measurements) != 1 or set(map(len, fields)) != _ONE:
        return None
    (name,) = fields[0]
    try:  # every mapping has one key: it is the first one's in each
        values = list(map(itemgetter(name), fields))
    except KeyError:
        return None
    if set(map(type, values)) != _FLOAT:
        return None
    (measurement,) = measurements
    return Column(measurement, name, values, list(map(_TIME, run)))


Runs = list[tuple[list[Point], Column | None]]
"""A batch split by :func:`split`: each run with its column when it is plain."""


def split(points: Sequence[Point]) -> Runs:
    """The batch as runs (:func:`series_runs`), each with its :func:`column`; a writer
    splits a batch once and hands the runs to each thing it does per point."""
    return [(run, column(run)) for run in series_runs(points)]
