"""Store benchmark: write throughput and bucketed-read latency of both backends.

For each backend (SQLite in a temporary directory; InfluxDB as a throwaway
``influxd`` 1.x plus the v2 write front from ``tests/influx_server.py``) it

1. loads ``workers`` x ``days`` of 10-second ``cpu`` points (5 fields) with
   ``store.write`` in batches of 5000, generated lazily in time order, and
   reports points/s over the time spent inside ``store.write`` only (the
   store maintains the rollup tiers as part of each write), plus the wall
   time of the whole load;
2. once the server is idle (influxd merges its files for a while after a fast
   load; a dashboard reads data that has long settled), reads the whole range
   with ``read_buckets(..., max_points=1008,
   group_by=["worker"])``: the planned tier (median of 5 after a warm-up) and
   the same buckets from raw points (``level="raw"``, median of 3), checks
   that both answers count the same values per bucket, and compares the tier
   read with the 300 ms target.

The data is a backfill: it ends at the last UTC midnight, so every tier bucket
is already closed by the time a batch is committed (see ``agent/stores/tiers.py``)
and a bucket that straddles two batches is stored as two generations (about
1.4 rows per 10-minute bucket here; a live agent writes about one).

Run ``python -m bench.bench_store`` from the repository root (or
``scripts/bench``); ``--days 1 --workers 4`` gives a quick run. The table is
printed and written as markdown to ``bench/out/store.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import math
import os
import platform
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fleetgauge.catalogue import CPU, ENVIRONMENT, WORKER, Point
from fleetgauge.stores import Store, StoreUnavailable, open_store
from fleetgauge.stores.buckets import Buckets

__all__ = ["main", "BackendResult", "generate_batches"]

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out"
REPORT_PATH = OUT_DIR / "store.md"

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
SAMPLE_EVERY_NS = 10 * NS_PER_S
BATCH_SIZE = 5000
MAX_POINTS = 1008
TARGET_MS = 300.0
TIER_RUNS, RAW_RUNS = 5, 3
WRITE_ATTEMPTS = 5
INFLUX_DATABASE = "bench"
BACKENDS = ("sqlite", "influxdb")

T = TypeVar("T")


# --- data ---------------------------------------------------------------------
def data_start_ns(days: int, now_ns: int | None = None) -> int:
    """Start of the loaded range: ``days`` before the last UTC midnight."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    return (now_ns // DAY_NS - days) * DAY_NS


