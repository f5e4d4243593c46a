"""Text that goes to InfluxDB: line protocol for writes, quoted InfluxQL for reads.

Line protocol cannot carry every tag value: a newline ends the line, and a
backslash before a comma, space or ``=`` (or at the end of a value) is read as
an escape, while ``\\\\`` is kept as two characters. So tag keys and values go
through a small reversible code before line-protocol escaping: ``%``, ``\\``
and control characters are written as ``%XX`` (their code point in hex), and
everything else, unicode included, is stored as is. Reads decode ``%XX`` back,
so every name round-trips exactly. In Grafana such a value shows in its coded
form (``C:%5Cdata`` for ``C:\\data``).

InfluxQL: identifiers are always double-quoted and values always single-quoted
string literals with ``\\`` and the quote escaped, so a name such as
``a' OR '1'='1`` or ``/.*/`` is only ever compared as data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from fleetgauge.catalogue import Point
from fleetgauge.stores.runs import Runs, split

__all__ = [
    "encode_name",
    "decode_name",
    "forget_heads",
    "line",
    "lines",
    "run_lines",
    "influxql_string",
    "influxql_ident",
]

_CODE = {c: f"%{c:02X}" for c in [*range(0x20), 0x7F, ord("%"), ord("\\")]}
_LP_KEY = {ord(","): "\\,", ord("="): "\\=", ord(" "): "\\ "}
_TAG_TABLE = str.maketrans({**_CODE, **_LP_KEY})
_NAME_TABLE = str.maketrans(_CODE)
_MEASUREMENT_TABLE = str.maketrans({ord(","): "\\,", ord(" "): "\\ "})
_FIELD_STRING_TABLE = str.maketrans({ord('"'): '\\"', ord("\\"): "\\\\"})
_DECODE = re.compile(r"%([0-9A-F]{2})")


def encode_name(value: str) -> str:
    """The form a tag key or value is stored in (before line-protocol escaping)."""
    return value.translate(_NAME_TABLE)


def decode_name(stored: str) -> str:
    """The original tag key or value from its stored form."""
    if "%" not in stored:
        return stored
    return _DECODE.sub(lambda m: chr(int(m.group(1), 16)), stored)


@lru_cache(maxsize=65536)
def _tag(value: str) -> str:
    return value.translate(_TAG_TABLE)


def _field_value(value: float | int | str, is_int: bool) -> str:
    if type(value) is float and not is_int:  # the common case first
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_FIELD_STRING_TABLE) + '"'
    if is_int:
        return f"{int(value)}i"
    return repr(float(value))


_HEADS: dict[tuple[object, ...], str] = {}
_MAX_HEADS = 100_000


def _head(point: Point) -> str:
    key = (point.measurement, *point.tags.items())
    head = _HEADS.get(key)
    if head is None:
        tags = "".join(f",{_tag(k)}={_tag(v)}" for k, v in sorted(point.tags.items()))
        head = point.measurement.translate(_MEASUREMENT_TABLE) + tags + " "
        if len(_HEADS) >= _MAX_HEADS:
            _HEADS.clear()
        _HEADS[key] = head
    return head


def forget_heads() -> None:
    """Forget every cached line head (they are formatted again on their next use)."""
    _HEADS.clear()


def line(point: Point, int_fields: frozenset[str] = frozenset()) -> str:
    """One line of line protocol, tags sorted by key, nanosecond timestamp.

    The measurement-and-tags part is cached per series (bounded): a store
    writes the same few series over and over.
    """
    fields = ",".join(
        [f"{_tag(k)}={_field_value(v, k in int_fields)}" for k, v in point.fields.items()]
    )
    return f"{_head(point)}{fields} {point.time_ns}"


def lines(points: Sequence[Point], int_fields: Mapping[str, frozenset[str]]) -> list[str]:
    """``line(p, int_fields[p.measurement])`` for every point, in order."""
    return run_lines(split(points), int_fields)


def run_lines(runs: Runs, int_fields: Mapping[str, frozenset[str]]) -> list[str]:
    """:func:`lines` of a batch already split into runs (:func:`~fleetgauge.stores.runs.split`).

    A batch of pushed values is mostly runs of one series: a plain run (one
    measurement, one float field) is written from its columns with one head. Any
    other point reuses the text before its value from the last point that had the
    same tags object, measurement and field, without hashing the tag set again.
    """
    out: list[str] = []
    prefixes: dict[int, tuple[str, str, str]] = {}  # id(tags) -> measurement, field, prefix
    for run, plain in runs:
        if plain is not None and plain.field not in int_fields[plain.measurement]:
            prefix = f"{_head(run[0])}{_tag(plain.field)}="
            out += [f"{prefix}{v!r} {t}" for v, t in zip(plain.values, plain.times, strict=True)]
        else:
            _point_lines(run, int_fields, prefixes, out.append)
    return out


def _point_lines(
    points: Sequence[Point],
    int_fields: Mapping[str, frozenset[str]],
    prefixes: dict[int, tuple[str, str, str]],
    append: Callable[[str], None],
) -> None:
    for p in points:  # the points hold their tags, so an id stays theirs for the whole batch
        measurement, tags, fields, t = p
        if len(fields) == 1:
            ((k, v),) = fields.items()
            if type(v) is float:
                known = prefixes.get(id(tags))
                if known is not None and known[0] == measurement and known[1] == k:
                    append(f"{known[2]}{v!r} {t}")
                    continue
                if k not in int_fields[measurement]:
                    prefix = f"{_head(p)}{_tag(k)}="
                    prefixes[id(tags)] = (measurement, k, prefix)
                    append(f"{prefix}{v!r} {t}")
                    continue
        append(line(p, int_fields[measurement]))


def influxql_string(value: str) -> str:
    """A single-quoted InfluxQL string literal for the stored form of ``value``."""
    stored = encode_name(value)
    return "'" + stored.replace("\\", "\\\\").replace("'", "\\'") + "'"


def influxql_ident(name: str) -> str:
    """A double-quoted InfluxQL identifier for the stored form of ``name``."""
    stored = encode_name(name)
    return '"' + stored.replace("\\", "\\\\").replace('"', '\\"') + '"'
