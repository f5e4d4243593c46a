"""Parsing and formatting of times and durations as users type them.

All times inside fleetgauge are integer nanoseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = [
    "parse_time",
    "parse_duration",
    "format_time",
    "format_time_ms",
    "format_time_ns",
    "format_duration",
    "datetime_to_ns",
    "NS_PER_S",
    "MAX_NS",
    "EARLIEST_NS",
    "LATEST_NS",
]

NS_PER_S = 1_000_000_000
MAX_NS = 2**63 - 1
"""The latest time a store holds (InfluxDB's and a signed 64-bit integer's limit)."""
EARLIEST_NS = -(2**63) + 2
"""Start of an open read window: the earliest time InfluxDB can hold."""
LATEST_NS = 2**63 - 2
"""End of an open read window: the latest time InfluxDB can hold."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d|w)\s*$")
_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
}


def parse_time(text: str) -> int:
    """Parse an ISO-8601 date or date-time (UTC unless it says otherwise) or epoch seconds.

    Raises ValueError with the offending text when it is neither.
    """
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not -(2**63) < seconds * NS_PER_S < 2**63:  # also refuses inf and nan
            raise ValueError(
                f"time {text!r} is outside the times a store can hold (years 1677 to 2262);"
                " epoch times are in seconds"
            )
        return round(seconds * NS_PER_S)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO 8601 such as 2026-11-22T10:00:00Z, or epoch seconds)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    time_ns = datetime_to_ns(parsed)
    if not EARLIEST_NS <= time_ns <= LATEST_NS:
        raise ValueError(
            f"time {text!r} is outside the times a store can hold (years 1677 to 2262)"
        )
    return time_ns


def datetime_to_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch of a timezone-aware datetime, exact to the microsecond."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def parse_duration(text: str) -> int:
    """Parse a duration such as ``30d``, ``12h``, ``90s`` into nanoseconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use a number and one of ns us ms s m h d w)")
    return round(float(match.group(1)) * _UNITS_NS[match.group(2)])


def format_time_ms(time_ns: int) -> str:
    """ISO-8601 UTC text to the millisecond at most, for people (pages, messages)."""
    ms = time_ns // 1_000_000
    return format_time(ms * 1_000_000)


def format_time_ns(time_ns: int) -> str:
    """ISO-8601 UTC text with all nine decimals always, for files read by programs: every
    row of a CSV has the same width of time, and nothing of a nanosecond stamp is lost."""
    seconds, ns = divmod(time_ns, NS_PER_S)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns:09d}Z"


def format_time(time_ns: int) -> str:
    """ISO-8601 UTC text for a nanosecond timestamp, with as many decimals as it needs."""
    seconds, ns = divmod(time_ns, NS_PER_S)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if ns == 0:
        return base + "Z"
    return f"{base}.{ns:09d}".rstrip("0") + "Z"


_DURATION_UNITS = ((86_400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"), (1e-3, "ms"))


def format_duration(seconds: float) -> str:
    """A duration as a person reads it, to three significant digits: ``45 min``,
    ``2.5 h``, ``1.2 s``, ``48 µs``."""
    size = abs(seconds)
    for unit_s, unit in _DURATION_UNITS:
        if size >= unit_s * 0.9995:  # 59.99 s reads as 1 min, not 60 s
            return f"{seconds / unit_s:.3g} {unit}"
    if size == 0:
        return "0 s"
    return f"{seconds * 1e6:.3g} µs"
