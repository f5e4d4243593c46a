"""Export benchmark: rows/s and peak RSS of ``fleetgauge export`` as the row count grows.

For each backend (SQLite by default; ``--backend influxdb`` or ``all`` adds a
throwaway ``influxd`` behind the v2 write front, as ``bench_store`` does) it

1. loads ``--rows`` ``cpu`` points (5 fields, ``--workers`` workers every 10 s,
   the generator of ``bench_store``) with ``store.write`` in batches of 5000;
2. runs ``python -m agent export resources --out FILE`` as a child process over
   windows holding none, 1 %, 10 % and all of the rows, and reads the child's
   own peak RSS (``VmHWM``, reported by the child as it exits) and wall time.

The export streams, so its peak RSS must not grow with the rows: the run over
all rows passes when its peak is within ``FLAT_MIB`` of the 1 % run's. The
0-row run shows what the interpreter and the imports alone take.

Run ``python -m bench.bench_export`` from the repository root (``--rows
100000`` for a quick run). The table is printed and written as markdown to
``bench/out/export.md``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.bench_store import (
    BACKENDS,
    OUT_DIR,
    REPO,
    generate_batches,
    influxdb_store,
    machine,
    markdown_report,
    sqlite_store,
    text_table,
)
from fleetgauge.catalogue import CPU, Point
from fleetgauge.stores import Store
from fleetgauge.timeutil import format_time

__all__ = ["main", "ExportRun", "run_export"]

REPORT_PATH = OUT_DIR / "export.md"
NS_PER_S = 1_000_000_000
SAMPLE_EVERY_NS = 10 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S
START_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z: a fixed, closed past
SHARES = (0.0, 0.01, 0.1, 1.0)
FLAT_MIB = 5.0
OPENERS = {"sqlite": sqlite_store, "influxdb": influxdb_store}
_ROWS_LINE = re.compile(r"^(\d+) rows of ", re.MULTILINE)
_PEAK_LINE = re.compile(r"^peak_rss_kib=(\d+)$", re.MULTILINE)
# Runs ``python -m MODULE ARGS`` and prints the process's own peak RSS (VmHWM) on exit.
# Not ru_maxrss: on Linux that keeps the high-water mark of the parent it was forked
# from across exec, so a child of a big benchmark process would report the parent's size.
_PEAK_WRAPPER = """
import atexit, runpy, sys
def _peak():
    for text in open("/proc/self/status"):
        if text.startswith("VmHWM:"):
            print("peak_rss_kib=" + text.split()[1], file=sys.stderr, flush=True)
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def peak_command(module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args`` and reports its peak RSS on stderr."""
    return [sys.executable, "-c", _PEAK_WRAPPER, module, *args]


def peak_rss_kib(stderr: str) -> int:
    """The peak RSS a ``peak_command`` child reported."""
    match = _PEAK_LINE.search(stderr)
    if not match:
        raise RuntimeError(f"the child reported no peak RSS: {stderr.strip()[-500:]}")
    return int(match.group(1))


@dataclass
class ExportRun:
    """One child ``fleetgauge export``: rows written, wall seconds, peak RSS, CSV size."""

    backend: str
    rows: int
    wall_s: float
    peak_rss_kib: int
    csv_bytes: int

    @property
    def rows_per_s(self) -> float:
        """Rows written per second of the child's wall time (start-up included)."""
        return self.rows / self.wall_s if self.wall_s else 0.0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def points(rows: int, workers: int) -> Iterator[list[Point]]:
    """Exactly ``rows`` cpu points in time order, in batches of 5000."""
    samples = -(-rows // workers)
    days = -(-samples * SAMPLE_EVERY_NS // DAY_NS)
    left = rows
    for batch in generate_batches(START_NS, days, workers):
        batch = batch[:left]
        yield batch
        left -= len(batch)
        if not left:
            return


def load(store: Store, name: str, rows: int, workers: int) -> float:
    """Write the points; returns the points per second of the whole load."""
    t0 = time.perf_counter()
    written = 0
    for batch in points(rows, workers):
        store.write(batch)
        written += len(batch)
        if written % 200_000 < len(batch):
            _progress(f"  [{name}] {written:,} points, {time.perf_counter() - t0:.1f} s")
    return rows / (time.perf_counter() - t0)


def run_export(store_url: str, start_ns: int, end_ns: int, out: Path, backend: str) -> ExportRun:
    """Run one child export of [start_ns, end_ns) into ``out`` and measure it."""
    command = peak_command("fleetgauge", "export", "resources", "--store", store_url)
    command += ["--start", format_time(start_ns), "--end", format_time(end_ns), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    with proc.stderr:
        message = proc.stderr.read()
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode or not (match := _ROWS_LINE.search(message)):
        raise RuntimeError(f"export failed ({proc.returncode}): {message.strip()}")
    size = out.stat().st_size
    out.unlink()
    return ExportRun(backend, int(match.group(1)), wall, peak_rss_kib(message), size)


def window(share: float, rows: int, workers: int) -> tuple[int, int, int]:
    """Start, end and expected rows of the export of ``share`` of the data (0: none)."""
    if not share:
        return START_NS - 3600 * NS_PER_S, START_NS, 0
    samples = -(-round(rows * share) // workers)
    return START_NS, START_NS + samples * SAMPLE_EVERY_NS, min(rows, samples * workers)


def bench_backend(name: str, store: Store, rows: int, workers: int, tmp: Path) -> list[ExportRun]:
    """Load ``rows`` points, then export growing windows of them in child processes."""
    _progress(f"[{name}] writing {rows:,} cpu points ({workers} workers, every 10 s)")
    rate = load(store, name, rows, workers)
    _progress(f"[{name}] loaded at {rate:,.0f} points/s")
    runs = []
    for share in SHARES:
        start, end, expected = window(share, rows, workers)
        run = run_export(store.url, start, end, tmp / "export.csv", name)
        if run.rows != expected:
            raise RuntimeError(f"[{name}] exported {run.rows} rows, expected {expected}")
        _progress(
            f"[{name}] {run.rows:>9,} rows: {run.wall_s:6.2f} s, {run.rows_per_s:>9,.0f} rows/s,"
            f" peak RSS {run.peak_rss_kib / 1024:6.1f} MiB"
        )
        runs.append(run)
    return runs


def flat(runs: Sequence[ExportRun]) -> bool:
    """The run over all rows peaks within FLAT_MIB of the 1 % run."""
    one_percent, everything = runs[SHARES.index(0.01)], runs[-1]
    return (everything.peak_rss_kib - one_percent.peak_rss_kib) / 1024 <= FLAT_MIB


HEADERS = ("backend", "rows", "CSV MiB", "wall (s)", "rows/s", "peak RSS (MiB)")


def table_rows(runs: Sequence[ExportRun]) -> list[list[str]]:
    """One table row per child export."""
    return [
        [
            r.backend,
            f"{r.rows:,}",
            f"{r.csv_bytes / 1024**2:,.1f}",
            f"{r.wall_s:.2f}",
            f"{r.rows_per_s:,.0f}",
            f"{r.peak_rss_kib / 1024:.1f}",
        ]
        for r in runs
    ]


def verdicts(results: dict[str, list[ExportRun]]) -> list[str]:
    """One line per backend: the peak RSS growth from the 1 % run to all rows."""
    lines = []
    for name, runs in results.items():
        one, everything = runs[SHARES.index(0.01)], runs[-1]
        growth = (everything.peak_rss_kib - one.peak_rss_kib) / 1024
        lines.append(
            f"{name}: peak RSS {one.peak_rss_kib / 1024:.1f} MiB at {one.rows:,} rows,"
            f" {everything.peak_rss_kib / 1024:.1f} MiB at {everything.rows:,} rows"
            f" ({growth:+.1f} MiB; flat within {FLAT_MIB:g} MiB: "
            f"{'PASS' if flat(runs) else 'FAIL'})"
        )
    return lines


def markdown(args: argparse.Namespace, results: dict[str, list[ExportRun]]) -> str:
    """The report: command, data, table, verdicts and machine."""
    runs = list(itertools.chain.from_iterable(results.values()))
    return markdown_report(
        "Export benchmark",
        f"python -m bench.bench_export --rows {args.rows} --workers {args.workers}"
        f" --backend {args.backend}",
        f"Data: `{CPU.name}`, {len(CPU.field_names)} fields, {args.workers} workers every"
        " 10 s. Each row is one child `python -m agent export resources --out FILE`"
        " over a window holding that many rows; rows/s counts the child's whole wall time"
        " (interpreter start-up included); peak RSS is the child's own `VmHWM`,"
        " read as it exits.",
        HEADERS,
        table_rows(runs),
        verdicts(results),
        machine(),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_export", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--workers", type=int, default=32, help="workers (default 32)")
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "all"), default="sqlite", help="backend(s) to run"
    )
    args = parser.parse_args(argv)
    if args.rows < 100 or args.workers < 1:
        parser.error("--rows must be at least 100 and --workers at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every backend's export memory stayed flat, 1 otherwise."""
    args = parse_args(argv)
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    results: dict[str, list[ExportRun]] = {}
    for name in backends:
        with (
            tempfile.TemporaryDirectory(prefix=f"fleetgauge-bench-export-{name}-") as tmp,
            OPENERS[name](Path(tmp)) as store,
        ):
            results[name] = bench_backend(name, store, args.rows, args.workers, Path(tmp))
    runs = list(itertools.chain.from_iterable(results.values()))
    print()
    print(text_table(HEADERS, table_rows(runs)))
    print()
    for line in verdicts(results):
        print(line)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown(args, results))
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0 if all(flat(r) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
