"""``fleetgauge export``: raw rows (or one row per execution, or per deployment's usage)
from the store into CSV."""

from __future__ import annotations

import argparse
import csv
import sys
import time

from fleetgauge import catalogue
from fleetgauge.cli.common import add_prices, add_store, fail, prices_of
from fleetgauge.read.arguments import to_time_ns
from fleetgauge.read.executions import (
    METADATA_COLUMNS,
    MODES,
    RESOURCE_COLUMNS,
    check_column,
    columns_of,
    iter_executions_csv,
)
from fleetgauge.read.export import (
    KINDS,
    LINE_END,
    ProgressLine,
    atomic_text_file,
    export_csv,
    export_file,
    export_zip_file,
    layout,
    neutralize,
)
from fleetgauge.read.filters import parse_filter, read_matching
from fleetgauge.read.logs import levels_from
from fleetgauge.read.usage import USAGE_COLUMNS, deployment_usage
from fleetgauge.stores import Store, open_store
from fleetgauge.timeutil import NS_PER_S, format_time

NAME = "export"
EXTRAS = ()
EXECUTIONS = "executions"
USAGE = "usage"
LAYOUTS = ("wide", "per-measurement")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export`` command and its flags."""
    parser = sub.add_parser(
        "export",
        help="stream raw rows from the store into a CSV file",
        description="Stream every raw row in [--start, --end) into CSV: one header row (also"
        " when nothing matches), ISO-8601 UTC times, one column per tag and per field, tags"
        " outside the catalogue as JSON in other_tags. Memory stays flat whatever the number"
        " of rows; on a terminal a progress line shows the rows written so far. Text cells"
        " that a spreadsheet would run as a formula (=, +, -, @, tab, carriage return) are"
        " prefixed with a quote; numbers are written as they are. 'executions' writes one"
        " row per execution started in the window instead (see --columns); 'usage' one row"
        " per deployment: its predictions, the CPU and GPU its processes used and, with"
        " --price or --prices, the cost per 1,000 predictions.",
    )
    parser.add_argument(
        "kind",
        choices=[*KINDS, EXECUTIONS, USAGE],
        help="resources: worker samples (CPU, memory, disk, network, GPU), one row per"
        " measurement and time; metrics: values recorded by deployed models and pipelines"
        " (list metrics too: their step is in the step column); events: named events with"
        " their metadata as JSON; logs: log lines of executions and deployments (level,"
        " logger, message); executions: one row per execution (run of a pipeline)"
        " started in the window, newest first; usage: one row per deployment (predictions,"
        " CPU seconds, GPU seconds, peak GPU memory, cost)",
    )
    add_store(parser)
    parser.add_argument(
        "--start",
        metavar="TIME",
        help="first instant, ISO 8601 (UTC unless an offset is given) or epoch"
        " seconds (default: 24 hours before --end)",
    )
    parser.add_argument(
        "--end", metavar="TIME", help="instant after the last row, same forms (default: now)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default="-",
        help="CSV file to write, '-' for standard output (default: %(default)s);"
        " a file appears only once the export is complete",
    )
    parser.add_argument(
        "--measurement",
        action="append",
        metavar="NAME",
        help="only this measurement (repeatable): its own tag and field columns only, for"
        " example --measurement cpu (resources: "
        + ", ".join(m.name for m in KINDS["resources"])
        + ")",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="wide",
        help="wide: one CSV, a column per field of every measurement (default);"
        " per-measurement: a zip with one CSV per measurement (cpu.csv, memory.csv, ...),"
        " each with its own columns only, to --out FILE.zip",
    )
    parser.add_argument(
        "--environment", action="append", metavar="NAME", help="only this environment (repeatable)"
    )
    parser.add_argument(
        "--worker",
        action="append",
        metavar="NAME",
        help="resources only: only this worker (repeatable)",
    )
    parser.add_argument(
        "--deployment",
        action="append",
        metavar="NAME",
        help="metrics, events, logs and usage only: only this deployment (repeatable)",
    )
    parser.add_argument(
        "--execution-id",
        action="append",
        metavar="ID",
        help="metrics, events and logs only: only rows of this execution (repeatable)",
    )
    parser.add_argument(
        "--level",
        choices=catalogue.LOG_LEVELS,
        help="logs only: only lines of this level and graver",
    )
    add_prices(parser, "usage only: ")
    parser.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="executions and logs only: only executions (log lines) of this pipeline (repeatable)",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=catalogue.SHOWN_STATUSES,
        help="executions only: only executions in this state (repeatable)",
    )
    parser.add_argument(
        "--columns",
        metavar="COLS",
        help="executions only: comma-separated columns, in order: "
        + ", ".join(METADATA_COLUMNS)
        + ", environment, input.NAME, output.NAME, tag.NAME, metric.NAME (last value of a"
        " metric),"
        " list.NAME.MODE (a list metric's last, min, max or mean) and resource.NAME (what"
        " its processes used: "
        + ", ".join(RESOURCE_COLUMNS)
        + "). Default: the metadata, every input, output and tag, every metric, every list"
        " metric reduced"
        " by --mode and the resources",
    )
    parser.add_argument(
        "--filter",
        metavar="FILTER",
        help="executions only: only executions that pass FILTER, for example"
        " 'input.batch_size = 128 and metric.accuracy > 0.9': comparisons (= != < <= > >="
        ", in (...), not in (...), like, ilike) of a column with a value, joined by 'and' and"
        " 'or' with parentheses; text in quotes",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="last",
        help="executions only: how the default columns reduce list metrics (default: %(default)s)",
    )


def _export_filters(args: argparse.Namespace) -> dict[str, list[str]]:
    if args.kind != USAGE and (args.price or args.prices):
        raise ValueError("--price and --prices apply to 'export usage' only")
    if args.kind == USAGE:
        for flag in ("pipeline", "status", "columns", "worker", "measurement", "filter"):
            if getattr(args, flag):
                raise ValueError(f"--{flag} does not apply to 'export usage'")
        if args.execution_id or args.level:
            raise ValueError("--execution-id and --level do not apply to 'export usage'")
        if args.environment and len(args.environment) > 1:
            raise ValueError("'export usage' takes one --environment")
        return {}
    if args.kind != EXECUTIONS:
        for flag in ("status", "columns", "filter"):
            if getattr(args, flag):
                raise ValueError(f"--{flag} applies to 'export executions' only")
        if args.pipeline and args.kind != "logs":
            raise ValueError("--pipeline applies to 'export executions' and 'export logs' only")
        if args.level and args.kind != "logs":
            raise ValueError("--level applies to 'export logs' only")
        if args.execution_id and args.kind == "resources":
            raise ValueError("--execution-id applies to 'export metrics', 'events' and 'logs'")
        if args.measurement:
            layout(args.kind, args.measurement)  # an unknown name: one line naming the known
        if args.layout == "per-measurement" and args.out == "-":
            raise ValueError("--layout per-measurement writes a zip: give --out FILE.zip")
    elif args.worker or args.deployment or args.measurement or args.layout != "wide":
        raise ValueError(
            "--worker, --deployment, --measurement and --layout do not apply to 'export executions'"
        )
    elif args.execution_id or args.level:
        raise ValueError("--execution-id and --level do not apply to 'export executions'")
    if args.filter is not None:
        parse_filter(args.filter)  # a bad filter fails before the store is opened
    where = {}
    if args.environment:
        where["environment"] = args.environment
    if args.worker:
        if args.kind != "resources":
            raise ValueError("--worker applies to 'export resources' only")
        where["worker"] = args.worker
    if args.deployment:
        if args.kind == "resources":
            raise ValueError("--deployment applies to 'export metrics' and 'export events' only")
        where["deployment"] = args.deployment
    if args.execution_id:
        where["execution_id"] = args.execution_id
    if args.kind == "logs" and args.pipeline:
        where["pipeline"] = args.pipeline
    if args.level:
        where["level"] = levels_from(args.level) or []
    return where


def _export_progress(args: argparse.Namespace) -> ProgressLine | None:
    """A progress line on stderr when it is a terminal that the CSV is not going to."""
    if not sys.stderr.isatty() or (args.out == "-" and sys.stdout.isatty()):
        return None
    return ProgressLine(sys.stderr, f"exporting {args.kind}")


def _export_rows(
    args: argparse.Namespace, store: Store, start: int, end: int, where: dict[str, list[str]]
) -> int:
    if args.kind == EXECUTIONS:
        return _export_executions(args, store, start, end)
    if args.kind == USAGE:
        return _export_usage(args, store, start, end)
    if args.layout == "per-measurement":
        export_zip_file(store, args.kind, start, end, args.out, where, only=args.measurement)
        return -1
    only = args.measurement
    progress = _export_progress(args)
    try:
        if args.out == "-":
            return export_csv(
                store, args.kind, start, end, sys.stdout, where, only=only, progress=progress
            )
        return export_file(
            store, args.kind, start, end, args.out, where, only=only, progress=progress
        )
    finally:
        if progress is not None:
            progress.close()


def _export_executions(args: argparse.Namespace, store: Store, start: int, end: int) -> int:
    columns = None
    if args.columns is not None:
        columns = [check_column(c.strip()) for c in args.columns.split(",") if c.strip()]
        if not columns:
            raise ValueError("--columns names no column")
    records = read_matching(
        store, start, end, args.filter, args.environment, args.pipeline, args.status
    )
    columns = columns or columns_of(records, args.mode)
    if args.out == "-":
        for chunk in iter_executions_csv(records, columns):
            sys.stdout.write(chunk)
    else:
        with atomic_text_file(args.out) as out:
            for chunk in iter_executions_csv(records, columns):
                out.write(chunk)
    return len(records)


def _export_usage(args: argparse.Namespace, store: Store, start: int, end: int) -> int:
    prices = prices_of(args)
    environment = args.environment[0] if args.environment else None
    found = deployment_usage(store, start, end, args.deployment, prices, environment)

    def write(out) -> None:  # noqa: ANN001 - a text file
        writer = csv.writer(out, lineterminator=LINE_END)
        writer.writerow(USAGE_COLUMNS)
        for u in found:
            row = u.as_dict()
            writer.writerow(
                "" if row[c] is None else row[c] if c != "deployment" else neutralize(row[c])
                for c in USAGE_COLUMNS
            )

    if args.out == "-":
        write(sys.stdout)
    else:
        with atomic_text_file(args.out) as out:
            write(out)
    return len(found)


def run(args: argparse.Namespace) -> int:
    """Write the CSV; one summary line on stderr."""
    end = to_time_ns(args.end, "--end") if args.end else time.time_ns()
    start = to_time_ns(args.start, "--start") if args.start else end - 86400 * NS_PER_S
    if start >= end:
        raise ValueError(f"--start {format_time(start)} is not before --end {format_time(end)}")
    if not args.out:
        raise ValueError("--out needs a file name, or '-' for standard output")
    where = _export_filters(args)
    store = open_store(args.store, create=False)
    try:
        rows = _export_rows(args, store, start, end, where)
    except OSError as e:
        if args.out == "-":  # a closed pipe: main() stops quietly
            raise
        return fail(f"cannot write {args.out}: {e.strerror or e}")
    finally:
        store.close()
    where_to = "standard output" if args.out == "-" else args.out
    what = f"{rows} rows of {args.kind}"
    if rows < 0:  # a zip: its members say what it holds
        names = [m.name for m in layout(args.kind, args.measurement).measurements]
        what = f"{args.kind} as one CSV per measurement ({', '.join(n + '.csv' for n in names)})"
    print(
        f"{what} from {format_time(start)} to {format_time(end)} written to {where_to}",
        file=sys.stderr,
    )
    return 0
