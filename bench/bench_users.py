"""Many users at once: the production server against werkzeug's development server.

Target (issue 24): 20 users, each polling the three pages (resources, pipeline metrics,
executions) every 10 s for 2 minutes, get each page's data callback back with a p95 of at
most 1 s and no error, on the production server (``fleetgauge dashboard``: gunicorn,
its default worker processes and threads).

1. The store (SQLite, or ``--backend influxdb``: a throwaway ``influxd``) gets the demo's
   history ending now (``agent.demo.seed``: ``--workers`` workers over 24 h, both demo
   deployments' predictions, events and executions), so every page has something to show.
2. ``fleetgauge dashboard`` serves it; ``--users`` threads each wait a random share of
   ``--every`` seconds, then every ``--every`` seconds post the data callback of each page
   in turn, as dash-renderer does when a page's auto-refresh fires on its default view,
   for ``--seconds``; each answer is timed.
3. The same load against ``fleetgauge dashboard --debug`` (werkzeug's development server,
   threaded, one process) is the reference, measured in the same run.

Figures: p50 and p95 callback latency over all pages, and errors (an answer other than
200 with a Dash ``response``, a timeout of 30 s, a refused connection), each server's;
the ratio is production / development. The users keep their pace when answers are slow
(a late poll is posted at once, never skipped), so a server that falls behind shows it
in its latencies.

Run ``python -m bench.bench_users`` (``--seconds 20 --users 4`` for a quick run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import results
from bench.bench_dashboard import UPDATE_PATH, WIDTH_PX, callback_payload, dashboard_server
from bench.bench_store import (
    BACKENDS,
    OUT_DIR,
    _positive,
    _progress,
    _terminate,
    influxdb_store,
)
from bench.results import Figure
from fleetgauge.stores import open_store

__all__ = ["main", "PAGES"]

REPORT_PATH = OUT_DIR / "users.md"
TARGET_P95_MS = 1000.0
TIMEOUT_S = 30.0
PAGES = {  # page -> the output its data callback writes (how it is found among the callbacks)
    "resources": "cards.children",
    "pipeline": "metric-graph.figure",
    "executions": "executions-table.data",
}


@dataclass
class Load:
    """What one server answered under the load."""

    server: str
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    polls: int = 0

    def all_ms(self) -> list[float]:
        return [ms for page in self.latencies_ms.values() for ms in page]

    def percentile(self, q: float) -> float:
        ms = sorted(self.all_ms())
        return statistics.quantiles(ms, n=100, method="inclusive")[q - 1] if len(ms) > 1 else 0.0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
        return answer.read()


def payloads(base_url: str) -> dict[str, bytes]:
    """Each page's data-callback body, as posted when its auto-refresh fires."""
    dependencies = json.loads(_get(base_url + "/_dash-dependencies"))
    bodies = {}
    for page, output in PAGES.items():
        values = {
            f"{page}-width.data": WIDTH_PX,
            f"{page}-refresh.n_clicks": 0,
            f"{page}-tick.n_intervals": 1,
            "_pages_location.search": "",
        }
        body = callback_payload(dependencies, values, f"{page}-tick.n_intervals", output)
        bodies[page] = json.dumps(body).encode()
    return bodies


def post(url: str, body: bytes) -> str | None:
    """Post one callback; None when it answered, else what went wrong."""
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            text = answer.read()
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except OSError as e:  # refused, reset, timed out
        return type(e).__name__ + f": {e}"
    if b'"response"' not in text:
        return f"no response in the answer: {text[:200]!r}"
    return None


