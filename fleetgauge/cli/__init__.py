"""The ``fleetgauge`` command: argument parsing only; the work is done by the modules it calls."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from fleetgauge import __version__, catalogue
from fleetgauge.read.executions import (
    METADATA_COLUMNS,
    MODES,
    check_column,
    columns_of,
    iter_executions_csv,
    read_executions,
)
from fleetgauge.read.export import KINDS, ProgressLine, atomic_text_file, export_csv, export_file
from fleetgauge.read.query import to_time_ns
from fleetgauge.stores import STORE_ENV, Store, StoreError, default_store_url, open_store
from fleetgauge.timeutil import format_time

__all__ = ["main", "build_parser"]

EXECUTIONS = "executions"

_STORE_HELP = (
    "where the data lives: sqlite:///PATH (embedded, the default; sqlite:////abs/path for an"
    " absolute path, ?retention=30d to delete older rows) or"
    " influxdb+http://HOST:PORT/BUCKET?org=ORG (token from FLEETGAUGE_INFLUX_TOKEN)."
    f" Default: ${STORE_ENV}, else %(default)s"
)


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="URL", default=default_store_url(), help=_STORE_HELP)


def _add_agent_args(parser: argparse.ArgumentParser) -> None:
    from fleetgauge.agent.config import CONFIG_ENV, SETTINGS

    parser.add_argument(
        "--config", metavar="FILE", help=f"TOML settings file (default: ${CONFIG_ENV} if set)"
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings (tokens redacted) as TOML and exit",
    )
    for s in SETTINGS:
        if s.repeat_flag:
            parser.add_argument(
                s.repeat_flag, dest=s.name, action="append", metavar=s.metavar, help=s.help
            )
        elif s.name == "include_loopback":
            parser.add_argument(s.flag, action="store_const", const=True, help=s.help)
        else:
            parser.add_argument(s.flag, metavar=s.metavar, help=s.help)


def _dashboard_resources():  # noqa: ANN202 - imported late: the agent never loads Dash
    from fleetgauge.dashboard.thresholds import RESOURCES

    return RESOURCES


def _add_dashboard_args(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--host",
        default=env("FLEETGAUGE_DASHBOARD_HOST", "127.0.0.1"),
        help="address to listen on (default: %(default)s; any other than loopback needs"
        " --auth-file, FLEETGAUGE_DASHBOARD_AUTH or --insecure)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("FLEETGAUGE_DASHBOARD_PORT", "8050")),
        help="TCP port, 0 for any free one (default: %(default)s)",
    )
    parser.add_argument(
        "--thresholds",
        metavar="FILE",
        default=env("FLEETGAUGE_DASHBOARD_THRESHOLDS"),
        help="TOML file of warning/critical levels per resource and over_share (see below);"
        " default: 80 %% warning and 95 %% critical for every percentage, none for network",
    )
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="RESOURCE=WARN,CRIT",
        help="set one resource's levels, over the file (repeatable): cpu=70,90;"
        " network=100e6,1e9 (bytes/s); an empty side turns that level off: disk=,98",
    )
    parser.add_argument(
        "--over-share",
        type=float,
        metavar="SHARE",
        help="a worker is over a level when it stayed above it for this share of the range"
        " (0 to 1, default 0.25): one spike never counts",
    )
    parser.add_argument(
        "--auth-file",
        metavar="FILE",
        help="users allowed in, one 'user:hash' line each (make a line with --hash-password);"
        " default: FLEETGAUGE_DASHBOARD_AUTH",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback without asking for a password (behind your own proxy)",
    )
    parser.add_argument(
        "--hash-password",
        metavar="USER",
        help="read a password (prompted, or from standard input) and print the 'user:hash'"
        " line for --auth-file, then exit",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface, every flag with its help."""
    parser = argparse.ArgumentParser(
        prog="fleetgauge",
        description="Self-hosted monitoring for the machines that train and serve ML models.",
        epilog="Run 'fleetgauge COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fleetgauge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    agent = sub.add_parser(
        "agent",
        help="per-worker daemon: sample resources, take pushed model metrics, write them to"
        " the store, serve /metrics",
        description="The per-worker daemon. Every --interval it samples CPU, memory, disks,"
        " network, GPUs (NVML) and container limits; on --push-port it takes the values"
        " models record (POST /v1/metrics and /v1/events, or the fleetgauge.sdk module); it writes"
        " the points to the store in batches, keeps them in an on-disk spool while the store"
        " is down and replays them in order, and serves the latest values on /metrics for"
        " Prometheus. SIGTERM or SIGINT flush what is buffered and exit 0.",
        epilog="Every flag can also be set in a TOML file (--config, keys as in"
        " --print-config) or by an environment variable FLEETGAUGE_<FLAG> (for example"
        " FLEETGAUGE_INTERVAL=5, FLEETGAUGE_TAGS=team=ml,rack=b2; the store is"
        " FLEETGAUGE_STORE). Precedence: flag > environment > file > default.",
    )
    _add_agent_args(agent)

    dash = sub.add_parser(
        "dashboard",
        help="the web site: resource cards and graphs, pipeline metrics, CSV downloads",
        description="Serve the Dash monitoring site over the store: a resources page (cards"
        " for workers over their thresholds, one graph per resource with a curve per worker"
        " and one for all of them) and a pipeline-metrics page (every recorded value, a"
        " rolling mean, a summary, events), each with CSV download. It listens on"
        " 127.0.0.1; on any other address it asks for a user and password (basic auth)"
        " unless --insecure is given. SIGTERM or SIGINT stop it.",
        epilog="Thresholds file (TOML): 'over_share = 0.25' and one table per resource, such as"
        " '[gpu] warning = 90 critical = 99'. Resources: "
        + ", ".join(r.key for r in _dashboard_resources())
        + ". Environment: FLEETGAUGE_STORE, FLEETGAUGE_DASHBOARD_HOST,"
        " FLEETGAUGE_DASHBOARD_PORT, FLEETGAUGE_DASHBOARD_THRESHOLDS,"
        " FLEETGAUGE_DASHBOARD_AUTH (user:hash entries).",
    )
    _add_store(dash)
    _add_dashboard_args(dash)

    demo = sub.add_parser(
        "demo",
        help="run a live demo: this machine's agent, a simulated model, a day of demo history"
        " and the dashboard",
        description="Write synthetic history for a few demo workers (one runs hot) and two"
        " deployed models (one drifting worse) into a new store, then run, until Ctrl-C,"
        " the agent on this machine (a sample every second, environment 'demo'), a simulated"
        " model that records a score per prediction for both deployments through the SDK,"
        " and the dashboard on 127.0.0.1. It prints the dashboard's URL; the agent's and the"
        " dashboard's output go to log files in the demo directory it names. Ctrl-C (SIGINT),"
        " SIGTERM or SIGHUP stop everything and exit 0; if the agent or the dashboard exits"
        " by itself the demo stops and exits 1.",
    )
    demo.add_argument(
        "--store",
        metavar="URL",
        help="store to write the demo into (default: a new SQLite file in the demo directory;"
        f" with --seed-only: ${STORE_ENV}, else {default_store_url().replace('%', '%%')})",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=8050,
        help="TCP port of the dashboard, 0 for any free one (default: %(default)s)",
    )
    demo.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="hours of demo history to write, ending now (default: %(default)s)",
    )
    demo.add_argument(
        "--workers",
        type=int,
        default=4,
        help="number of demo workers in the history (default: %(default)s)",
    )
    demo.add_argument(
        "--seed-only",
        action="store_true",
        help="only write the history, say where it is and exit (nothing keeps running)",
    )

    export = sub.add_parser(
        "export",
        help="stream raw rows from the store into a CSV file",
        description="Stream every raw row in [--start, --end) into CSV: one header row (also"
        " when nothing matches), ISO-8601 UTC times, one column per tag and per field, tags"
        " outside the catalogue as JSON in other_tags. Memory stays flat whatever the number"
        " of rows; on a terminal a progress line shows the rows written so far. Text cells"
        " that a spreadsheet would run as a formula (=, +, -, @, tab, carriage return) are"
        " prefixed with a quote; numbers are written as they are. 'executions' writes one"
        " row per execution started in the window instead (see --columns).",
    )
    export.add_argument(
        "kind",
        choices=[*KINDS, EXECUTIONS],
        help="resources: worker samples (CPU, memory, disk, network, GPU), one row per"
        " measurement and time; metrics: values recorded by deployed models and pipelines"
        " (list metrics too: their step is in the step column); events: named events with"
        " their metadata as JSON; executions: one row per execution (run of a pipeline)"
        " started in the window, newest first",
    )
    _add_store(export)
    export.add_argument(
        "--start",
        metavar="TIME",
        help="first instant, ISO 8601 (UTC unless an offset is given) or epoch"
        " seconds (default: 24 hours before --end)",
    )
    export.add_argument(
        "--end", metavar="TIME", help="instant after the last row, same forms (default: now)"
    )
    export.add_argument(
        "--out",
        metavar="FILE",
        default="-",
        help="CSV file to write, '-' for standard output (default: %(default)s);"
        " a file appears only once the export is complete",
    )
    export.add_argument(
        "--environment", action="append", metavar="NAME", help="only this environment (repeatable)"
    )
    export.add_argument(
        "--worker",
        action="append",
        metavar="NAME",
        help="resources only: only this worker (repeatable)",
    )
    export.add_argument(
        "--deployment",
        action="append",
        metavar="NAME",
        help="metrics and events only: only this deployment (repeatable)",
    )
    export.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="executions only: only executions of this pipeline (repeatable)",
    )
    export.add_argument(
        "--status",
        action="append",
        choices=catalogue.EXECUTION_STATUSES,
        help="executions only: only executions in this state (repeatable)",
    )
    export.add_argument(
        "--columns",
        metavar="COLS",
        help="executions only: comma-separated columns, in order: "
        + ", ".join(METADATA_COLUMNS)
        + ", environment, input.NAME, metric.NAME (last value of a metric) and"
        " list.NAME.MODE (a list metric's last, min, max or mean). Default: the metadata,"
        " every input, every metric and every list metric reduced by --mode",
    )
    export.add_argument(
        "--mode",
        choices=MODES,
        default="last",
        help="executions only: how the default columns reduce list metrics (default: %(default)s)",
    )
    return parser


