"""CSV export: raw points streamed from any store into CSV, row by row, in constant memory.

One header row (even when nothing matches), ISO-8601 UTC times, one column per
tag of the catalogue and per field; tags outside the catalogue go as JSON in
``other_tags``. Text cells that a spreadsheet would run as a formula (starting
with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with
``'`` (OWASP CSV injection); numbers are written as numbers, so ``-1.5`` in a
number column stays ``-1.5``.

Lines end in CRLF, as RFC 4180 asks: Python's ``csv`` module quotes a cell
holding CR or LF only when that character is in the line terminator, so with a
bare LF a tag value holding a CR would split its row in two.

The CLI (``fleetgauge export``) and the query SDK (``fleetgauge.read.query``) both use
this module: one writer, one set of columns. Points are merged across
measurements in time order from the stores' own streaming reads, and rows go
straight to the output, so memory does not grow with the number of rows.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import heapq
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from fleetgauge import catalogue
from fleetgauge.catalogue import Family, Measurement, Point
from fleetgauge.stores import StoreReader
from fleetgauge.stores.base import Where
from fleetgauge.timeutil import format_time_ns

__all__ = [
    "KINDS",
    "Layout",
    "layout",
    "merged_points",
    "export_csv",
    "iter_csv",
    "export_file",
    "atomic_text_file",
    "iter_zip",
    "export_zip_file",
    "neutralize",
    "ProgressLine",
    "PROGRESS_EVERY",
    "LINE_END",
]

KINDS: dict[str, tuple[Measurement, ...]] = {
    "resources": catalogue.RESOURCE_MEASUREMENTS,
    "metrics": (catalogue.PIPELINE_METRIC, catalogue.LIST_METRIC),
    "events": (catalogue.EVENT,),
    "logs": (catalogue.LOG,),
}
"""What ``fleetgauge export KIND`` exports: the measurements behind each kind."""

LINE_END = "\r\n"
"""Line terminator of the CSV (RFC 4180); see the module docstring."""

PROGRESS_EVERY = 1024
"""Rows between two calls of an export's progress callback."""
CHUNK_CHARS = 64 * 1024
"""A streamed export hands out its text once this much is waiting (checked every 1024 rows)."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_TIME, _MEASUREMENT, _OTHER_TAGS = "time", "measurement", "other_tags"


def neutralize(text: str) -> str:
    """A text cell that no spreadsheet runs as a formula."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@dataclass(frozen=True)
class Layout:
    """The columns of one export: the measurements read and the columns they fill."""

    measurements: tuple[Measurement, ...]
    tag_columns: tuple[str, ...]
    field_columns: tuple[str, ...]
    measurement_column: bool

    @property
    def field_types(self) -> dict[str, type]:
        """The catalogue type of each field column, so every store gives 1.0 for a float 1."""
        types: dict[str, type] = {}
        for m in self.measurements:
            for f in m.fields:
                types.setdefault(f.name, f.type)
        return types

    @property
    def header(self) -> list[str]:
        """Column names, in order: time, [measurement], tags, fields, other_tags."""
        lead = [_TIME, _MEASUREMENT] if self.measurement_column else [_TIME]
        return [*lead, *self.tag_columns, *self.field_columns, _OTHER_TAGS]

    def other_tags(self, point: Point) -> dict[str, str]:
        """Tags of ``point`` that have no column of their own."""
        known = self.tag_columns
        return {k: v for k, v in point.tags.items() if k not in known}


class _RowWriter:
    """Turns points into CSV rows of a layout; the per-row work is per value present."""

    def __init__(self, lay: Layout) -> None:
        header = lay.header
        self._blank = [""] * len(header)
        self._measurement = 1 if lay.measurement_column else None
        self._tag_at = {t: header.index(t) for t in lay.tag_columns}
        self._field_at = {f: header.index(f) for f in lay.field_columns}
        self._convert = {
            name: neutralize if type_ is str else type_ for name, type_ in lay.field_types.items()
        }
        self._other_at = len(header) - 1

    def row(self, p: Point) -> list[object]:
        """The cells of one point: formulas neutralised in text, numbers of their catalogue type."""
        row = self._blank.copy()
        row[0] = format_time_ns(p.time_ns)
        if self._measurement is not None:
            row[1] = p.measurement
        other = None
        tag_at = self._tag_at
        for k, v in p.tags.items():
            at = tag_at.get(k)
            if at is not None:
                row[at] = "'" + v if v.startswith(_FORMULA_STARTS) else v
            elif other is None:
                other = {k: v}
            else:
                other[k] = v
        field_at, convert = self._field_at, self._convert
        for k, v in p.fields.items():
            row[field_at[k]] = convert[k](v)
        if other:
            row[self._other_at] = neutralize(json.dumps(other, ensure_ascii=False, sort_keys=True))
        return row


