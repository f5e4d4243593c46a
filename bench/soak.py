"""Soak: the agent and the dashboard under steady load for MINUTES; does memory stay put?

``scripts/bench --soak MINUTES`` (or ``python -m bench.soak --minutes N``) runs, against
a throwaway real ``influxd`` (behind the test suite's v2 write front, in a process of its own):

- ``fleetgauge agent`` at ``--interval 1`` with every collector, flushing every second;
- 1,000 values/s pushed to that agent's push endpoint through the SDK
  (``record_metric_value`` 100 times every 0.1 s, on a fixed schedule);
- ``fleetgauge dashboard`` on the same bucket, its resources page's data callback
  posted every 10 s (the way an open browser tab with auto-refresh asks).

Before they start, the bucket gets the hour of resource history the agent would have
written in the hour before (its own collectors' points, one a second), so the hour the
dashboard asks for is full from the first poll: the soak measures a dashboard at its
steady state, as on any fleet that has run for an hour, rather than the hour filling up.

Every minute it prints each process's RSS and CPU (percent of one core over that
minute, from ``/proc``). At the end it checks that every pushed value was stored
and reports the agent's and the dashboard's RSS growth from minute 10 to the end:
target under 5 %. Shorter soaks report their figures but cannot judge the growth (it
starts at minute 10). The table goes to ``bench/out/soak.md`` and the suite's figures file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import results
from bench.agent_profile import free_port
from bench.bench_agent import descendants, usage_of
from bench.bench_dashboard import (
    UPDATE_PATH,
    WIDTH_PX,
    _http,
    callback_payload,
    dashboard_server,
)
from bench.bench_push import influx, stored_count, wait_port
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure
from fleetgauge.agent.collectors import build_collectors
from fleetgauge.catalogue import ENVIRONMENT, Point
from fleetgauge.catalogue import WORKER as WORKER_TAG
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import open_store

__all__ = ["main"]

REPORT_PATH = OUT_DIR / "soak.md"
RATE = 1000  # values/s pushed
TICK_S = 0.1
POLL_S = 10.0
GROWTH_TARGET = 0.05
SETTLE_MIN = 10
HISTORY_S = 3600  # resource history written before the soak starts
WORKER = "soak-worker"
MB = 1e6


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Minute:
    minute: int
    agent_rss: int
    agent_cpu: float
    dashboard_rss: int
    dashboard_cpu: float
    pushed: int
    polls: int
    poll_ms: float


@dataclass
class Pusher:
    """Records RATE values/s through the SDK on a fixed schedule, in a thread."""

    client: MetricsClient
    pushed: int = 0
    late_ticks: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        per_tick = int(RATE * TICK_S)
        tick = time.monotonic()
        while not self.stop.is_set():
            for i in range(per_tick):
                self.client.record_metric_value("score", i % 2)
            self.pushed += per_tick
            tick += TICK_S
            delay = tick - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                self.late_ticks += 1


@dataclass
class Poller:
    """Posts the dashboard's data callback every POLL_S seconds, in a thread."""

    url: str
    payload: bytes
    polls: int = 0
    errors: list[str] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                status, _ = _http(self.url + UPDATE_PATH, self.payload)
                if status != 200:
                    self.errors.append(f"HTTP {status}")
            except OSError as e:
                self.errors.append(str(e))
            self.times_ms.append((time.perf_counter() - t0) * 1000)
            self.polls += 1
            self.stop.wait(POLL_S)