def _fail(message: str, code: int = 1) -> int:
    print(f"fleetgauge: error: {message}", file=sys.stderr)
    return code


def _run_demo(args: argparse.Namespace) -> int:
    if not args.seed_only:
        from fleetgauge.agent.demo.run import DemoSettings, run_demo

        return run_demo(DemoSettings(args.store, args.port, args.hours, args.workers))
    from fleetgauge.agent.demo.seed import seed

    url = args.store or default_store_url()
    store = open_store(url)
    try:
        points = seed(store, time.time_ns(), hours=args.hours, workers=args.workers)
    finally:
        store.close()
    print(f"Demo store ready: {url}")
    print(f"  {points} points: {args.workers} workers and 2 deployments, last {args.hours:g} h")
    print("Export what it holds:")
    print(f"  fleetgauge export resources --store '{url}' --out resources.csv")
    print(f"  fleetgauge export metrics --store '{url}' --out metrics.csv")
    return 0


def _run_dashboard(args: argparse.Namespace) -> int:
    from fleetgauge.dashboard import auth
    from fleetgauge.dashboard.thresholds import load_thresholds

    if args.hash_password is not None:
        password = _read_password()
        print(auth.auth_line(args.hash_password, password))
        return 0
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a TCP port (0 to 65535)")
    thresholds = load_thresholds(args.thresholds, args.threshold, args.over_share)
    users = auth.load_users(args.auth_file)
    auth.check_bind(args.host, users, args.insecure)
    open_store(args.store, create=False).close()  # a wrong URL fails now, not on the first page
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from fleetgauge.dashboard.app import serve
    from fleetgauge.dashboard.site import SiteConfig

    serve(SiteConfig(args.store, args.host, args.port, thresholds, users, args.insecure))
    return 0


