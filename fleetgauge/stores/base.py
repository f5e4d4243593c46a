"""The store interface: the writer the agent uses, the reader the dashboard and SDK use.

Both backends (``sqlite.py``, ``influxdb.py``) implement both halves and pass one
contract suite; code takes the half it needs, so the agent's delivery never
reads and a page never writes. Bucketed reads are planned in ``planning.py`` and
their answers (``Buckets``) defined and merged in ``buckets.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from fleetgauge.catalogue import Point
from fleetgauge.stores.buckets import Buckets, Grid

__all__ = [
    "RowBlock",
    "RowReader",
    "Store",
    "StoreReader",
    "StoreWriter",
    "StoreError",
    "StoreUnavailable",
    "StoreRejected",
    "Where",
]

Where = Mapping[str, Sequence[str]]
"""Tag filter: a point matches when, for every key, its tag value is one of the values
(``""`` among them: also a point without that tag, as InfluxQL has it)."""


class StoreError(Exception):
    """A store operation failed; ``status`` is the HTTP status of a server store's answer
    (None when there was none)."""

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StoreUnavailable(StoreError):
    """The store cannot be reached or failed (down, 5xx, timeout, locked): retry later."""


class StoreRejected(StoreError):
    """The store refused the data itself (4xx): retrying the same data cannot succeed."""


class StoreWriter(Protocol):
    """What the agent needs: write batches (the rollup tiers follow), apply retention."""

    url: str

    def write(self, points: Sequence[Point], validated: bool = False) -> None:
        """Write one batch of points and update the rollup tiers; all or nothing.

        Raises InvalidPoint for a point that breaks the data model (nothing is
        written), StoreUnavailable when the store may accept it later, and
        StoreRejected when the store refused the data. ``validated`` skips the
        catalogue check for points the caller has just checked itself.
        """

    def delete_before(self, cutoff_ns: int) -> int:
        """Delete raw points and rollups older than ``cutoff_ns``; returns rows deleted."""

    def forget_idle(self) -> None:
        """Drop per-series write caches of the series not written since the last call.

        Called by the agent's writer every ``push_series_idle``, so memory taken
        by series that came and went (process ids, request ids in tags) is
        given back; the next write of such a series costs a lookup, nothing more.
        """

    def close(self) -> None:
        """Release connections; the store object is unusable afterwards."""


class StoreReader(Protocol):
    """What the dashboard, the read API and the export need: listings, buckets, raw points."""

    url: str
    concurrent_reads: bool
    """True when reads from several threads on this one store run at the same time
    (InfluxDB: one HTTP request each), so a page reading several measurements
    reads them at once; False when they would only queue (SQLite: one connection)."""

    def check(self) -> None:
        """Make sure reads can work (reachable, credentials accepted, database present);
        StoreError saying what is wrong in words otherwise. Commands call it at start-up."""

    def tag_values(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        measurements: Sequence[str],
        where: Where | None = None,
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> list[str]:
        """Sorted values of tag ``key`` on points of ``measurements`` in [start, end).

        ``fields`` may name, per measurement, the fields whose points are enough to count
        (what a reader draws): a store that pays per field counted (InfluxDB) counts only
        those; one that finds any point at once (SQLite) may count every field."""

    def read_buckets(
        self,
        measurement: str,
        fields: Sequence[str],
        start_ns: int,
        end_ns: int,
        max_points: int,
        where: Where | None = None,
        group_by: Sequence[str] = (),
        level: str | None = None,
        spread: bool = True,
    ) -> Buckets:
        """Count, mean, min and max per bucket of each field, one curve per group-by tags.

        The plan comes from :func:`~fleetgauge.stores.planning.plan_read`; ``level``
        forces the source (``"raw"`` or a tier name whose width divides the planned
        step) so a tier answer can be compared with a raw scan of the same buckets.
        Without ``spread`` a store may leave the minimum and maximum unread and give the
        mean in their place (a reader that ranks or averages: half the columns to send).
        """

    def read_grid(
        self,
        measurement: str,
        fields: Sequence[str],
        start_ns: int,
        end_ns: int,
        max_points: int,
        where: Where | None = None,
        group_by: Sequence[str] = (),
        level: str | None = None,
    ) -> Grid:
        """The buckets of :meth:`read_buckets` as matrices of counts and sums (a row per
        group, a column per bucket): what judging and ranking a fleet needs, read without
        building a curve per group."""

    def stream_points(
        self,
        measurement: str,
        start_ns: int,
        end_ns: int,
        where: Where | None = None,
    ) -> Iterator[Point]:
        """Raw points in [start, end) in time order, fetched in chunks (memory stays flat)."""

    def close(self) -> None:
        """Release connections; the store object is unusable afterwards."""


class RowBlock(NamedTuple):
    """Raw points of one measurement as rows, the way a store answers them, for a reader
    that turns many points into text (the export) without building a :class:`Point` each.

    Every row is ``[time_ns, value per column...]``; ``tags`` and ``fields`` are the
    indexes (in a row) of the tag and field columns, ``columns`` names them. A tag value
    is as stored: ``decode`` gives it back, and an empty or ``None`` one means the point
    lacks the tag. A field value is ``None`` or ``""`` when the point lacks the field, and
    is a JSON number where the catalogue says float (``50`` for ``50.0``). A row whose
    fields are all absent is no point.
    """

    columns: Sequence[str]
    tags: tuple[int, ...]
    fields: tuple[int, ...]
    rows: Sequence[Sequence]
    decode: Callable[[str], str]


@runtime_checkable
class RowReader(Protocol):
    """A store that can hand out raw points as :class:`RowBlock` (InfluxDB: its answers'
    own rows), cheaper than :meth:`StoreReader.stream_points` for many points."""

    def stream_rows(
        self, measurement: str, start_ns: int, end_ns: int, where: Where | None = None
    ) -> Iterator[RowBlock]:
        """The points of :meth:`StoreReader.stream_points`, in the same order, as blocks."""


class Store(StoreWriter, StoreReader, Protocol):
    """A whole store, as both backends are; one contract suite holds them to it."""