def _tag_columns(measurements: Sequence[Measurement]) -> tuple[str, ...]:
    family = measurements[0].family
    if family in (Family.PIPELINE, Family.LIST):
        return catalogue.PIPELINE_TAGS
    if family is Family.EVENT:
        return catalogue.EVENT_TAGS
    if family is Family.LOG:
        return catalogue.LOG_TAGS
    tags: list[str] = []
    for m in measurements:
        tags.extend(t for t in m.required_tags if t not in tags)
    if any(m in (catalogue.GPU_PROCESS, catalogue.PROCESS_MEASUREMENT) for m in measurements):
        tags.extend(t for t in catalogue.ATTRIBUTION_TAGS if t not in tags)
    return tuple(tags)


def layout(kind: str, only: Sequence[str] | None = None) -> Layout:
    """Columns of export ``kind``, optionally only for the measurements named in ``only``.

    Kinds that hold several measurements keep a ``measurement`` column even when
    ``only`` names one, so a kind's rows always have the same shape. Raises
    ValueError for an unknown kind, or a name in ``only`` that is not one of the
    kind's measurements.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown export kind {kind!r} (known: {', '.join(KINDS)})")
    measurements = KINDS[kind]
    if only is not None:
        names = [m.name for m in measurements]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise ValueError(
                f"unknown {kind} measurement {unknown[0]!r} (known: {', '.join(names)})"
            )
        measurements = tuple(m for m in measurements if m.name in only)
    fields: list[str] = []
    for m in measurements:
        fields.extend(f for f in m.field_names if f not in fields)
    tags = _tag_columns(measurements) if measurements else ()
    return Layout(measurements, tags, tuple(fields), len(KINDS[kind]) > 1)


def merged_points(
    store: StoreReader, lay: Layout, start_ns: int, end_ns: int, where: Where | None = None
) -> Iterator[Point]:
    """Raw points of the layout's measurements in [start, end), in time order, streamed."""
    if len(lay.measurements) == 1:
        yield from store.stream_points(lay.measurements[0].name, start_ns, end_ns, where)
        return
    streams = [
        ((p.time_ns, i, p) for p in store.stream_points(m.name, start_ns, end_ns, where))
        for i, m in enumerate(lay.measurements)
    ]
    for _, _, point in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield point