@contextlib.contextmanager
def agent_process(front: str, tmp: Path, push_port: int) -> Iterator[subprocess.Popen[bytes]]:
    args = [
        *(sys.executable, "-m", "fleetgauge", "agent"),
        *("--store", f"influxdb+{front}/soak?org=bench"),
        *("--push-port", str(push_port), "--metrics-port", "0"),
        *("--interval", "1", "--flush-interval", "1", "--worker", WORKER),
        *("--spool-dir", str(tmp / "spool")),
    ]
    with open(tmp / "agent.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_port(push_port)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _dashboard_pid() -> int:
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"dashboard" in cmd and b"fleetgauge" in cmd:
                return pid
    raise RuntimeError("the dashboard process was not found")


def _payload(base_url: str) -> bytes:
    _, body = _http(base_url + "/_dash-dependencies")
    values = {"resources-width.data": WIDTH_PX, "resources-refresh.n_clicks": 0}
    values |= {"resources-tick.n_intervals": 0, "_pages_location.search": "?range=1h"}
    return json.dumps(callback_payload(json.loads(body), values, "resources-width.data")).encode()


def write_history(store_url: str, seconds: int = HISTORY_S) -> int:
    """Write the ``seconds`` of resource history before now that the agent's collectors
    would have written at ``--interval 1``: their points of this moment, once a second."""
    collectors = build_collectors({ENVIRONMENT: "default", WORKER_TAG: WORKER})
    for c in collectors:  # the first sample only primes the rate counters
        c.collect(time.time_ns())
    time.sleep(1)
    now = time.time_ns()
    template = [p for c in collectors for p in c.collect(now)]
    store = open_store(store_url)
    written = 0
    try:
        batch: list[Point] = []
        start = now - seconds * 1_000_000_000
        for t in range(start, now, 1_000_000_000):
            batch.extend(Point(p.measurement, p.tags, p.fields, t) for p in template)
            if len(batch) >= 5000:
                store.write(batch)
                written, batch = written + len(batch), []
        store.write(batch)
        written += len(batch)
    finally:
        store.close()
    return written


def soak(minutes: int, tmp: Path) -> tuple[list[Minute], dict[str, object]]:
    push_port = free_port()
    with contextlib.ExitStack() as stack:
        server, front = stack.enter_context(influx(tmp))
        server.create_database("soak")  # type: ignore[attr-defined]
        seeded = write_history(f"influxdb+{front}/soak?org=bench")
        _progress(f"[soak] wrote {seeded:,} points: the hour before the agent starts")
        agent = stack.enter_context(agent_process(front, tmp, push_port))
        read_url = f"influxdb+{server.url}/soak?org=bench"  # type: ignore[attr-defined]
        base = stack.enter_context(dashboard_server(read_url, tmp / "dash.log"))
        dashboard = _dashboard_pid()
        client = MetricsClient(
            url=f"http://127.0.0.1:{push_port}", deployment="soak", flush_interval=0.25
        )
        pusher = Pusher(client)
        poller = Poller(base, _payload(base))
        threads = [threading.Thread(target=x.run, daemon=True) for x in (pusher, poller)]
        for t in threads:
            t.start()
        rows: list[Minute] = []
        before = {pid: usage_of(pid) for pid in (agent.pid, dashboard)}
        t0 = time.monotonic()
        try:
            for minute in range(1, minutes + 1):
                time.sleep(max(0.0, t0 + 60 * minute - time.monotonic()))
                if agent.poll() is not None:
                    raise RuntimeError(f"the agent exited {agent.returncode}: see its log")
                now = {pid: usage_of(pid) for pid in (agent.pid, dashboard)}
                cpu = {pid: (now[pid].cpu_s - before[pid].cpu_s) / 60 * 100 for pid in now}
                recent = poller.times_ms[-6:] or [0.0]
                rows.append(
                    Minute(
                        minute,
                        now[agent.pid].rss_bytes,
                        cpu[agent.pid],
                        now[dashboard].rss_bytes,
                        cpu[dashboard],
                        pusher.pushed,
                        poller.polls,
                        sorted(recent)[len(recent) // 2],
                    )
                )
                before = now
                r = rows[-1]
                _progress(
                    f"[soak] minute {minute}: agent RSS {r.agent_rss / MB:.1f} MB,"
                    f" CPU {r.agent_cpu:.1f} %; dashboard RSS {r.dashboard_rss / MB:.1f} MB,"
                    f" CPU {r.dashboard_cpu:.1f} %; {r.pushed:,} values pushed,"
                    f" {r.polls} polls (last {r.poll_ms:.0f} ms)"
                )
        finally:
            pusher.stop.set()
            poller.stop.set()
            for t in threads:
                t.join(30)
        flushed = client.flush(timeout=120)
        stats = client.stats()
        client.close()
        deadline = time.monotonic() + 120
        while (stored := stored_count(server, "soak")) < pusher.pushed:
            if time.monotonic() > deadline:
                break
            time.sleep(1)
    extra = {
        "pushed": pusher.pushed,
        "stored": stored,
        "flushed": flushed,
        "dropped": sum(stats["dropped"].values()),
        "late_ticks": pusher.late_ticks,
        "poll_errors": poller.errors[:5],
        "polls": poller.polls,
    }
    return rows, extra


HEADERS = (
    "minute",
    "agent RSS MB",
    "agent CPU %",
    "dashboard RSS MB",
    "dashboard CPU %",
    "values pushed",
    "polls",
    "poll ms",
)


def table_rows(rows: Sequence[Minute]) -> list[list[str]]:
    return [
        [
            str(r.minute),
            f"{r.agent_rss / MB:.1f}",
            f"{r.agent_cpu:.1f}",
            f"{r.dashboard_rss / MB:.1f}",
            f"{r.dashboard_cpu:.1f}",
            f"{r.pushed:,}",
            str(r.polls),
            f"{r.poll_ms:.0f}",
        ]
        for r in rows
    ]


def figures(rows: Sequence[Minute], extra: dict[str, object]) -> list[Figure]:
    lossless = extra["stored"] == extra["pushed"] and not extra["dropped"]
    out = [
        Figure(
            f"soak {len(rows)} min: values stored",
            f"{extra['stored']:,}",
            f"pushed: {extra['pushed']:,}",
            extra["stored"] / extra["pushed"] if extra["pushed"] else None,  # type: ignore[operator]
            "all",
            lossless,
        )
    ]
    if len(rows) > SETTLE_MIN:
        base, end = rows[SETTLE_MIN - 1], rows[-1]
        for name, a, b in (
            ("agent", base.agent_rss, end.agent_rss),
            ("dashboard", base.dashboard_rss, end.dashboard_rss),
        ):
            growth = (b - a) / a
            out.append(
                Figure(
                    f"soak {len(rows)} min: {name} RSS growth after minute {SETTLE_MIN}",
                    f"{growth:+.1%} ({b / MB:.1f} MB)",
                    f"RSS at minute {SETTLE_MIN}: {a / MB:.1f} MB",
                    b / a,
                    f"< {GROWTH_TARGET:.0%}",
                    growth < GROWTH_TARGET,
                )
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=int, required=True, help="how long to soak (>= 1)")
    args = parser.parse_args(argv)
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    if args.minutes <= SETTLE_MIN:
        _progress(
            f"[soak] {args.minutes} min: RSS growth is judged from minute {SETTLE_MIN} on,"
            " so not in this run"
        )
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        rows, extra = soak(args.minutes, Path(tmp))
    got = figures(rows, extra)
    notes = [
        f"pushed {extra['pushed']:,} values at {RATE:,}/s, stored {extra['stored']:,},"
        f" SDK dropped {extra['dropped']}, late push ticks {extra['late_ticks']}",
        f"dashboard polled {extra['polls']} times every {POLL_S:g} s;"
        f" errors: {extra['poll_errors'] or 'none'}",
        *(f"{f.name}: {f.value} vs {f.reference}: {f.result}" for f in got),
    ]
    print(text_table(HEADERS, table_rows(rows)))
    print("\n".join(notes))
    command = f"python -m bench.soak --minutes {args.minutes}"
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(
        markdown_report("Soak", command, "", HEADERS, table_rows(rows), notes, machine())
    )
    results.save("soak", got)
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0 if all(f.passed is not False for f in got) else 1


if __name__ == "__main__":
    sys.exit(main())
