"""What a view shows, kept in the URL's query string so it can be bookmarked and shared.

Every control of the site writes its value into the query string and every page
is drawn from it, so the browser's back button, a reload and a pasted link all
show the same view. Parsing is lenient: a value that does not parse falls back
to its default and the problem is reported (the page shows it), never a crash.

Keys: ``env`` (environment, absent for all), ``range`` (a quick range such as
``24h``, or ``custom`` with ``start`` and ``end`` in ISO 8601 UTC), ``refresh``
(``off``, ``10s``, ``1m``), and per page ``worker`` (repeated), ``deployment``
(repeated), ``pipeline`` and ``metric``; the Executions page adds ``status``,
``mode`` (how list metrics are reduced), ``filter`` (the filter box: the grammar of
:mod:`fleetgauge.read.filters`), ``col`` (repeated: chosen columns),
``run`` (repeated: executions compared), ``x`` (``step`` or ``time``), ``axis``
(repeated: the inputs of the parallel-coordinates chart) and ``by`` (its metric column);
the Pipeline
metrics page adds ``window`` (the rolling window of a 0/1 metric's rate: ``auto``, ``1m``,
``5m``, ``15m``, ``1h``, ``6h``, ``24h``); the Resources page adds ``top`` (how many workers
a fleet-size graph draws as their own curves, 1 to ``MAX_TOP``, default ``DEFAULT_TOP``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlencode

from fleetgauge.dashboard.data import resources
from fleetgauge.read.executions import MODES
from fleetgauge.timeutil import NS_PER_S, format_time, parse_time

__all__ = [
    "QUICK_RANGES",
    "REFRESH_MS",
    "CUSTOM",
    "DEFAULT_RANGE",
    "ViewState",
    "parse_search",
    "from_query",
    "to_search",
]

QUICK_RANGES: dict[str, int] = {
    "15m": 15 * 60 * NS_PER_S,
    "1h": 3600 * NS_PER_S,
    "6h": 6 * 3600 * NS_PER_S,
    "24h": 24 * 3600 * NS_PER_S,
    "7d": 7 * 86400 * NS_PER_S,
    "30d": 30 * 86400 * NS_PER_S,
}
"""Quick ranges offered by every page: the last N, ending at the moment of the read."""
QUICK_LABELS = {"15m": "15 min", "1h": "1 h", "6h": "6 h", "24h": "24 h", "7d": "7 days"}
QUICK_LABELS["30d"] = "30 days"
CUSTOM = "custom"
EARLIEST_VIEW_NS = 0
"""A custom range starts at 1970-01-01 at the earliest (no monitoring data is older)."""
LATEST_VIEW_NS = parse_time("2200-01-01T00:00:00Z")
"""...and ends by 2200: nearer the stores' limits (1677, 2262) the bucket arithmetic overflows."""
DEFAULT_RANGE = "24h"
REFRESH_MS: dict[str, int | None] = {"off": None, "10s": 10_000, "1m": 60_000}
"""Auto-refresh choices and their period in milliseconds."""
REFRESH_LABELS = {"off": "off", "10s": "10 s", "1m": "1 min"}

_LIST_KEYS = ("worker", "deployment", "col", "run", "axis")
_TEXT_KEYS = ("env", "pipeline", "metric", "status", "filter", "by")
RATE_WINDOWS: dict[str, int] = {
    "1m": 60 * NS_PER_S,
    "5m": 5 * 60 * NS_PER_S,
    "15m": 15 * 60 * NS_PER_S,
    "1h": 3600 * NS_PER_S,
    "6h": 6 * 3600 * NS_PER_S,
    "24h": 24 * 3600 * NS_PER_S,
}
"""Rolling windows a 0/1 metric's rate can be drawn over; ``auto`` picks one for the range."""
RATE_LABELS = {"auto": "auto", "1m": "1 min", "5m": "5 min", "15m": "15 min", "1h": "1 h"}
RATE_LABELS |= {"6h": "6 h", "24h": "24 h"}
DEFAULT_TOP, MAX_TOP = resources.DEFAULT_TOP, resources.MOST_DRAWN
X_AXES = ("step", "time")
"""What the comparison charts plot values against."""


@dataclass(frozen=True)
class ViewState:
    """One view of the site: shared controls plus the page's own selections."""

    env: str | None = None
    range: str = DEFAULT_RANGE
    start: str | None = None
    end: str | None = None
    refresh: str = "off"
    worker: tuple[str, ...] = ()
    deployment: tuple[str, ...] = ()
    pipeline: str | None = None
    metric: str | None = None
    status: str | None = None
    mode: str = "last"
    col: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    x: str = "step"
    rate_window: str = "auto"  # the URL's ``window``
    top: int = DEFAULT_TOP
    filter: str | None = None
    axis: tuple[str, ...] = ()
    by: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    def window(self, now_ns: int) -> tuple[int, int]:
        """The [start, end) instants in ns: a quick range ends at ``now_ns``."""
        if self.range == CUSTOM and self.start and self.end:
            return parse_time(self.start), parse_time(self.end)
        return now_ns - QUICK_RANGES[self.range], now_ns

    def with_(self, **changes: object) -> ViewState:
        """A copy with some values changed (problems are not carried over)."""
        return replace(self, problems=(), **changes)


