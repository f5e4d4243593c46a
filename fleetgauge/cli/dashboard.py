"""``fleetgauge dashboard``: the Dash site over the store (extra ``dashboard``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from fleetgauge.cli.common import add_prices, add_store, prices_of
from fleetgauge.net import parse_allowed_hosts
from fleetgauge.stores import open_store

if TYPE_CHECKING:
    from fleetgauge.dashboard.server import ServerOptions
    from fleetgauge.dashboard.thresholds import Resource

NAME = "dashboard"
EXTRAS = ("dashboard",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``dashboard`` command and its flags."""
    parser = sub.add_parser(
        "dashboard",
        help="the web site: resource cards and graphs, pipeline metrics, CSV downloads",
        description="Serve the Dash monitoring site over the store: a resources page (cards"
        " for workers over their thresholds, one graph per resource with a curve per worker"
        " and one for all of them) and a pipeline-metrics page (every recorded value, a"
        " rolling mean, a summary, events), each with CSV download. It listens on"
        " 127.0.0.1; on any other address it asks for a user and password (basic auth)"
        " unless --insecure is given. It runs on gunicorn: SIGTERM stops it gracefully"
        " (requests in progress finish), SIGINT at once.",
        epilog="Thresholds file (TOML): 'over_share = 0.25' and one table per resource, such as"
        " '[gpu] warning = 90 critical = 99'. Resources: "
        + ", ".join(r.key for r in _dashboard_resources())
        + ". Environment: FLEETGAUGE_STORE, FLEETGAUGE_DASHBOARD_HOST,"
        " FLEETGAUGE_DASHBOARD_PORT, FLEETGAUGE_DASHBOARD_THRESHOLDS,"
        " FLEETGAUGE_DASHBOARD_AUTH (user:hash entries), FLEETGAUGE_DASHBOARD_ALLOWED_HOSTS,"
        " FLEETGAUGE_DASHBOARD_WORKERS. Served by gunicorn (--workers processes); behind a"
        " reverse proxy under a path, set DASH_REQUESTS_PATHNAME_PREFIX=/PATH/ and have the"
        " proxy strip PATH.",
    )
    add_store(parser)
    _add_dashboard_args(parser)


def _dashboard_resources() -> tuple[Resource, ...]:
    """The site's resources, for the help text (the thresholds module needs no Dash)."""
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
        " network=100e6,1e9 (bytes/s); an empty side turns that level off: disk=,98."
        " gpu_idle=BELOW,SHARE: a GPU a process holds memory on is 'allocated but idle' when"
        " under BELOW %% utilisation for SHARE of that time (default gpu_idle=5,0.5)",
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
        "--allowed-hosts",
        metavar="NAMES",
        default=env("FLEETGAUGE_DASHBOARD_ALLOWED_HOSTS"),
        help="comma-separated names the site also answers to in the Host header, such as a"
        " proxy's public name ('*': any). Always answered: localhost and loopback addresses,"
        " and off loopback any IP address and this machine's host name; any other Host or"
        " Origin is refused (403), so a web page cannot reach the site by DNS rebinding"
        " (default: FLEETGAUGE_DASHBOARD_ALLOWED_HOSTS)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="listen beyond loopback without asking for a password (behind your own proxy)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env("FLEETGAUGE_DASHBOARD_WORKERS", "0")),
        help="gunicorn worker processes, each with --threads threads (default: one per core,"
        " 2 to 8; FLEETGAUGE_DASHBOARD_WORKERS)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=4,
        help="requests each worker answers at once (default: %(default)s)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="a request's line and headers must arrive within this; until then it waits"
        " without a thread, then the connection is closed (default: %(default)g)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a request body must arrive whole within this, or 408 (default: %(default)g)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open connections per worker; beyond, new ones wait to be accepted"
        " (default: %(default)s)",
    )
    add_prices(parser, "the Pipeline page's cost per 1,000 predictions: ")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="serve on werkzeug's development server in one process instead of gunicorn"
        " (tracebacks in the log; not for deployment)",
    )
    parser.add_argument(
        "--hash-password",
        metavar="USER",
        help="read a password (prompted, or from standard input) and print the 'user:hash'"
        " line for --auth-file, then exit",
    )


def run(args: argparse.Namespace) -> int:
    """Serve the site until SIGTERM or SIGINT (or print a password hash line)."""
    from fleetgauge.dashboard import auth
    from fleetgauge.dashboard.thresholds import load_thresholds

    if args.hash_password is not None:
        password = _read_password()
        print(auth.auth_line(args.hash_password, password))
        return 0
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} is not a TCP port (0 to 65535)")
    options = None if args.debug else _server_options(args)
    thresholds = load_thresholds(args.thresholds, args.threshold, args.over_share)
    prices = prices_of(args)
    users = auth.load_users(args.auth_file)
    auth.check_bind(args.host, users, args.insecure)
    store = open_store(args.store, create=False)  # a wrong store fails now, not on a page
    try:
        store.check()
    finally:
        store.close()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from fleetgauge.dashboard.app import serve
    from fleetgauge.dashboard.site import SiteConfig

    hosts = parse_allowed_hosts(args.allowed_hosts or "")
    site = SiteConfig(
        args.store, args.host, args.port, thresholds, users, args.insecure, hosts, prices
    )
    serve(site, options)
    return 0


def _server_options(args: argparse.Namespace) -> ServerOptions:
    """gunicorn's settings from the flags; ValueError naming the flag that is out of range."""
    from fleetgauge.dashboard.server import ServerOptions, default_workers

    checks = (
        ("--workers", args.workers, 0, 64),
        ("--threads", args.threads, 1, 256),
        ("--header-timeout", args.header_timeout, 0.5, 3600),
        ("--body-timeout", args.body_timeout, 0.5, 3600),
        ("--max-connections", args.max_connections, 8, 100_000),
    )
    for flag, value, low, high in checks:
        if not low <= value <= high:
            raise ValueError(f"{flag} {value:g} is out of range ({low:g} to {high:g})")
    return ServerOptions(
        workers=args.workers or default_workers(),
        threads=args.threads,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
    )


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
