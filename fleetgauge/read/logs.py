"""Log lines read back: one execution's (or a pipeline's, a deployment's), newest or oldest
first, by level, text and time window.

Lines are ``catalogue.LOG`` points (see :mod:`fleetgauge.sdk.logs` and the agent's
``/v1/logs``). A read keeps at most ``limit`` lines in memory whatever the window
holds (a heap of the newest or oldest), so a page or an SDK call costs one pass
over the matching points, bounded in memory.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fleetgauge import catalogue
from fleetgauge.stores import StoreReader
from fleetgauge.timeutil import format_time

__all__ = ["LogLine", "read_logs", "levels_from", "MAX_LIMIT", "ORDERS"]

MAX_LIMIT = 100_000
"""Most lines one read returns."""
ORDERS = ("newest", "oldest")
MESSAGE = catalogue.LOG.get_field("message").name
CUT = catalogue.LOG.get_field("cut_bytes").name


@dataclass(frozen=True)
class LogLine:
    """One line: when, how grave, from which logger, what, and whose."""

    time_ns: int
    level: str
    logger: str
    message: str
    cut_bytes: int
    tags: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (time as ISO 8601 UTC text)."""
        return {
            "time": format_time(self.time_ns),
            "level": self.level,
            "logger": self.logger,
            "message": self.message,
            "cut_bytes": self.cut_bytes,
            "worker": self.tags.get(catalogue.WORKER, ""),
            "pipeline": self.tags.get(catalogue.PIPELINE),
            "deployment": self.tags.get(catalogue.DEPLOYMENT),
            "execution_id": self.tags.get(catalogue.EXECUTION_ID),
        }


def levels_from(level: str | None) -> list[str] | None:
    """The levels at ``level`` and above (None: every level); ValueError naming the known."""
    if level is None:
        return None
    name = str(level).upper()
    if name not in catalogue.LOG_LEVELS:
        known = ", ".join(catalogue.LOG_LEVELS)
        raise ValueError(f"unknown level {level!r} (known: {known})")
    return list(catalogue.LOG_LEVELS[catalogue.LOG_LEVELS.index(name) :])


def _lines(
    store: StoreReader, start_ns: int, end_ns: int, where: dict[str, list[str]], search: str | None
) -> Iterator[LogLine]:
    wanted = search.casefold() if search else None
    for p in store.stream_points(catalogue.LOG.name, start_ns, end_ns, where):
        message = str(p.fields.get(MESSAGE, ""))
        if wanted is not None and wanted not in message.casefold():
            continue
        yield LogLine(
            p.time_ns,
            p.tags.get(catalogue.LEVEL, "INFO"),
            p.tags.get(catalogue.LOGGER, ""),
            message,
            int(p.fields.get(CUT) or 0),
            p.tags,
        )


def read_logs(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    *,
    execution_id: str | None = None,
    pipeline: Sequence[str] | None = None,
    deployment: Sequence[str] | None = None,
    environment: Sequence[str] | None = None,
    level: str | None = None,
    search: str | None = None,
    limit: int = 1000,
    order: str = "newest",
) -> list[LogLine]:
    """Lines in [start, end) of ``execution_id`` (and the other filters), ``level`` and
    graver, whose message holds ``search`` (any case): the ``limit`` newest, newest first,
    or the ``limit`` oldest, oldest first (``order``)."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    where: dict[str, list[str]] = {}
    for key, values in (
        (catalogue.EXECUTION_ID, None if execution_id is None else [execution_id]),
        (catalogue.PIPELINE, pipeline),
        (catalogue.DEPLOYMENT, deployment),
        (catalogue.ENVIRONMENT, environment),
        (catalogue.LEVEL, levels_from(level)),
    ):
        if values is not None:
            where[key] = list(values)
    lines = _lines(store, start_ns, end_ns, where, search)
    pick = heapq.nlargest if order == "newest" else heapq.nsmallest
    return pick(limit, lines, key=lambda line: line.time_ns)
