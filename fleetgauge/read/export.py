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

import bisect
import contextlib
import csv
import errno
import heapq
import io
import itertools
import json
import operator
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from fleetgauge import catalogue
from fleetgauge.catalogue import Family, Measurement, Point
from fleetgauge.stores import StoreReader
from fleetgauge.stores.base import RowBlock, RowReader, Where
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
"""Rows between two calls of an export's progress callback (from a store that answers
rows in blocks, :class:`~fleetgauge.stores.base.RowBlock`: a block's rows)."""
CHUNK_CHARS = 64 * 1024
"""A streamed export hands out its text once this much is waiting (checked every 1024 rows)."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = re.compile('[,"\r\n]')  # what makes csv.writer quote a cell (QUOTE_MINIMAL)
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


def _quoted(text: str) -> str:
    """A text cell as ``csv.writer`` writes it (minimal quoting), formulas neutralised."""
    text = neutralize(text)
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


class _LineWriter:
    """Turns points into CSV lines of a layout, byte for byte what ``csv.writer`` writes for
    :meth:`Layout.header`'s cells.

    The cells around the fields (measurement, tags, ``other_tags``) are the same for every
    point of a series, so they are formatted once per series; the fields go through one
    ``%`` template per set of field names, and a time shared by consecutive rows is
    formatted once. Most of an export's columns are empty for any one point: none of them
    costs anything per row. Points come as :class:`Point` (:meth:`line`) or, from a store
    that has them, as its own rows (:meth:`block_lines`), which saves building a Point each.
    """

    _MAX_CACHED = 4096

    def __init__(self, lay: Layout) -> None:
        self._lay = lay
        self._tag_at = {t: i for i, t in enumerate(lay.tag_columns)}
        self._field_at = {f: i for i, f in enumerate(lay.field_columns)}
        self._types = lay.field_types
        self._heads: dict[int, tuple[object, str, str, str]] = {}  # by the tags' identity
        self._by_value: dict[tuple, tuple[str, str]] = {}  # by their items
        self._bodies: dict[tuple[str, ...], tuple[str, Callable, tuple | None]] = {}
        self._time_ns: int | None = None
        self._time = ""

    def line(self, p: Point) -> str:
        """The CSV line of one point, line end included."""
        t = p.time_ns
        if t != self._time_ns:
            self._time_ns, self._time = t, format_time_ns(t)
        tags = p.tags
        head = self._heads.get(id(tags))
        if head is None or head[0] is not tags or head[1] != p.measurement:
            key = (p.measurement, *tags.items())
            around = self._by_value.get(key)
            if around is None:
                around = self._by_value[key] = self._around(p.measurement, tags)
            head = (tags, p.measurement, *around)
            if len(self._heads) >= self._MAX_CACHED:
                self._heads.clear()
                self._by_value.clear()
            self._heads[id(tags)] = head
        fields = p.fields
        body = self._bodies.get(tuple(fields))
        if body is None:
            body = self._body(tuple(fields))
        template, values, converters = body
        raw = values(fields)
        if converters is None:
            cells = tuple(map(float, raw))
        else:
            cells = tuple(map(operator.call, converters, raw))
        return self._time + head[2] + template % cells + head[3]

    def block_lines(
        self, measurement: str, index: int, blocks: Iterable[RowBlock]
    ) -> Iterator[list[tuple[int, int, str]]]:
        """``(time, index, line)`` of each point in ``blocks`` (:class:`RowBlock`), in order,
        as one list per block."""
        heads: dict[tuple[tuple[str, ...], tuple[str, ...]], dict] = {}
        last_t, time_text = None, ""
        for block in blocks:
            out: list[tuple[int, int, str]] = []
            add = out.append
            columns = block.columns
            names = sorted((columns[i] for i in block.fields), key=self._field_position)
            if not names:
                continue
            at = [columns.index(n) for n in names]
            fields_of = operator.itemgetter(*at) if len(at) > 1 else _one(operator.itemgetter(*at))
            template, _, converters = self._body(tuple(names))
            tag_names = [columns[i] for i in block.tags]
            tags_of = operator.itemgetter(*block.tags) if block.tags else (lambda row: ())
            single_tag = len(block.tags) == 1
            # per series: the whole line but its time, as one template (the cells around the
            # fields are fixed text in it), so a row is one formatting and one concatenation
            known = heads.setdefault((tuple(tag_names), tuple(names)), {})
            decode = block.decode
            for row in block.rows:
                key = tags_of(row)
                series = known.get(key)
                if series is None:
                    raw = (key,) if single_tag else key
                    tags = {k: decode(v) for k, v in zip(tag_names, raw, strict=True) if v}
                    before, after = self._around(measurement, tags)
                    whole = before.replace("%", "%%") + template + after.replace("%", "%%")
                    series = (before, after, whole)
                    if len(known) >= self._MAX_CACHED:
                        known.clear()
                    known[key] = series
                t = row[0]
                if t != last_t:
                    last_t, time_text = t, format_time_ns(t)
                values = fields_of(row)
                try:  # a missing field (None, "") fails float(): no check on the way
                    if converters is None:
                        add((t, index, time_text + series[2] % tuple(map(float, values))))
                        continue
                    if None in values or "" in values:
                        raise ValueError("a field is missing")
                    cells = tuple(map(operator.call, converters, values))
                    add((t, index, time_text + series[2] % cells))
                    continue
                except (TypeError, ValueError):
                    pass
                present = [(n, v) for n, v in zip(names, values, strict=True) if v or v == 0]
                if not present:
                    continue
                cut_template, _, cut_converters = self._body(tuple(n for n, _ in present))
                cells = tuple(v for _, v in present)
                if cut_converters is None:
                    body = cut_template % tuple(map(float, cells))
                else:
                    body = cut_template % tuple(map(operator.call, cut_converters, cells))
                add((t, index, time_text + series[0] + body + series[1]))
            if out:
                yield out

    def _field_position(self, name: str) -> int:
        at = self._field_at.get(name)
        if at is None:
            raise ValueError(f"field {name!r} is not a column of this export")
        return at

    def _around(self, measurement: str, tags: Mapping[str, str]) -> tuple[str, str]:
        """The cells before the fields (measurement, tags) and after them (other tags)."""
        lay = self._lay
        cells = [""] * len(lay.tag_columns)
        other: dict[str, str] = {}
        for k, v in tags.items():
            at = self._tag_at.get(k)
            if at is None:
                other[k] = v
            else:
                cells[at] = _quoted(v)
        if lay.measurement_column:
            cells.insert(0, _quoted(measurement))
        before = "".join("," + c for c in cells)
        rest = _quoted(json.dumps(other, ensure_ascii=False, sort_keys=True)) if other else ""
        return before, "," + rest + LINE_END

    def _body(self, names: tuple[str, ...]) -> tuple[str, Callable, tuple | None]:
        """The field cells' template for points with these field names, their getter from a
        fields mapping, and their converters (None: all floats)."""
        body = self._bodies.get(names)
        if body is not None:
            return body
        ordered = sorted(names, key=self._field_position)
        present = set(names)
        template = "".join(",%s" if f in present else "," for f in self._lay.field_columns)
        getter = operator.itemgetter(*ordered) if ordered else (lambda fields: ())
        types = [self._types[f] for f in ordered]
        converters = None
        if any(t is not float for t in types):
            converters = tuple(_quoted if t is str else t for t in types)
        body = (template, getter if len(ordered) != 1 else _one(getter), converters)
        if len(self._bodies) >= self._MAX_CACHED:
            self._bodies.clear()
        self._bodies[names] = body
        return body


def _one(get: Callable) -> Callable:
    """An ``itemgetter`` of one name that still returns a tuple."""
    return lambda fields: (get(fields),)


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
        _indexed(i, store.stream_points(m.name, start_ns, end_ns, where))
        for i, m in enumerate(lay.measurements)
    ]
    # (time, measurement's index) decides: two items of one stream are never compared
    for _, _, point in heapq.merge(*streams):
        yield point


def _indexed(index: int, points: Iterator[Point]) -> Iterator[tuple[int, int, Point]]:
    # a function, not a generator expression in the loop: that would read ``i`` when it
    # runs, the last index for every stream (measurements at one time came out by name)
    for p in points:
        yield p.time_ns, index, p


def _csv_chunks(
    store: StoreReader, lay: Layout, start_ns: int, end_ns: int, where: Where | None
) -> Iterator[list[str]]:
    """The CSV lines of the layout's points in [start, end), in the order of
    :func:`merged_points`, in lists of many; from the store's own rows where it has them
    (:class:`RowReader`), which saves building a :class:`Point` per row."""
    writer = _LineWriter(lay)
    if not isinstance(store, RowReader):
        lines = map(writer.line, merged_points(store, lay, start_ns, end_ns, where))
        while chunk := list(itertools.islice(lines, PROGRESS_EVERY)):
            yield chunk
        return
    streams = [
        writer.block_lines(m.name, i, store.stream_rows(m.name, start_ns, end_ns, where))
        for i, m in enumerate(lay.measurements)
    ]
    for block in streams[0] if len(streams) == 1 else _merged_blocks(streams):
        yield [text for _, _, text in block]


def _merged_blocks(streams: list[Iterator[list[tuple]]]) -> Iterator[list[tuple]]:
    """Blocks of ``(time, index, ...)`` items (each stream in order, no block empty) merged
    into one order by time, then index.

    Round by round, every item earlier than the earliest last item of the open streams'
    blocks at hand goes out, sorted (a C sort of a few sorted runs), and each stream whose
    last item set that bound reads its next block. Per item that is a fraction of
    ``heapq.merge``'s cost, and at most a block per stream is held.
    """
    buffers: list[list[tuple]] = []
    iterators: list[Iterator[list[tuple]] | None] = []
    for stream in streams:
        first = next(stream, None)
        buffers.append(first or [])
        iterators.append(stream if first else None)
    while live := [j for j, it in enumerate(iterators) if it is not None]:
        bound = min(buffers[j][-1][0] for j in live)
        out: list[tuple] = []
        for j, buffer in enumerate(buffers):
            cut = bisect.bisect_left(buffer, bound, key=_FIRST)
            if cut:
                out.extend(buffer[:cut])
                buffers[j] = buffer[cut:]
        if out:
            out.sort(key=_TIME_AND_INDEX)
            yield out
        for j in live:
            if buffers[j][-1][0] == bound:
                more = next(iterators[j], None)  # type: ignore[arg-type]
                if more:
                    buffers[j] = buffers[j] + more
                else:
                    iterators[j] = None
    rest = [item for buffer in buffers for item in buffer]
    if rest:
        rest.sort(key=_TIME_AND_INDEX)
        yield rest


_FIRST = operator.itemgetter(0)
_TIME_AND_INDEX = operator.itemgetter(0, 1)


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
    called with the rows written so far: once before the first row, after every
    :data:`PROGRESS_EVERY` rows (or every block of rows the store answers), and once at
    the end.
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
    rows, lines, size = 0, [], 0
    if progress is not None:
        progress(0)
    for chunk in _csv_chunks(store, lay, start_ns, end_ns, where):
        lines.extend(chunk)
        rows += len(chunk)
        if progress is not None:
            progress(rows)
        size += sum(map(len, chunk))
        if size >= CHUNK_CHARS:
            yield "".join(lines)
            lines, size = [], 0
    if lines:
        yield "".join(lines)
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