def run_load(base_url: str, server: str, users: int, every_s: float, seconds: float) -> Load:
    """``users`` threads polling every page every ``every_s`` for ``seconds``."""
    bodies = payloads(base_url)
    url = base_url + UPDATE_PATH
    load = Load(server, {page: [] for page in PAGES})
    lock = threading.Lock()
    start = time.monotonic() + 1.0
    stop_at = start + seconds
    rng = random.Random(24)
    offsets = [rng.uniform(0, every_s) for _ in range(users)]

    def user(offset: float) -> None:
        due = start + offset
        while due < stop_at:
            time.sleep(max(0.0, due - time.monotonic()))
            for page, body in bodies.items():
                t0 = time.perf_counter()
                problem = post(url, body)
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    load.polls += 1
                    if problem is None:
                        load.latencies_ms[page].append(ms)
                    else:
                        load.errors.append(f"{page}: {problem}")
            due += every_s

    threads = [threading.Thread(target=user, args=(o,), daemon=True) for o in offsets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return load


@contextlib.contextmanager
def seeded_store(backend: str, tmp: Path, workers: int) -> Iterator[str]:
    """The demo's day of history in a fresh store; yields the URL readers use."""
    from fleetgauge.agent.demo.seed import seed

    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            store = open_store(f"sqlite:///{tmp / 'users.db'}")
            stack.callback(store.close)
            read_url = store.url
        else:
            store = stack.enter_context(influxdb_store(tmp / "influxd"))
            read_url = store.read_url  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        points = seed(store, time.time_ns(), hours=24, workers=workers)
        if hasattr(store, "settle"):
            store.settle()
        _progress(f"[{backend}] seeded {points:,} points in {time.perf_counter() - t0:.0f} s")
        yield read_url


def measure(args: argparse.Namespace, tmp: Path) -> list[Load]:
    loads = []
    with seeded_store(args.backend, tmp, args.workers) as read_url:
        servers = (("production (gunicorn)", ()), ("development (--debug)", ("--debug",)))
        for server, extra in servers:
            log = tmp / f"dashboard-{len(loads)}.log"
            with dashboard_server(read_url, log, extra=extra) as base_url:
                for body in payloads(base_url).values():  # one warm-up poll of each page
                    post(base_url + UPDATE_PATH, body)
                _progress(f"[{server}] {args.users} users for {args.seconds:g} s")
                load = run_load(base_url, server, args.users, args.every, args.seconds)
            _progress(
                f"[{server}] {load.polls} polls, p50 {load.percentile(50):.0f} ms,"
                f" p95 {load.percentile(95):.0f} ms, {len(load.errors)} errors"
            )
            loads.append(load)
    return loads


def figures_of(loads: Sequence[Load], args: argparse.Namespace) -> list[Figure]:
    production, development = loads
    what = f"{args.users} users x 3 pages every {args.every:g} s, {args.backend}"
    p50, p95 = production.percentile(50), production.percentile(95)
    dev50, dev95 = development.percentile(50), development.percentile(95)
    errors = len(production.errors)
    return [
        Figure(
            f"dashboard under load: p50 callback, {what}",
            f"{p50:,.0f} ms",
            f"development server: {dev50:,.0f} ms",
            p50 / dev50 if dev50 else None,
            "-",
            None,
        ),
        Figure(
            f"dashboard under load: p95 callback, {what}",
            f"{p95:,.0f} ms",
            f"development server: {dev95:,.0f} ms",
            p95 / dev95 if dev95 else None,
            f"<= {TARGET_P95_MS:.0f} ms",
            p95 <= TARGET_P95_MS,
        ),
        Figure(
            f"dashboard under load: errors, {what}",
            f"{errors} of {production.polls} polls",
            f"development server: {len(development.errors)} of {development.polls}",
            None,
            "0",
            errors == 0,
        ),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_users", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--users", type=_positive, default=20, help="users (default 20)")
    parser.add_argument(
        "--every", type=float, default=10.0, help="seconds between a user's polls (default 10)"
    )
    parser.add_argument(
        "--seconds", type=float, default=120.0, help="how long each server is loaded (default 120)"
    )
    parser.add_argument(
        "--workers", type=_positive, default=32, help="demo workers in the store (default 32)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="sqlite", help="store (default sqlite)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Load both servers; 0 when the production server met the targets, 1 otherwise."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    with tempfile.TemporaryDirectory(prefix="bench-users-") as tmp:
        loads = measure(args, Path(tmp))
    figures = figures_of(loads, args)
    results.save("users", figures)
    notes = []
    for load in loads:
        per_page = ", ".join(
            f"{page} p50 {statistics.median(ms):.0f} / max {max(ms):.0f} ms"
            for page, ms in load.latencies_ms.items()
            if ms
        )
        notes.append(f"{load.server}: {load.polls} polls; {per_page}")
        notes += [f"{load.server} error: {e}" for e in sorted(set(load.errors))[:10]]
    command = (
        f"python -m bench.bench_users --users {args.users} --every {args.every:g}"
        f" --seconds {args.seconds:g} --workers {args.workers} --backend {args.backend}"
    )
    title = "Dashboard under many users: production server against the development server"
    return results.report(REPORT_PATH, title, command, figures, notes)


if __name__ == "__main__":
    sys.exit(main())