def generate_batches(
    start_ns: int, days: int, workers: int, batch_size: int = BATCH_SIZE
) -> Iterator[list[Point]]:
    """Yield ``cpu`` points in time order (every worker per timestamp), ``batch_size`` at a time.

    Values are deterministic: a daily sine per worker plus noise from a 31-bit
    LCG; the load averages follow ``load1`` with exponential smoothing.
    """
    usage_f, load1_f, load5_f, load15_f, count_f = CPU.field_names
    tags = [{ENVIRONMENT: "bench", WORKER: f"worker-{w:02d}"} for w in range(workers)]
    cores = [float(8 << (w % 4)) for w in range(workers)]
    phase = [w * 0.7 for w in range(workers)]
    load5 = [0.0] * workers
    load15 = [0.0] * workers
    state = 20_240_601
    omega = 2 * math.pi * SAMPLE_EVERY_NS / DAY_NS
    batch: list[Point] = []
    for step in range(days * DAY_NS // SAMPLE_EVERY_NS):
        t = start_ns + step * SAMPLE_EVERY_NS
        for w in range(workers):
            state = (state * 1_103_515_245 + 12_345) & 0x7FFF_FFFF
            noise = state / 0x8000_0000 - 0.5
            wave = 50.0 + 35.0 * math.sin(step * omega + phase[w])
            usage = min(100.0, max(0.0, wave + 30.0 * noise))
            load1 = usage / 100.0 * cores[w] * (0.9 + 0.2 * noise)
            load5[w] += (load1 - load5[w]) * 0.033
            load15[w] += (load1 - load15[w]) * 0.011
            fields = {
                usage_f: usage,
                load1_f: load1,
                load5_f: load5[w],
                load15_f: load15[w],
                count_f: cores[w],
            }
            batch.append(Point(CPU.name, tags[w], fields, t))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


# --- measurements ---------------------------------------------------------------
@dataclass
class WriteStats:
    """Outcome of one load: points, seconds inside ``store.write``, wall seconds, retries."""

    points: int = 0
    batches: int = 0
    write_s: float = 0.0
    wall_s: float = 0.0
    retries: int = 0

    @property
    def points_per_s(self) -> float:
        """Points written per second of ``store.write`` time."""
        return self.points / self.write_s if self.write_s else 0.0


@dataclass
class BackendResult:
    """Everything measured on one backend."""

    backend: str
    write: WriteStats
    level: str = ""
    step_ns: int = 0
    series: int = 0
    points_per_series: int = 0
    tier_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    disk_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def tier_median_ms(self) -> float:
        """Median tier read time."""
        return statistics.median(self.tier_ms) if self.tier_ms else math.nan

    @property
    def raw_median_ms(self) -> float:
        """Median raw-scan read time."""
        return statistics.median(self.raw_ms) if self.raw_ms else math.nan

    @property
    def passed(self) -> bool:
        """Tier read within target, from a rollup tier, and no warning raised."""
        return self.tier_median_ms <= TARGET_MS and self.level != "raw" and not self.warnings


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write(store: Store, batch: list[Point], stats: WriteStats) -> None:
    """Write one batch, retrying ``StoreUnavailable`` (e.g. a full influxd cache) with backoff."""
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            store.write(batch)
            return
        except StoreUnavailable as e:
            if attempt == WRITE_ATTEMPTS:
                raise
            stats.retries += 1
            _progress(f"  write failed ({e}); retry {attempt} of {WRITE_ATTEMPTS - 1}")
            time.sleep(0.5 * attempt)


def load(store: Store, name: str, start_ns: int, days: int, workers: int) -> WriteStats:
    """Write all batches; only the ``store.write`` calls count towards points/s."""
    stats = WriteStats()
    total = days * (DAY_NS // SAMPLE_EVERY_NS) * workers
    next_report = 0.1
    wall0 = time.perf_counter()
    for batch in generate_batches(start_ns, days, workers):
        t0 = time.perf_counter()
        _write(store, batch, stats)
        stats.write_s += time.perf_counter() - t0
        stats.points += len(batch)
        stats.batches += 1
        if stats.points >= next_report * total:
            _progress(
                f"  [{name}] {stats.points / total:4.0%} {stats.points:>9,} points,"
                f" {stats.points_per_s:,.0f} points/s,"
                f" {time.perf_counter() - wall0:.1f} s elapsed"
            )
            next_report += 0.1
    stats.wall_s = time.perf_counter() - wall0
    return stats


def timed(fn: Callable[[], T], runs: int, warmup: int = 0) -> tuple[list[float], T]:
    """Milliseconds of ``runs`` calls of ``fn`` after ``warmup`` untimed calls, and its answer."""
    answer = fn() if warmup else None
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = fn()
        times.append((time.perf_counter() - t0) * 1000)
    assert answer is not None
    return times, answer


def bucket_counts(result: Buckets) -> dict[tuple[Any, ...], int]:
    """Non-zero value counts keyed by (group tags, bucket start, field)."""
    counts: dict[tuple[Any, ...], int] = {}
    for s in result.series:
        key = tuple(sorted(s.tags.items()))
        for name, fb in s.fields.items():
            for t, n in zip(s.times, fb.count, strict=True):
                if n:
                    counts[(key, t, name)] = n
    return counts


def compare(tier: Buckets, raw: Buckets, expected_values: int) -> list[str]:
    """Warnings where the tier answer and the raw scan disagree on counts (none if equal)."""
    warnings = []
    a, b = bucket_counts(tier), bucket_counts(raw)
    sum_a, sum_b = sum(a.values()), sum(b.values())
    if sum_a != sum_b:
        warnings.append(f"sum of counts differs: tier {sum_a:,} vs raw scan {sum_b:,}")
    differing = sum(1 for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if differing:
        warnings.append(f"{differing:,} (series, bucket, field) counts differ tier vs raw scan")
    if sum_b != expected_values:
        warnings.append(f"raw scan counts {sum_b:,} values, {expected_values:,} were written")
    return warnings


def profiled(enabled: bool, path: Path, title: str) -> contextlib.AbstractContextManager[Any]:
    """cProfile the block into ``path`` and print its top functions, when enabled."""
    if not enabled:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def run() -> Iterator[None]:
        profile = cProfile.Profile()
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            path.parent.mkdir(parents=True, exist_ok=True)
            profile.dump_stats(path)
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(20)
            _progress(f"--- profile {title} (by own time; full stats in {path}) ---")
            _progress(text.getvalue())

    return run()


def bench_backend(
    name: str, store: Store, days: int, workers: int, data_dir: Path, profile: bool
) -> BackendResult:
    """Load the data into ``store``, then time the tier read and the raw scan."""
    start = data_start_ns(days)
    end = start + days * DAY_NS
    _progress(f"[{name}] writing {days * (DAY_NS // SAMPLE_EVERY_NS) * workers:,} points")
    with profiled(profile, OUT_DIR / f"store-{name}-write.prof", f"{name} write"):
        stats = load(store, name, start, days, workers)
    result = BackendResult(name, stats)
    _progress(
        f"[{name}] {stats.points:,} points in {stats.write_s:.1f} s of writes"
        f" ({stats.points_per_s:,.0f} points/s), {stats.wall_s:.1f} s wall"
    )

    settle = getattr(store, "settle", None)
    if settle is not None:
        _progress(f"[{name}] {settle()}")

    def read(level: str | None = None) -> Buckets:
        return store.read_buckets(
            CPU.name, CPU.field_names, start, end, MAX_POINTS, group_by=[WORKER], level=level
        )

    with profiled(profile, OUT_DIR / f"store-{name}-read.prof", f"{name} tier read"):
        result.tier_ms, tier = timed(read, TIER_RUNS, warmup=1)
    result.level, result.step_ns = tier.level, tier.step_ns
    result.series = len(tier.series)
    result.points_per_series = max((len(s.times) for s in tier.series), default=0)
    _progress(
        f"[{name}] tier read: level {tier.level}, {result.series} series x"
        f" {result.points_per_series} points, runs (ms) {_runs(result.tier_ms)}"
    )
    result.raw_ms, raw = timed(lambda: read("raw"), RAW_RUNS)
    _progress(f"[{name}] raw scan: runs (ms) {_runs(result.raw_ms)}")
    result.warnings = compare(tier, raw, stats.points * len(CPU.field_names))
    if tier.level == "raw":
        result.warnings.append("the planned read used raw points, not a rollup tier")
    if result.points_per_series > MAX_POINTS:
        result.warnings.append(f"{result.points_per_series} points per series > {MAX_POINTS}")
    for w in result.warnings:
        _progress(f"[{name}] WARNING: {w}")
    result.disk_bytes = _du(data_dir)
    return result


# --- backends -------------------------------------------------------------------
@contextlib.contextmanager
def sqlite_store(tmp: Path) -> Iterator[Store]:
    """A fresh SQLite store in ``tmp``."""
    store = open_store(f"sqlite:///{tmp / 'bench.db'}")
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def influx_and_front(tmp: Path, databases: Sequence[str]) -> Iterator[tuple[Any, Any]]:
    """A throwaway ``influxd`` in ``tmp`` holding ``databases``, behind the v2 write front.

    Yields (the test suite's ``InfluxServer``, its ``V2WriteFront``). The front also
    relays /query: it gets room for a raw scan.
    """
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from influx_server import InfluxServer, V2WriteFront
    finally:
        sys.path.remove(str(REPO / "tests"))
    with InfluxServer(tmp) as server, V2WriteFront(server.url, timeout=600.0) as front:
        for name in databases:
            server.create_database(name)
        yield server, front


@contextlib.contextmanager
def influxdb_store(tmp: Path) -> Iterator[Store]:
    """A throwaway ``influxd`` in ``tmp`` behind the v2 write front, and a store on it."""
    with contextlib.ExitStack() as stack:
        server, front = stack.enter_context(influx_and_front(tmp, [INFLUX_DATABASE]))
        store = open_store(f"influxdb+{front.url}/{INFLUX_DATABASE}?org=bench&timeout=60")
        stack.callback(store.close)
        store.settle = lambda: wait_idle(server._proc.pid)  # type: ignore[attr-defined]
        # Readers that never write (the dashboard) can skip the relay, as on InfluxDB 2.x.
        store.read_url = (  # type: ignore[attr-defined]
            f"influxdb+{server.url}/{INFLUX_DATABASE}?org=bench&timeout=60"
        )
        yield store


def wait_idle(pid: int, below: float = 0.05, timeout: float = 180.0) -> str:
    """Wait until ``pid`` uses under ``below`` of a core over 2 s (influxd compacting).

    A week loaded in under a minute leaves influxd merging files for a while
    after the last write; a dashboard reads data that has long settled, so the
    reads are timed once the server is idle. Returns what it waited.
    """
    started = time.monotonic()

    def cpu_s() -> float:
        text = Path(f"/proc/{pid}/stat").read_text()
        utime, stime = text[text.rindex(")") + 2 :].split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    while time.monotonic() - started < timeout:
        before = cpu_s()
        time.sleep(2.0)
        if cpu_s() - before < below * 2.0:
            return f"server idle after {time.monotonic() - started:.0f} s"
    return f"server still busy after {timeout:.0f} s: reading anyway"


_OPENERS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "influxdb": influxdb_store,
}


# --- machine and report -------------------------------------------------------------
def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _runs(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def _cpuinfo_model() -> str:
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for text in Path("/proc/meminfo").read_text().splitlines():
            if text.startswith("MemTotal:"):
                return f"{int(text.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def _influxd_version() -> str:
    if shutil.which("influxd") is None:
        return "not installed"
    try:
        out = subprocess.run(
            ["influxd", "version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    return out.stdout.strip() or out.stderr.strip() or "unknown"


def machine() -> list[tuple[str, str]]:
    """Description of the machine the numbers come from."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        ("CPUs (nproc)", f"{usable} (of {os.cpu_count()})"),
        ("CPU model", _cpuinfo_model()),
        ("RAM", _ram()),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("influxd", _influxd_version()),
    ]


HEADERS = (
    "backend",
    "points",
    "write points/s",
    "load wall (s)",
    "read ms (tier, level)",
    "read ms (raw scan)",
    "speed-up",
    f"target (<= {TARGET_MS:.0f} ms)",
    "result",
)


def table_rows(results: Sequence[BackendResult]) -> list[list[str]]:
    """One row of the summary table per backend."""
    rows = []
    for r in results:
        tier, raw = r.tier_median_ms, r.raw_median_ms
        rows.append(
            [
                r.backend,
                f"{r.write.points:,}",
                f"{r.write.points_per_s:,.0f}",
                f"{r.write.wall_s:.1f}",
                f"{tier:.1f} ({r.level})",
                f"{raw:,.0f}",
                f"{raw / tier:.0f}x" if tier else "-",
                "met" if tier <= TARGET_MS else "missed",
                "PASS" if r.passed else "FAIL",
            ]
        )
    return rows


def detail_lines(results: Sequence[BackendResult]) -> list[str]:
    """Per-backend details that do not fit the table."""
    lines = []
    for r in results:
        w = r.write
        lines.append(
            f"{r.backend}: {w.batches} batches, {w.write_s:.1f} s in store.write"
            f" ({w.wall_s - w.write_s:.1f} s generating), {w.retries} retries;"
            f" read {r.series} series x {r.points_per_series} points"
            f" (step {r.step_ns // NS_PER_S} s, level {r.level});"
            f" tier runs ms [{_runs(r.tier_ms)}], raw runs ms [{_runs(r.raw_ms)}];"
            f" data on disk {r.disk_bytes / 1024**2:,.0f} MiB"
        )
        lines.extend(f"{r.backend}: WARNING {text}" for text in r.warnings)
    return lines


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table."""
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A fixed-width table with a rule under the header."""
    widths = [max(len(c) for c in col) for col in zip(headers, *rows, strict=True)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt.format(*headers), rule, *(fmt.format(*row) for row in rows)])


def markdown_report(
    title: str,
    command: str,
    intro: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    notes: Sequence[str],
    info: Sequence[tuple[str, str]],
) -> str:
    """A benchmark report: title, the command, what was measured, table, notes, machine."""
    out = [f"# {title}", "", f"`{command}`", ""]
    if intro:
        out += [intro, ""]
    out += [*markdown_table(headers, rows), "", *(f"- {text}" for text in notes), ""]
    out += ["## Machine", "", *(f"- {k}: {v}" for k, v in info), ""]
    return "\n".join(out)


def markdown(
    args: argparse.Namespace, results: Sequence[BackendResult], info: list[tuple[str, str]]
) -> str:
    """The report as markdown: parameters, table, details and machine."""
    return markdown_report(
        "Store benchmark",
        f"python -m bench.bench_store --days {args.days} --workers {args.workers}"
        f" --backend {args.backend}{' (profiled: timings inflated)' if args.profile else ''}",
        f"Data: `{CPU.name}`, {len(CPU.field_names)} fields, {args.workers} workers,"
        f" {args.days} days every {SAMPLE_EVERY_NS // NS_PER_S} s, batches of {BATCH_SIZE}."
        f" Read: whole range, max_points={MAX_POINTS}, group_by=worker; tier = median of"
        f" {TIER_RUNS} after 1 warm-up, raw scan = median of {RAW_RUNS}.",
        HEADERS,
        table_rows(results),
        detail_lines(results),
        info,
    )


# --- main ---------------------------------------------------------------------------
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_store", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--days", type=_positive, default=7, help="days of data (default 7)")
    parser.add_argument("--workers", type=_positive, default=32, help="workers (default 32)")
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "all"), default="all", help="backend(s) to run"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the load and the tier reads (bench/out/store-*.prof); inflates timings",
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every backend passed, 1 otherwise."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # clean up as on Ctrl-C
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    if "influxdb" in backends and shutil.which("influxd") is None:
        if args.backend != "all":
            _progress("influxd not found: install it (apt-get install influxdb)")
            return 2
        _progress("influxd not found: skipping the InfluxDB backend")
        backends.remove("influxdb")
    info = machine()
    results = []
    try:
        for name in backends:
            with (
                tempfile.TemporaryDirectory(prefix=f"fleetgauge-bench-{name}-") as tmp,
                _OPENERS[name](Path(tmp)) as store,
            ):
                results.append(
                    bench_backend(name, store, args.days, args.workers, Path(tmp), args.profile)
                )
    except KeyboardInterrupt:  # the with blocks above have stopped servers and removed files
        _progress("interrupted: stores closed, influxd stopped, temporary files removed")
        return 130
    print()
    print(text_table(HEADERS, table_rows(results)))
    print()
    for text in detail_lines(results):
        print(text)
    print()
    for k, v in info:
        print(f"{k}: {v}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown(args, results, info))
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