def parse_search(search: str | None) -> dict[str, list[str]]:
    """The query string (with or without its ``?``) as lists of values per key."""
    return parse_qs((search or "").lstrip("?"), keep_blank_values=False)


def _first(values: object) -> str | None:
    if isinstance(values, list | tuple):
        return str(values[0]) if values else None
    return None if values is None else str(values)


def _many(values: object) -> tuple[str, ...]:
    if isinstance(values, list | tuple):
        return tuple(str(v) for v in values if str(v))
    return (str(values),) if values else ()


def from_query(query: Mapping[str, object]) -> ViewState:
    """A view from query parameters (lists or single values); bad values become defaults."""
    problems = []
    text = {k: _first(query.get(k)) or None for k in _TEXT_KEYS}
    lists = {k: _many(query.get(k)) for k in _LIST_KEYS}
    rng = _first(query.get("range")) or DEFAULT_RANGE
    start, end = _first(query.get("start")), _first(query.get("end"))
    if rng == CUSTOM:
        try:
            start_ns, end_ns = parse_time(start or ""), parse_time(end or "")
            if start_ns >= end_ns:
                raise ValueError(f"start {start} is not before end {end}")
            if start_ns < EARLIEST_VIEW_NS or end_ns > LATEST_VIEW_NS:
                problems.append(
                    f"custom range clamped to {_iso(EARLIEST_VIEW_NS)} to {_iso(LATEST_VIEW_NS)}:"
                    f" {start} to {end} reaches past what the pages draw"
                )
                start_ns = min(max(start_ns, EARLIEST_VIEW_NS), LATEST_VIEW_NS - NS_PER_S)
                end_ns = max(min(end_ns, LATEST_VIEW_NS), start_ns + NS_PER_S)
            start, end = _iso(start_ns), _iso(end_ns)
        except ValueError as e:
            problems.append(f"custom range ignored: {e}")
            rng, start, end = DEFAULT_RANGE, None, None
    elif rng not in QUICK_RANGES:
        problems.append(f"unknown range {rng!r}: showing the last {QUICK_LABELS[DEFAULT_RANGE]}")
        rng, start, end = DEFAULT_RANGE, None, None
    else:
        start = end = None
    refresh = _first(query.get("refresh")) or "off"
    if refresh not in REFRESH_MS:
        problems.append(f"unknown refresh {refresh!r}: auto-refresh is off")
        refresh = "off"
    mode = _first(query.get("mode")) or "last"
    if mode not in MODES:
        problems.append(f"unknown mode {mode!r}: showing the last value")
        mode = "last"
    x = _first(query.get("x")) or "step"
    if x not in X_AXES:
        problems.append(f"unknown x axis {x!r}: plotting against step")
        x = "step"
    window = _first(query.get("window")) or "auto"
    if window not in RATE_LABELS:
        problems.append(f"unknown rate window {window!r}: choosing one for the range")
        window = "auto"
    top = _first(query.get("top")) or str(DEFAULT_TOP)
    try:
        top_n = int(top)
        if not 1 <= top_n <= MAX_TOP:
            raise ValueError
    except ValueError:
        problems.append(f"top {top!r} is not a number from 1 to {MAX_TOP}: drawing {DEFAULT_TOP}")
        top_n = DEFAULT_TOP
    return ViewState(
        text["env"],
        rng,
        start,
        end,
        refresh,
        lists["worker"],
        lists["deployment"],
        text["pipeline"],
        text["metric"],
        text["status"],
        mode,
        lists["col"],
        lists["run"],
        x,
        window,
        top_n,
        text["filter"],
        lists["axis"],
        text["by"],
        tuple(problems),
    )


def _iso(time_ns: int) -> str:
    """UTC time as the URL and the inputs show it: seconds precision, Z suffix."""
    return format_time(time_ns - time_ns % NS_PER_S)


def to_search(state: ViewState) -> str:
    """The query string (with its ``?``, or empty) of a view; defaults are left out."""
    pairs: list[tuple[str, str]] = []
    if state.env:
        pairs.append(("env", state.env))
    if state.range != DEFAULT_RANGE:
        pairs.append(("range", state.range))
    if state.range == CUSTOM and state.start and state.end:
        pairs += [("start", state.start), ("end", state.end)]
    if state.refresh != "off":
        pairs.append(("refresh", state.refresh))
    pairs += [("worker", w) for w in state.worker]
    pairs += [("deployment", d) for d in state.deployment]
    if state.pipeline:
        pairs.append(("pipeline", state.pipeline))
    if state.metric:
        pairs.append(("metric", state.metric))
    if state.status:
        pairs.append(("status", state.status))
    if state.mode != "last":
        pairs.append(("mode", state.mode))
    if state.filter:
        pairs.append(("filter", state.filter))
    pairs += [("axis", a) for a in state.axis]
    if state.by:
        pairs.append(("by", state.by))
    pairs += [("col", c) for c in state.col]
    pairs += [("run", r) for r in state.run]
    if state.x != "step":
        pairs.append(("x", state.x))
    if state.rate_window != "auto":
        pairs.append(("window", state.rate_window))
    if state.top != DEFAULT_TOP:
        pairs.append(("top", str(state.top)))
    return "?" + urlencode(pairs) if pairs else ""
