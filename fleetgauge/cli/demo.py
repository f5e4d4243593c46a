"""``fleetgauge demo``: demo history and a live demo of agent, model and site."""

from __future__ import annotations

import argparse
import os
import time

from fleetgauge.stores import STORE_ENV, default_store_url, open_store

NAME = "demo"
EXTRAS = ("agent", "dashboard")
"""What the live demo runs; ``--seed-only`` needs none of them."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` command and its flags."""
    parser = sub.add_parser(
        "demo",
        help="run a live demo: this machine's agent, a simulated model, a day of demo history"
        " and the dashboard",
        description="Write synthetic history for a few demo workers (one runs hot) and two"
        " deployed models (one drifting worse) into the default store, then run, until"
        " Ctrl-C, the agent on this machine (a sample every second, environment 'demo') with"
        " its push endpoint where the SDK sends (FLEETGAUGE_PUSH_URL, default"
        " http://127.0.0.1:9109), a simulated model that records a score per prediction for"
        " both deployments through the SDK, and the dashboard on 127.0.0.1. So"
        " record_metric_value(...), get_metrics(...) and fleetgauge export in another shell"
        " reach the demo with no settings; when the push port is busy or another agent writes"
        " the default store, the demo uses a free port or a store of its own and prints the"
        " line to export. It prints the dashboard's URL; the agent's and the dashboard's"
        " output go to log files in a demo directory, removed on exit (the store stays)."
        " Ctrl-C (SIGINT), SIGTERM or SIGHUP stop everything and exit 0; if the agent or the"
        " dashboard exits by itself the demo stops and exits 1.",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help=f"store to write the demo into (default: ${STORE_ENV}, else"
        f" {default_store_url().replace('%', '%%')}; a new file in the demo directory when"
        " another agent writes that one)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("FLEETGAUGE_DASHBOARD_PORT") or 8050),
        help="TCP port of the dashboard, 0 for any free one (default:"
        " FLEETGAUGE_DASHBOARD_PORT, else 8050)",
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=24.0,
        help="hours of demo history to write, ending now (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="number of demo workers in the history (default: %(default)s)",
    )
    parser.add_argument(
        "--seed-only",
        action="store_true",
        help="only write the history, say where it is and exit (nothing keeps running)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the live demo until Ctrl-C, or only write its history (``--seed-only``)."""
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
