"""The arguments every read function takes, checked the same way before a store is opened.

- ``store``: a store URL (``sqlite:///PATH``, ``influxdb+http://...``), opened
  read-only for the call and closed afterwards, or an open store, left open.
  Default: :func:`fleetgauge.stores.default_store_url`.
- times: a ``datetime`` (naive means UTC), a ``date`` (midnight UTC), ISO-8601
  text (UTC unless it has an offset) or epoch seconds; ``None`` leaves that side
  open. A window is [start, end).
- filters: one name or a list of names; ``None`` does not filter, an empty list
  matches nothing.

Bad arguments raise ValueError or TypeError naming the argument.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

from fleetgauge.stores import StoreReader, default_store_url, open_store
from fleetgauge.timeutil import (
    EARLIEST_NS,
    LATEST_NS,
    NS_PER_S,
    datetime_to_ns,
    format_time,
    parse_time,
)

__all__ = [
    "TimeLike",
    "Names",
    "StoreLike",
    "to_time_ns",
    "window",
    "names",
    "where",
    "check_store",
    "with_store",
]

TimeLike = datetime | date | str | int | float | None
"""A time as the functions accept it; see the module docstring."""
Names = str | Iterable[str] | None
"""A filter: one name, several, or None for no filter."""
StoreLike = StoreReader | str | None
"""A store URL, an open store, or None for the default store."""


def to_time_ns(value: TimeLike, what: str = "time") -> int | None:
    """Nanoseconds since the epoch for a time argument; None stays None.

    Raises ValueError for text that is not a time or a time no store can hold
    (outside the years 1677-2262: often nanoseconds given as epoch seconds),
    TypeError for other types.
    """
    if value is None:
        return None
    time_ns = _time_ns(value, what)
    if not EARLIEST_NS <= time_ns <= LATEST_NS:
        raise ValueError(
            f"{what} {value!r} is outside the times a store can hold (years 1677 to 2262);"
            " epoch times are in seconds"
        )
    return time_ns


def _time_ns(value: datetime | date | str | float, what: str) -> int:
    if isinstance(value, datetime):
        return datetime_to_ns(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return datetime_to_ns(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return int(value) * NS_PER_S
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{what}: not a time: {value!r}")
        return round(float(value) * NS_PER_S)
    raise TypeError(
        f"{what} must be a datetime, a date, ISO-8601 text or epoch seconds,"
        f" got {type(value).__name__}"
    )


def window(start: TimeLike, end: TimeLike, names: tuple[str, str]) -> tuple[int, int]:
    start_ns = to_time_ns(start, names[0])
    end_ns = to_time_ns(end, names[1])
    start_ns = EARLIEST_NS if start_ns is None else start_ns
    end_ns = LATEST_NS if end_ns is None else end_ns
    if start_ns >= end_ns:
        raise ValueError(
            f"{names[0]} {format_time(start_ns)} is not before {names[1]} {format_time(end_ns)}"
        )
    return start_ns, end_ns


def names(value: Names, what: str) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if isinstance(values, bytes) or not isinstance(values, Iterable):
        raise TypeError(f"{what} must be a name or a list of names, got {type(value).__name__}")
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise TypeError(f"{what} must hold names (str), got {type(v).__name__} {v!r}")
    return out


def where(*filters: tuple[str, str, Names]) -> dict[str, list[str]]:
    """The store filter from ``(tag, argument name, argument)`` triples; None is no filter."""
    where = {}
    for tag, argument, value in filters:
        found = names(value, argument)
        if found is not None:
            where[tag] = found
    return where


def check_store(store: StoreLike) -> None:
    if store is not None and not isinstance(store, str) and not hasattr(store, "stream_points"):
        raise TypeError(f"store must be a store URL or a Store, got {type(store).__name__}")


def with_store(store: StoreLike, work: Callable[[StoreReader], Any]) -> Any:
    """``work(store)`` on an open store; a store opened here from a URL is closed after."""
    if store is not None and not isinstance(store, str):
        return work(store)
    opened = open_store(store or default_store_url(), create=False)
    try:
        return work(opened)
    finally:
        opened.close()
