"""End-to-end push benchmark: values/s from the SDK through the agent into the real InfluxDB.

A model records values with ``fleetgauge.sdk``; the SDK's sender thread posts them
to a running ``fleetgauge agent`` (a separate process), which writes them to a
throwaway ``influxd`` (Debian's 1.6, behind the v2 write front from
``tests/influx_server.py``, run as a process of its own). Measured in one run,
each into its own database of the same ``influxd``:

- ours: a loop calls ``MetricsClient.record_metric_value("score", i % 2)``
  ``--values`` times (default 500,000), then ``flush()``; the figure is values
  divided by the time from the first call until the agent counts them all as
  acknowledged by InfluxDB (``fleetgauge_agent_points_written_total`` on its
  ``/metrics``, asked every 50 ms; the agent also keeps the 1m/10m/1h rollup tiers);
- reference 1: raw ``POST /write`` of pre-built 5,000-line batches of the same
  points, straight to ``influxd`` on one kept-alive connection (building the
  lines is not timed), until the last batch is acknowledged: the ceiling for this
  ``influxd`` on this machine;
- reference 2: ``influxdb-client``'s default batching write API
  (``write_api()``: batches of 1,000, 1 s flush), fed one line-protocol string
  per value through the same front, until ``close()`` returns (every batch
  acknowledged).

Each run ends when its writes are acknowledged, and only then is ``count("value")``
asked of InfluxDB, untimed: the database must hold exactly ``--values`` points.
(Polling ``count()`` during a run costs ``influxd`` about 0.1 s of CPU a query, taken
from the writes being timed.)

Before the three, the same points are written by raw ``/write`` into a database of
their own, untimed: a fresh ``influxd`` takes its first writes slower, and the first
timed run would pay for it.

Targets: ours >= 100,000 values/s, at least half of reference 1 (issue 26), and
faster than reference 2. The SDK must report nothing dropped.

Run ``python -m bench.bench_push`` from the repository root (or ``scripts/bench
push``). The table is printed and written as markdown to ``bench/out/push.md``;
the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import results
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure
from fleetgauge import catalogue
from fleetgauge.sdk import MetricsClient

__all__ = ["main"]

REPORT_PATH = OUT_DIR / "push.md"
TARGET_PER_S = 100_000
RAW_SHARE_TARGET = 0.5
"""Issue 26: the SDK -> agent -> InfluxDB path at least half as fast as raw /write."""
RAW_BATCH = 5000
HEADERS = ("figure", "value", "reference (same run)", "ratio", "target", "result")
_FRONT = """
import sys, time
sys.path.insert(0, {tests!r})
from influx_server import V2WriteFront
front = V2WriteFront({backend!r}, timeout=120)
front.port = {port}
front.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


@dataclass
class Run:
    """One way of getting the values into InfluxDB: how many, how long, and notes."""

    name: str
    values: int
    seconds: float
    stored: int
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.values / self.seconds


def _progress(message: str) -> None:
    print(f"[bench_push] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on port {port}")