def _read_password() -> str:
    import getpass

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise ValueError("empty password")
    return password


def _export_filters(args: argparse.Namespace) -> dict[str, list[str]]:
    if args.kind != EXECUTIONS:
        for flag in ("pipeline", "status", "columns"):
            if getattr(args, flag):
                raise ValueError(f"--{flag} applies to 'export executions' only")
    elif args.worker or args.deployment:
        raise ValueError("--worker and --deployment do not apply to 'export executions'")
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
    progress = _export_progress(args)
    try:
        if args.out == "-":
            return export_csv(store, args.kind, start, end, sys.stdout, where, progress=progress)
        return export_file(store, args.kind, start, end, args.out, where, progress=progress)
    finally:
        if progress is not None:
            progress.close()


def _export_executions(args: argparse.Namespace, store: Store, start: int, end: int) -> int:
    columns = None
    if args.columns is not None:
        columns = [check_column(c.strip()) for c in args.columns.split(",") if c.strip()]
        if not columns:
            raise ValueError("--columns names no column")
    records = read_executions(store, start, end, args.environment, args.pipeline, args.status)
    columns = columns or columns_of(records, args.mode)
    if args.out == "-":
        for chunk in iter_executions_csv(records, columns):
            sys.stdout.write(chunk)
    else:
        with atomic_text_file(args.out) as out:
            for chunk in iter_executions_csv(records, columns):
                out.write(chunk)
    return len(records)


def _run_export(args: argparse.Namespace) -> int:
    end = to_time_ns(args.end, "--end") if args.end else time.time_ns()
    start = to_time_ns(args.start, "--start") if args.start else end - 86400 * 1_000_000_000
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
        return _fail(f"cannot write {args.out}: {e.strerror or e}")
    finally:
        store.close()
    where_to = "standard output" if args.out == "-" else args.out
    print(
        f"{rows} rows of {args.kind} from {format_time(start)} to {format_time(end)}"
        f" written to {where_to}",
        file=sys.stderr,
    )
    return 0


def _run_agent(args: argparse.Namespace) -> int:
    from fleetgauge.agent.config import SETTINGS, load_config, render_config

    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    config = load_config(flags, config_file=args.config)
    if args.print_config:
        sys.stdout.write(render_config(config))
        return 0
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if config.log_level.lower() != "debug":  # one line per event: not one per job run
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    from prometheus_client import disable_created_metrics

    from fleetgauge.agent.daemon import Agent

    disable_created_metrics()  # no *_created series: a fifth less to render on every scrape
    Agent(config).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetgauge`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            return _run_demo(args)
        if args.command == "export":
            return _run_export(args)
        if args.command == "agent":
            return _run_agent(args)
        return _run_dashboard(args)
    except ValueError as e:
        return _fail(str(e), 2)
    except StoreError as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