def export_csv(
    store: StoreReader,
    kind: str,
    start_ns: int,
    end_ns: int,
    out: TextIO,
    where: Where | None = None,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the ``kind`` rows in [start, end) to ``out`` as CSV; returns the number of rows.

    ``only`` restricts the measurements (see :func:`layout`); ``progress`` is
    called with the rows written so far: once before the first row, every
    :data:`PROGRESS_EVERY` rows, and once at the end.
    """
    rows = [0]

    def count(n: int) -> None:
        rows[0] = n
        if progress is not None:
            progress(n)

    for chunk in iter_csv(store, kind, start_ns, end_ns, where, only=only, progress=count):
        out.write(chunk)
    return rows[0]


def iter_csv(
    store: StoreReader,
    kind: str,
    start_ns: int,
    end_ns: int,
    where: Where | None = None,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """The CSV of :func:`export_csv` as text chunks of about 64 KiB, for a streamed response.

    The first chunk is the header row alone, so a reader sees the columns at
    once; ``progress`` is called as in :func:`export_csv`.
    """
    lay = layout(kind, only)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=LINE_END)
    writer.writerow(lay.header)
    yield buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    cells = _RowWriter(lay).row
    rows = 0
    if progress is not None:
        progress(0)
    for p in merged_points(store, lay, start_ns, end_ns, where):
        writer.writerow(cells(p))
        rows += 1
        if not rows % PROGRESS_EVERY:
            if progress is not None:
                progress(rows)
            if buffer.tell() >= CHUNK_CHARS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
    if progress is not None:
        progress(rows)


def export_file(
    store: StoreReader,
    kind: str,
    start_ns: int,
    end_ns: int,
    path: str | os.PathLike[str],
    where: Where | None = None,
    *,
    only: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """As :func:`export_csv`, into a file that appears only once the export is complete
    (see :func:`atomic_text_file`)."""
    with atomic_text_file(path) as out:
        return export_csv(store, kind, start_ns, end_ns, out, where, only=only, progress=progress)


class _Chunks:
    """A write-only sink for :class:`zipfile.ZipFile` that hands out what was written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> Iterator[bytes]:
        """What was written since the last take, if anything (as zero or one chunk)."""
        if self.size:
            yield b"".join(self.parts)
        self.parts, self.size = [], 0


def iter_zip(
    store: StoreReader,
    kind: str,
    start_ns: int,
    end_ns: int,
    where: Where | None = None,
    *,
    only: Sequence[str] | None = None,
) -> Iterator[bytes]:
    """A zip of one CSV per measurement of ``kind`` (``cpu.csv``, ``memory.csv``, ...),
    each with only its own tag and field columns, as byte chunks of about 64 KiB:
    streamed, so memory stays flat whatever the size. Each CSV is what
    ``only=[measurement]`` gives :func:`iter_csv`."""
    sink = _Chunks()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for m in layout(kind, only).measurements:
            with archive.open(f"{m.name}.csv", "w", force_zip64=True) as member:
                for chunk in iter_csv(store, kind, start_ns, end_ns, where, only=[m.name]):
                    member.write(chunk.encode("utf-8"))
                    if sink.size >= CHUNK_CHARS:
                        yield from sink.take()
            yield from sink.take()
    yield from sink.take()


def export_zip_file(
    store: StoreReader,
    kind: str,
    start_ns: int,
    end_ns: int,
    path: str | os.PathLike[str],
    where: Where | None = None,
    *,
    only: Sequence[str] | None = None,
) -> int:
    """:func:`iter_zip` into a file that appears only once complete; returns its bytes."""
    size = 0
    with atomic_file(path, binary=True) as out:
        for chunk in iter_zip(store, kind, start_ns, end_ns, where, only=only):
            out.write(chunk)  # type: ignore[arg-type]
            size += len(chunk)
    return size


def atomic_text_file(path: str | os.PathLike[str]) -> contextlib.AbstractContextManager[TextIO]:
    """A CSV text file that appears at ``path`` only when the block ends without error
    (see :func:`atomic_file`)."""
    return atomic_file(path)  # type: ignore[return-value]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], binary: bool = False) -> Iterator[TextIO | BinaryIO]:
    """A file (text, or bytes when ``binary``) that appears at ``path`` only when the
    block ends without error.

    Text goes to ``PATH.partial``, renamed to ``PATH`` at the end; on any error the
    partial file is removed and ``PATH`` is left as it was. A directory as
    ``PATH`` raises IsADirectoryError before the block runs.
    """
    target = Path(path)
    if not target.name or target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    partial = target.with_name(target.name + ".partial")
    try:
        if binary:
            with open(partial, "wb") as raw:
                yield raw
        else:
            with open(partial, "w", newline="", encoding="utf-8") as out:
                yield out
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class ProgressLine:
    """A ``rows written, seconds elapsed`` line redrawn in place, a few times a second.

    Meant for a terminal only (the caller checks ``isatty``): it is drawn with
    ``\\r`` and wiped by :meth:`close`, so the next message starts on a clean line.
    """

    def __init__(
        self,
        stream: TextIO,
        label: str,
        interval_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._interval_s = interval_s
        self._clock = clock
        self._start = clock()
        self._next = self._start
        self._width = 0

    def __call__(self, rows: int) -> None:
        """Redraw with ``rows`` written, unless the last draw was under ``interval_s`` ago."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval_s
        text = f"{self._label}: {rows:,} rows written, {now - self._start:.1f} s elapsed"
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Wipe the line, if one was drawn."""
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
