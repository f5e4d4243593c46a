"""CSV downloads: ``/download/KIND.csv?start=..&end=..&environment=..&worker=..``, and
``/download/KIND.zip?..``: one CSV per measurement of the kind, in a zip.

The rows are the raw points of the selection at full resolution (not the
bucketed view a chart draws), streamed through the same writer as
``fleetgauge export`` (``fleetgauge.read.export.iter_csv``): formula cells neutralised,
memory flat whatever the size. The file name says what and when.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import flask

from fleetgauge import catalogue
from fleetgauge.dashboard.site import current
from fleetgauge.read import executions as ex
from fleetgauge.read import filters
from fleetgauge.read.arguments import to_time_ns
from fleetgauge.read.export import KINDS, iter_csv, iter_zip
from fleetgauge.stores import StoreError, StoreReader
from fleetgauge.timeutil import format_time

__all__ = ["install", "FILTERS", "file_name"]

FILTERS = {
    "environment": catalogue.ENVIRONMENT,
    "worker": catalogue.WORKER,
    "deployment": catalogue.DEPLOYMENT,
    "pipeline": catalogue.PIPELINE,
    "metric": catalogue.METRIC,
    "execution_id": catalogue.EXECUTION_ID,
    "level": catalogue.LEVEL,
}
"""Query parameters of a download and the tags they filter on (each repeatable)."""
EXECUTIONS = "executions"
EXECUTION_PARAMS = (
    "start",
    "end",
    "environment",
    "pipeline",
    "status",
    "column",
    "mode",
    "filter",
)
"""Query parameters of ``/download/executions.csv``: ``column`` (repeatable, in order) as
``fleetgauge export executions --columns`` names them; ``mode`` reduces list metrics;
``filter`` is ``--filter``'s grammar."""
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(kind: str, start_ns: int, end_ns: int, where: dict[str, list[str]]) -> str:
    """``fleetgauge-resources-prod-20261122T1000Z-20261123T1000Z.csv``: what and when."""

    def stamp(ns: int) -> str:
        return format_time(ns - ns % 60_000_000_000)[:16].replace("-", "").replace(":", "") + "Z"

    parts = ["fleetgauge", kind]
    for key in (catalogue.ENVIRONMENT, catalogue.DEPLOYMENT, catalogue.METRIC):
        values = where.get(key, [])
        if len(values) == 1:
            parts.append(_SAFE.sub("_", values[0])[:40])
    parts += [stamp(start_ns), stamp(end_ns)]
    return "-".join(parts) + ".csv"


def _bad(message: str) -> flask.Response:
    return flask.Response(message + "\n", status=400, mimetype="text/plain")


def _window(args) -> tuple[int, int]:
    start_ns = to_time_ns(args.get("start"), "start")
    end_ns = to_time_ns(args.get("end"), "end")
    if start_ns is None or end_ns is None:
        raise ValueError("start and end are required (ISO 8601, UTC unless an offset is given)")
    if start_ns >= end_ns:
        raise ValueError(f"start {format_time(start_ns)} is not before end {format_time(end_ns)}")
    return start_ns, end_ns


def _executions_csv(args, store: StoreReader, start_ns: int, end_ns: int) -> Iterator[str]:
    """One row per execution started in the window, the chosen columns (or every one)."""
    columns = [ex.check_column(c) for c in args.getlist("column")]
    mode = args.get("mode", "last")
    records = filters.read_matching(
        store,
        start_ns,
        end_ns,
        args.get("filter"),
        args.getlist("environment") or None,
        args.getlist("pipeline") or None,
        args.getlist("status") or None,
    )
    return ex.iter_executions_csv(records, columns or ex.columns_of(records, mode))


def _download(kind: str, file_type: str = "csv") -> flask.Response:
    if file_type == "zip" and kind == EXECUTIONS:
        return flask.Response(
            "executions are one table: use /download/executions.csv\n", 404, mimetype="text/plain"
        )
    if kind not in KINDS and kind != EXECUTIONS:
        known = ", ".join([*KINDS, EXECUTIONS])
        return flask.Response(f"unknown export {kind!r}: use {known}\n", 404, mimetype="text/plain")
    args = flask.request.args
    allowed = EXECUTION_PARAMS if kind == EXECUTIONS else ("start", "end", *FILTERS)
    unknown = set(args) - set(allowed)
    if unknown:
        return _bad(f"unknown parameter(s) {sorted(unknown)}: use {', '.join(allowed)}")
    try:
        start_ns, end_ns = _window(args)
    except (TypeError, ValueError) as e:
        return _bad(str(e))
    where = {tag: args.getlist(param) for param, tag in FILTERS.items() if args.getlist(param)}
    borrowed = contextlib.ExitStack()
    try:
        store = borrowed.enter_context(current().pool.store())
        if kind == EXECUTIONS:
            rows = _executions_csv(args, store, start_ns, end_ns)
        elif file_type == "zip":
            rows = iter_zip(store, kind, start_ns, end_ns, where or None)
        else:
            rows = iter_csv(store, kind, start_ns, end_ns, where or None)
        # The header, then the first rows: a store that cannot be read fails here, as a 503,
        # rather than in the middle of a response that has already said 200.
        first = next(rows) + next(rows, b"" if file_type == "zip" else "")
    except StoreError as e:
        borrowed.__exit__(type(e), e, e.__traceback__)  # the failed store is closed, not kept
        return flask.Response(f"the store could not be read: {e}\n", 503, mimetype="text/plain")
    except ValueError as e:
        borrowed.close()
        return _bad(str(e))

    def stream() -> Iterator[str]:
        with borrowed:
            yield first
            yield from rows

    name = file_name(kind, start_ns, end_ns, where).removesuffix(".csv") + "." + file_type
    return flask.Response(
        flask.stream_with_context(stream()),
        mimetype="application/zip" if file_type == "zip" else "text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def install(server: flask.Flask) -> None:
    """Add the download route to the dashboard's Flask server."""
    server.add_url_rule("/download/<kind>.csv", "download", _download)
    server.add_url_rule("/download/<kind>.zip", "download_zip", lambda kind: _download(kind, "zip"))
