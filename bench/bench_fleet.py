"""Store, dashboard and export figures per backend, on one shared week of a 32-worker fleet.

For each backend (SQLite file; a throwaway ``influxd`` behind the test suite's
v2 write front) it measures, each beside a reference taken in the same run:

1. **write**: ``store.write`` of 2 hours of the fleet (5,000-point batches,
   rollups included) in points/s, against the bulk loader writing the same
   points straight into the engine (``bench/fleet.py``: pre-built rows or line
   protocol, rollups computed with numpy);
2. **load**: the whole fleet (``--workers`` x ``--days`` at 10 s, cpu, memory,
   disk, network and GPU: 9.7 million points for 32 x 7) with the bulk loader,
   which stores what ``store.write`` would (``tests/test_bench_fleet.py``);
3. **bucketed read**: ``read_buckets`` of cpu, 5 fields, one curve per worker,
   1008 buckets over the whole range, from the planned tier (median of 5 after a
   warm-up) against a raw scan of the same buckets; target <= 300 ms;
4. **dashboard**: the resources page's first data callback over HTTP to a
   ``fleetgauge dashboard`` child (median of 5 after the cold one), and its
   figure JSON, against the same view rendered in process from raw points (up to 12
   workers) or, at fleet size, as one full curve per worker (the page before fleet views);
   targets <= 500 ms and <= 2 MB;
5. **export**: ``fleetgauge export resources`` of ``--export-rows`` rows as a child
   process (rows/s, peak RSS), against the store's own CSV (``bench/export_reference.py``);
   memory must stay flat: the export peaks within 5 MiB of one of a tenth of the rows (the
   readers buffer a bounded chunk per series, full well before a tenth of a million rows).

Run ``python -m bench.bench_fleet`` (``--days 1 --workers 4`` for a quick run). With
``--dashboard-only`` only steps 2 and 4 run: ``scripts/bench --scale`` measures the page that
way at 256 workers x 1 day, 32 workers x 30 days (``--raw-days 1``: raw rows of the last day
only, every tier over the whole month, which is all a month's view reads) and 1,000
workers x 1 hour (``--hours 1``). The table is printed and written to
``bench/out/fleet.md``; the rows go to the suite's table.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bench_dashboard, fleet, results
from bench.bench_dashboard import DashboardResult, dashboard_server, measure_http, page_search
from bench.bench_export import ExportRun, peak_command, peak_rss_kib, run_export
from bench.bench_store import (
    BACKENDS,
    DAY_NS,
    OUT_DIR,
    REPO,
    WriteStats,
    _positive,
    _progress,
    _runs,
    _terminate,
    compare,
    data_start_ns,
    influx_and_front,
    timed,
    wait_idle,
)
from bench.results import Figure
from fleetgauge.catalogue import CPU, WORKER
from fleetgauge.stores import Store, open_store

__all__ = ["main"]

REPORT_PATH = OUT_DIR / "fleet.md"
WRITE_HOURS = 2
BATCH = 5000
MAX_POINTS = 1008
READ_TARGET_MS = 300.0
FLAT_MIB = 5.0
MIB = 1024
MB = 1e6


@dataclass
class Backend:
    """A store to load and read, and how to bulk-load it."""

    name: str
    store: Store
    read_url: str
    bulk: Any
    scratch: Any  # () -> (store for store.write, bulk loader for the reference)
    settle: Any = None
    export_reference: list[str] = field(default_factory=list)


@contextlib.contextmanager
def sqlite_backend(tmp: Path) -> Iterator[Backend]:
    store = open_store(f"sqlite:///{tmp / 'fleet.db'}")
    made: list[Store] = []

    def scratch() -> tuple[Store, Any]:
        mine = open_store(f"sqlite:///{tmp / 'write.db'}")
        other = open_store(f"sqlite:///{tmp / 'bulk.db'}")
        made.extend([mine, other])
        return mine, lambda series: fleet.load_sqlite(other, series)

    try:
        yield Backend(
            "sqlite",
            store,
            store.url,
            lambda series, **kw: fleet.load_sqlite(store, series, **kw),
            scratch,
            export_reference=["sqlite", str(tmp / "fleet.db")],
        )
    finally:
        for s in [store, *made]:
            s.close()


@contextlib.contextmanager
def influxdb_backend(tmp: Path) -> Iterator[Backend]:
    with contextlib.ExitStack() as stack:
        databases = ("fleet", "write", "bulk")
        server, front = stack.enter_context(influx_and_front(tmp / "influxd", databases))
        store = open_store(f"influxdb+{front.url}/fleet?org=bench&timeout=60")
        stack.callback(store.close)

        def scratch() -> tuple[Store, Any]:
            mine = open_store(f"influxdb+{front.url}/write?org=bench&timeout=60")
            stack.callback(mine.close)
            return mine, lambda series: fleet.load_influxdb(server.url, "bulk", series)

        yield Backend(
            "influxdb",
            store,
            # Readers that never write (dashboard, export) skip the relay, as on InfluxDB 2.x.
            f"influxdb+{server.url}/fleet?org=bench&timeout=60",
            lambda series, **kw: fleet.load_influxdb(server.url, "fleet", series, **kw),
            scratch,
            settle=lambda: wait_idle(server._proc.pid),
            export_reference=["influxdb", server.url, "fleet"],
        )


_BACKENDS = {"sqlite": sqlite_backend, "influxdb": influxdb_backend}


# --- the steps -----------------------------------------------------------------------
def write_figure(b: Backend, start_ns: int, workers: int) -> tuple[Figure, str]:
    """store.write of WRITE_HOURS of the fleet against the bulk loader of the same points."""
    series = list(fleet.fleet(start_ns, WRITE_HOURS / 24, workers))
    points = list(fleet.points(series))
    mine, bulk = b.scratch()
    stats = WriteStats()
    t0 = time.perf_counter()
    for i in range(0, len(points), BATCH):
        mine.write(points[i : i + BATCH])
    stats.write_s, stats.points = time.perf_counter() - t0, len(points)
    t0 = time.perf_counter()
    bulk(iter(series))
    bulk_rate = len(points) / (time.perf_counter() - t0)
    figure = Figure(
        f"{b.name}: store.write (rollups included)",
        f"{stats.points_per_s:,.0f} points/s",
        f"bulk rows into the engine: {bulk_rate:,.0f} points/s",
        stats.points_per_s / bulk_rate,
        "-",
        None,
    )
    note = f"{b.name} write: {len(points):,} points ({workers} workers x {WRITE_HOURS} h)"
    return figure, note


def read_figure(b: Backend, start_ns: int, end_ns: int, expected_values: int) -> Figure:
    reader = open_store(b.read_url)  # as the dashboard reads: on InfluxDB, not through the relay

    def read(level: str | None = None):  # noqa: ANN202
        return reader.read_buckets(
            CPU.name, CPU.field_names, start_ns, end_ns, MAX_POINTS, group_by=[WORKER], level=level
        )

    try:
        tier_ms, tier = timed(read, 5, warmup=1)
        raw_ms, raw = timed(lambda: read("raw"), 1)
    finally:
        reader.close()
    problems = compare(tier, raw, expected_values)
    if problems:
        raise RuntimeError(f"[{b.name}] tier and raw reads disagree: {'; '.join(problems)}")
    median = statistics.median(tier_ms)
    _progress(f"[{b.name}] read: tier {tier.level} runs (ms) {_runs(tier_ms)}, raw {_runs(raw_ms)}")
    return Figure(
        f"{b.name}: bucketed read, cpu x {len(tier.series)} workers, {tier.level} tier",
        f"{median:,.0f} ms",
        f"raw scan of the same buckets: {raw_ms[0]:,.0f} ms",
        median / raw_ms[0],
        f"<= {READ_TARGET_MS:.0f} ms",
        median <= READ_TARGET_MS,
    )


def dashboard_figures(
    b: Backend, start_ns: int, end_ns: int, workers: int, days: float, tmp: Path
) -> list[Figure]:
    result = DashboardResult(b.name, WriteStats())
    with dashboard_server(b.read_url, tmp / f"dashboard-{b.name}.log") as base_url:
        measure_http(result, base_url, page_search(start_ns, end_ns), workers)
    reader = open_store(b.read_url)
    try:  # one raw render is the reference: it takes seconds
        bench_dashboard.measure_in_process(result, reader, start_ns, end_ns, workers, raw_runs=1)
    finally:
        reader.close()
    raw_ms = statistics.median(result.raw_ms)
    what = f"{workers} workers x {span(days)}"
    _progress(f"[{b.name}] dashboard: cold {result.cold_ms:,.0f} ms, runs {_runs(result.http_ms)}")
    return [
        Figure(
            f"{b.name}: dashboard first callback, {what}",
            f"{result.http_median_ms:,.0f} ms (cold {result.cold_ms:,.0f})",
            f"same view from {result.reference}: {raw_ms:,.0f} ms",
            result.http_median_ms / raw_ms,
            f"<= {bench_dashboard.TARGET_MS:.0f} ms",
            result.fast,
        ),
        Figure(
            f"{b.name}: dashboard figure JSON, {what}",
            f"{result.figure_bytes / MB:.2f} MB",
            f"from {result.reference}: {result.raw_figure_bytes / MB:.2f} MB",
            result.figure_bytes / result.raw_figure_bytes,
            f"<= {bench_dashboard.TARGET_FIGURE_BYTES / MB:g} MB",
            result.small,
        ),
    ]


def span(days: float) -> str:
    """A range as the figures name it: "7 days", "1 day", "1 h"."""
    if days < 1:
        return f"{days * 24:g} h"
    return f"{days:g} day" + ("s" if days != 1 else "")


EXPORT_SPEED = {"sqlite": 0.5, "influxdb": 0.7}
"""Issue 26: the export at least this fraction of the store's own CSV's speed."""


def reference_export(b: Backend, start_ns: int, end_ns: int, out: Path) -> ExportRun:
    command = peak_command("bench.export_reference", *b.export_reference)
    command += [str(start_ns), str(end_ns), str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"[{b.name}] export reference failed: {done.stderr.strip()[-2000:]}")
    size = out.stat().st_size
    out.unlink()
    return ExportRun(b.name, int(done.stdout.strip()), wall, peak_rss_kib(done.stderr), size)


def export_figures(
    b: Backend, start_ns: int, rows: int, workers: int, tmp: Path
) -> tuple[list[Figure], str]:
    per_step = workers * len(fleet.FLEET_MEASUREMENTS)
    steps = -(-rows // per_step)
    end_ns = start_ns + steps * fleet.EVERY_NS
    small_end = start_ns + max(1, steps // 10) * fleet.EVERY_NS
    out = tmp / "export.csv"
    small = run_export(b.read_url, start_ns, small_end, out, b.name)
    ours = run_export(b.read_url, start_ns, end_ns, out, b.name)
    if ours.rows != steps * per_step:
        raise RuntimeError(f"[{b.name}] exported {ours.rows:,} rows, expected {steps * per_step:,}")
    ref = reference_export(b, start_ns, end_ns, out)
    grew = (ours.peak_rss_kib - small.peak_rss_kib) / MIB
    unit = "values" if b.name == "sqlite" else "rows"
    _progress(
        f"[{b.name}] export: {ours.rows:,} rows in {ours.wall_s:.1f} s, peak"
        f" {ours.peak_rss_kib / MIB:.1f} MiB; reference {ref.rows:,} {unit} in {ref.wall_s:.1f} s"
    )
    # The ratio is of speeds on the same window: the reference's time over ours. (Rows/s
    # against values/s, as this row once showed, compared different units on SQLite,
    # whose own CSV has a row per value.)
    speed = ref.wall_s / ours.wall_s
    figures = [
        Figure(
            f"{b.name}: CSV export, {ours.rows:,} rows",
            f"{ours.wall_s:.2f} s ({ours.rows_per_s:,.0f} rows/s)",
            f"the store's own CSV of the same window: {ref.wall_s:.2f} s ({ref.rows:,} {unit})",
            speed,
            f">= {EXPORT_SPEED[b.name]:g} x its speed",
            speed >= EXPORT_SPEED[b.name],
        ),
        Figure(
            f"{b.name}: CSV export peak RSS, {ours.rows:,} rows",
            f"{ours.peak_rss_kib / MIB:.1f} MiB",
            f"the store's own CSV: {ref.peak_rss_kib / MIB:.1f} MiB",
            ours.peak_rss_kib / ref.peak_rss_kib,
            f"flat: <= +{FLAT_MIB:g} MiB over a {small.rows:,}-row export",
            grew <= FLAT_MIB,
        ),
    ]
    note = (
        f"{b.name} export: {small.rows:,} rows peaked at {small.peak_rss_kib / MIB:.1f} MiB,"
        f" {ours.rows:,} rows at {ours.peak_rss_kib / MIB:.1f} MiB (+{grew:.1f} MiB);"
        f" reference wrote {ref.rows:,} {unit} ({ref.csv_bytes / 2**20:.0f} MiB of CSV)"
    )
    return figures, note


def run_backend(name: str, args: argparse.Namespace, tmp: Path) -> tuple[list[Figure], list[str]]:
    start_ns = data_start_ns(max(1, math.ceil(args.days)))
    end_ns = start_ns + int(args.days * DAY_NS)
    raw_from = None if args.raw_days is None else end_ns - int(args.raw_days * DAY_NS)
    with _BACKENDS[name](tmp) as b:
        figures, notes = [], []
        if not args.dashboard_only:
            _progress(f"[{name}] store.write of {WRITE_HOURS} h of the fleet, then bulk loader")
            figure, note = write_figure(b, start_ns, args.workers)
            figures.append(figure)
            notes.append(note)
        t0 = time.perf_counter()
        loaded = b.bulk(fleet.fleet(start_ns, args.days, args.workers), raw_from_ns=raw_from)
        load_s = time.perf_counter() - t0
        kept = "" if raw_from is None else f" (raw rows of the last {args.raw_days:g} days)"
        notes.append(f"{name} load: {loaded:,} points{kept} with the bulk loader in {load_s:.0f} s")
        _progress(notes[-1])
        if b.settle is not None:
            notes.append(f"{name}: {b.settle()}")
        if not args.dashboard_only:
            expected = args.workers * int(args.days * DAY_NS // fleet.EVERY_NS) * len(CPU.fields)
            figures.append(read_figure(b, start_ns, end_ns, expected))
        figures += dashboard_figures(b, start_ns, end_ns, args.workers, args.days, tmp)
        if not args.dashboard_only:
            export, note = export_figures(b, start_ns, args.export_rows, args.workers, tmp)
            figures += export
            notes.append(note)
    return figures, notes


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_fleet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--days", type=_positive, default=7, help="days of data (default 7)")
    parser.add_argument(
        "--hours", type=_positive, help="hours of data instead of --days (at most 23)"
    )
    parser.add_argument(
        "--raw-days",
        type=_positive,
        help="load raw rows of the last RAW_DAYS days only (tiers: every day); default: all",
    )
    parser.add_argument(
        "--dashboard-only",
        action="store_true",
        help="load, then measure the dashboard only (no write, read or export figures)",
    )
    parser.add_argument("--workers", type=int, default=32, help="workers (default 32)")
    parser.add_argument(
        "--export-rows", type=int, default=1_000_000, help="rows to export (default 1000000)"
    )
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "all"), default="all", help="store(s) (default all)"
    )
    args = parser.parse_args(argv)
    if args.hours is not None:
        if args.hours >= 24:
            parser.error("--hours must be under 24; use --days")
        args.days = args.hours / 24
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every step per backend; 0 when every target is met, 1 otherwise."""
    args = parse_args(argv)

    signal.signal(signal.SIGTERM, _terminate)
    names = BACKENDS if args.backend == "all" else (args.backend,)
    figures: list[Figure] = []
    notes: list[str] = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"bench-fleet-{name}-") as tmp:
            got, said = run_backend(name, args, Path(tmp))
        figures += got
        notes += said
        results.save("fleet", figures)  # what is done so far survives a later failure
    size = f"--hours {args.hours}" if args.hours is not None else f"--days {args.days:g}"
    command = (
        f"python -m bench.bench_fleet {size} --workers {args.workers}"
        f" --export-rows {args.export_rows} --backend {args.backend}"
        + (f" --raw-days {args.raw_days}" if args.raw_days is not None else "")
        + (" --dashboard-only" if args.dashboard_only else "")
    )
    title = "Fleet benchmark: store, dashboard, export"
    return results.report(REPORT_PATH, title, command, figures, notes)


if __name__ == "__main__":
    sys.exit(main())
