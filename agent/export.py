"""CSV export: raw points streamed from any store into a CSV file, row by row.

One header row (even when nothing matches), ISO-8601 UTC times, one column per
tag of the catalogue and per field; tags outside the catalogue go as JSON in
``other_tags``. Text cells that a spreadsheet would run as a formula (starting
with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with
``'`` (OWASP CSV injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import heapq
import json
from collections.abc import Iterator, Sequence
from typing import TextIO

from agent import schema
from agent.schema import Measurement, Point
from agent.stores import Store
from agent.stores.base import Where
from agent.timeutil import format_time

__all__ = ["KINDS", "export_csv", "neutralize", "columns_for"]

KINDS: dict[str, tuple[Measurement, ...]] = {
    "resources": schema.RESOURCE_MEASUREMENTS,
    "metrics": (schema.PIPELINE_METRIC,),
}
"""What ``fleetgauge export KIND`` exports: the measurements behind each kind."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(text: str) -> str:
    """A text cell that no spreadsheet runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def columns_for(measurements: Sequence[Measurement]) -> tuple[list[str], list[str]]:
    """Tag columns and field columns for a set of measurements, catalogue order, no repeats."""
    tags: list[str] = []
    fields: list[str] = []
    for m in measurements:
        for t in m.required_tags:
            if t not in tags:
                tags.append(t)
        for f in m.field_names:
            if f not in fields:
                fields.append(f)
    if measurements and measurements[0].family is not schema.Family.RESOURCE:
        tags = list(schema.PIPELINE_TAGS)
    return tags, fields


def _merged(
    store: Store, ms: Sequence[Measurement], start_ns: int, end_ns: int, where: Where | None
) -> Iterator[Point]:
    streams = [
        ((p.time_ns, i, p) for p in store.stream_points(m.name, start_ns, end_ns, where))
        for i, m in enumerate(ms)
    ]
    for _, _, point in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield point


def _cell(value: object) -> object:
    return neutralize(value) if isinstance(value, str) else value


def export_csv(
    store: Store,
    kind: str,
    start_ns: int,
    end_ns: int,
    out: TextIO,
    where: Where | None = None,
) -> int:
    """Write the ``kind`` rows in [start, end) to ``out`` as CSV; returns the number of rows."""
    measurements = KINDS[kind]
    tag_cols, field_cols = columns_for(measurements)
    writer = csv.writer(out, lineterminator="\n")
    multi = len(measurements) > 1
    writer.writerow(
        ["time", *(["measurement"] if multi else []), *tag_cols, *field_cols, "other_tags"]
    )
    known = set(tag_cols)
    rows = 0
    for p in _merged(store, measurements, start_ns, end_ns, where):
        other = {k: v for k, v in p.tags.items() if k not in known}
        writer.writerow(
            [
                format_time(p.time_ns),
                *([p.measurement] if multi else []),
                *(_cell(p.tags.get(t, "")) for t in tag_cols),
                *(_cell(p.fields.get(f, "")) for f in field_cols),
                _cell(json.dumps(other, ensure_ascii=False, sort_keys=True)) if other else "",
            ]
        )
        rows += 1
    return rows