@contextlib.contextmanager
def influx(tmp: Path) -> Iterator[tuple[object, str]]:
    """A throwaway influxd and, in a process of its own, the v2 write front: (server, front URL)."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from influx_server import InfluxServer, terminate
    finally:
        sys.path.remove(str(REPO / "tests"))
    with InfluxServer(tmp / "influxd") as server:
        port = free_port()
        code = _FRONT.format(tests=str(REPO / "tests"), backend=server.url, port=port)
        front = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
        try:
            assert front.stdout is not None and front.stdout.readline().strip() == b"ready"
            yield server, f"http://127.0.0.1:{port}"
        finally:
            terminate(front)


def stored_count(server: object, database: str) -> int:
    """Points of the pipeline-metric measurement in ``database``."""
    q = f'SELECT count("value") FROM "{catalogue.PIPELINE_METRIC.name}"'
    result = server.query(q, db=database)["results"][0]  # type: ignore[attr-defined]
    series = result.get("series")
    return int(series[0]["values"][0][1]) if series else 0


def wait_stored(server: object, database: str, expected: int, timeout: float = 60.0) -> None:
    """After a run's end, untimed: until ``database`` holds ``expected`` points (they may
    still be on their way into influxd's index)."""
    deadline = time.monotonic() + timeout
    while (n := stored_count(server, database)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{database}: {n} of {expected} points after {timeout:.0f} s")
        time.sleep(0.1)


def points_written(conn: http.client.HTTPConnection) -> int:
    """The agent's own count of points its store acknowledged, from its ``/metrics``."""
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    if response.status != 200:
        raise RuntimeError(f"agent /metrics answered {response.status}")
    prefix = catalogue.AGENT_POINTS_WRITTEN.name
    for row in text.splitlines():
        if row.startswith(prefix) and row[len(prefix)] in " {":
            return int(float(row.rsplit(" ", 1)[1]))
    raise RuntimeError(f"agent /metrics has no {prefix}")


def wait_written(conn: http.client.HTTPConnection, expected: int, timeout: float = 300.0) -> float:
    """Until the agent counts ``expected`` points acknowledged; returns the perf_counter then.

    Asked every 50 ms of the agent rather than of influxd: a ``count()`` over the
    points costs influxd about 0.1 s of CPU, and asking it every 0.1 s took CPU from
    the very writes being timed."""
    deadline = time.monotonic() + timeout
    while (n := points_written(conn)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent wrote {n} of {expected} points in {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter()


def lines(n: int, start_ns: int) -> list[str]:
    """``n`` pipeline-metric lines as the agent writes them, 1 us apart."""
    head = f"{catalogue.PIPELINE_METRIC.name},deployment=bench,environment=default,metric=score"
    return [f"{head} value={float(i % 2)!r} {start_ns + i * 1000}" for i in range(n)]


# --- the three runs -----------------------------------------------------------------
def run_ours(server: object, front: str, n: int, tmp: Path) -> Run:
    server.create_database("ours")  # type: ignore[attr-defined]
    push_port, metrics_port = free_port(), free_port()
    log_path = tmp / "agent.log"
    args = [
        *(sys.executable, "-m", "fleetgauge", "agent"),
        *("--store", f"influxdb+{front}/ours?org=bench&timeout=60"),
        *("--push-port", str(push_port), "--metrics-port", str(metrics_port)),
        *("--interval", "3600", "--collectors", "cpu", "--flush-interval", "1"),
        *("--spool-dir", str(tmp / "spool")),
    ]
    with open(log_path, "wb") as log_file:
        agent = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_port(push_port)
            wait_port(metrics_port)
            metrics = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=30)
            # the startup sample (the next is an hour away) written first: then every
            # point written after it is one of the values
            deadline = time.monotonic() + 30
            while (before := points_written(metrics)) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            client = MetricsClient(
                url=f"http://127.0.0.1:{push_port}",
                deployment="bench",
                max_queue=n + 1,
                exit_timeout=0,
            )
            started = time.perf_counter()
            record = client.record_metric_value
            for i in range(n):
                record("score", i % 2)
            recorded = time.perf_counter() - started
            if not client.flush(timeout=300):
                raise RuntimeError(f"SDK flush timed out: {client.stats()}")
            stats = client.stats()
            if dropped := sum(stats["dropped"].values()):  # then the count would never come
                raise RuntimeError(f"the SDK dropped {dropped} values: {stats}")
            done = wait_written(metrics, before + n)
            metrics.close()
            client.close()
            wait_stored(server, "ours", n)
        finally:
            agent.terminate()
            agent.wait(30)
    note = (
        f"the recording loop itself took {recorded:.2f} s ({recorded / n * 1e6:.2f} us/call,"
        " sender thread running)"
    )
    return Run("ours", n, done - started, stored_count(server, "ours"), note)


def run_raw(server: object, n: int, database: str = "raw") -> Run:
    server.create_database(database)  # type: ignore[attr-defined]
    all_lines = lines(n, time.time_ns() - n * 1000)
    bodies = ["\n".join(all_lines[i : i + RAW_BATCH]).encode() for i in range(0, n, RAW_BATCH)]
    host, port = server.url.removeprefix("http://").split(":")  # type: ignore[attr-defined]
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", f"/write?db={database}&precision=n", body)
        response = conn.getresponse()
        response.read()
        if response.status != 204:
            raise RuntimeError(f"influxd /write answered {response.status}")
    done = time.perf_counter()  # every batch acknowledged
    conn.close()
    wait_stored(server, database, n)
    note = f"{len(bodies)} pre-built bodies of {RAW_BATCH} lines"
    return Run("raw /write", n, done - started, stored_count(server, database), note)


def run_batching(server: object, front: str, n: int) -> Run:
    from influxdb_client import InfluxDBClient

    server.create_database("batching")  # type: ignore[attr-defined]
    start_ns = time.time_ns() - n * 1000
    head = f"{catalogue.PIPELINE_METRIC.name},deployment=bench,environment=default,metric=score"
    with InfluxDBClient(url=front, token="bench", org="bench", timeout=120_000) as client:
        started = time.perf_counter()
        write_api = client.write_api()  # the default: batching, 1,000 per batch, 1 s flush
        for i in range(n):
            write_api.write("batching", "bench", f"{head} value={float(i % 2)!r} {start_ns + i}")
        write_api.close()  # returns once every batch is acknowledged
        done = time.perf_counter()
    wait_stored(server, "batching", n)
    note = "write_api() defaults, one line-protocol string per write() call"
    return Run(
        "influxdb-client batching", n, done - started, stored_count(server, "batching"), note
    )


# --- report -------------------------------------------------------------------------
def table_rows(ours: Run, raw: Run, batching: Run) -> tuple[list[list[str]], bool]:
    headroom = ours.per_s / raw.per_s
    throughput_ok = ours.per_s >= TARGET_PER_S and headroom >= RAW_SHARE_TARGET
    beats = ours.per_s > batching.per_s
    figure = "SDK -> agent -> InfluxDB"
    rows = [
        [
            figure,
            f"{ours.per_s:,.0f} values/s",
            f"raw /write, pre-built batches: {raw.per_s:,.0f} points/s",
            f"{headroom:.2f}",
            f">= {TARGET_PER_S:,} values/s and >= {RAW_SHARE_TARGET:g} x",
            "PASS" if throughput_ok else "FAIL",
        ],
        [
            figure,
            f"{ours.per_s:,.0f} values/s",
            f"influxdb-client batching API: {batching.per_s:,.0f} points/s",
            f"{ours.per_s / batching.per_s:.2f}",
            "> 1 (beat it)",
            "PASS" if beats else "FAIL",
        ],
    ]
    return rows, throughput_ok and beats


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_push", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--values", type=int, default=500_000, help="values per run (default 500000)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three in one influxd; 0 when both targets are met, 1 otherwise."""
    args = parse_args(argv)
    n = args.values
    logging.basicConfig(level=logging.WARNING)
    with (
        tempfile.TemporaryDirectory(prefix="bench-push-") as tmp,
        influx(Path(tmp)) as (srv, front),
    ):
        # A fresh influxd writes its first few hundred thousand points slower (its heap and
        # caches grow): an untimed raw write first, so that neither timed run pays for it.
        _progress(f"warming influxd up: {n:,} points, raw /write, not timed")
        warm_up = run_raw(srv, n, "warmup")
        _progress(f"ours: {n:,} values through the SDK and the agent")
        ours = run_ours(srv, front, n, Path(tmp))
        _progress(f"ours: {ours.per_s:,.0f} values/s; raw /write of the same points")
        raw = run_raw(srv, n)
        _progress(f"raw: {raw.per_s:,.0f} points/s; influxdb-client batching")
        batching = run_batching(srv, front, n)
        _progress(f"batching: {batching.per_s:,.0f} points/s")
    for run in (ours, raw, batching):
        if run.stored != n:
            raise RuntimeError(f"{run.name}: {run.stored} points stored, expected {n}")
    rows, passed = table_rows(ours, raw, batching)
    info = machine()
    notes = [
        *(f"{r.name}: {r.values:,} in {r.seconds:.2f} s; {r.note}" for r in (ours, raw, batching)),
        f"every run stored exactly {n:,} points (checked with count(value))",
        f"before them, untimed: the same {n:,} points by raw /write into a database of their"
        f" own, to warm influxd up ({warm_up.seconds:.2f} s)",
        f"result: {'PASS' if passed else 'FAIL'}",
    ]
    print(text_table(HEADERS, rows))
    print()
    print("\n".join(notes))
    command = f"python -m bench.bench_push --values {n}"
    report = markdown_report("Push benchmark (end to end)", command, "", HEADERS, rows, notes, info)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(report)
    figures = [Figure(*row[:3], float(row[3]), row[4], row[5] == "PASS") for row in rows]
    results.save("push", figures)
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    if os.environ.get("CI"):
        print("(CI: figures from a shared machine are indicative only)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
