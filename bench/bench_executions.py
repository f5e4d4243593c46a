"""Executions at scale: the page's table, a search and a comparison, beside a plain scan.

Issue 25's target: with ``--executions`` executions (default 10,000), each with
``--metrics`` list metrics (10) of ``--steps`` steps (100) and one simple metric,
spread over 30 days, the Executions page's table read, a filter search on a metric
and the comparison of 5 executions each stay under 1 s, on each store. The
reference is a plain scan of the same data: every list-metric point of the window
streamed out of the store and reduced in Python, which is the least a reader without
summaries must do.

Figures (median of ``--runs`` after one untimed run, in ms):

- table: what the Executions page reads for its first view (:func:`page_read`): every
  execution of the window listed (start, end, tags), the parallel-coordinates chart of
  the newest 1,000 with its metric, and the first page of 25 with every metric and
  resource;
- search: the same with the filter ``metric.accuracy > 0.5 and list.m3.max > 0.9`` in
  the page's filter box (the two metrics it names are read for every execution in the
  window, to decide);
- comparison: the table with 5 executions compared (their list metrics' every value,
  events and resource curves on top).

Also reported, without a target: ``search_executions`` of the SDK with that filter and no
limit (every one of the ~5,900 executions that pass, with all their metrics).

The data are written with ``store.write`` (the agent's own path), into a fresh SQLite
file and a throwaway ``influxd``. Run ``python -m bench.bench_executions`` (or
``scripts/bench executions``); the report goes to ``bench/out/executions.md`` and the
exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bench import results
from bench.bench_store import (
    OUT_DIR,
    influxdb_store,
    machine,
    markdown_report,
    sqlite_store,
    text_table,
)
from bench.results import Figure
from fleetgauge.catalogue import Point
from fleetgauge.dashboard import figures
from fleetgauge.dashboard.data.executions import PAGE_SIZE, read_executions_view, read_page
from fleetgauge.read import executions as ex
from fleetgauge.read.filters import read_matching
from fleetgauge.stores import Store, open_store

__all__ = ["main"]

REPORT_PATH = OUT_DIR / "executions.md"
TARGET_MS = 1000.0
S = 1_000_000_000
DAY = 86_400 * S
SEARCH = "metric.accuracy > 0.5 and list.m3.max > 0.9"
HEADERS = ("figure", "value", "reference (same run)", "ratio", "target", "result")
MACHINE_KEYS = ("CPUs (nproc)", "CPU model", "RAM", "OS", "Python", "SQLite", "influxd")


def batches(
    now_ns: int, executions: int, metrics: int, steps: int, size: int = 50_000
) -> Iterator[list[Point]]:
    """The executions' points in batches: start, list metrics, one simple metric, end."""
    first = now_ns - 29 * DAY
    every = 29 * DAY // executions
    batch: list[Point] = []
    for k in range(executions):
        t = first + k * every
        tags = {
            "environment": "bench",
            "worker": f"worker-{k % 16:02d}",
            "pipeline": "train",
            "execution_id": f"run-{k:06d}",
        }
        inputs = {"learning_rate": 0.01 * (k % 3 + 1), "batch_size": 32 * (k % 4 + 1)}
        batch.append(Point("execution", tags, {"inputs": json.dumps(inputs)}, t))
        for m in range(metrics):
            series = {**tags, "metric": f"m{m}"}
            for s in range(steps):
                value = (k * 7 + m * 13 + s) % 97 / 97
                batch.append(Point("list_metric", series, {"value": value, "step": s}, t + s * S))
        accuracy = {**tags, "metric": "accuracy"}
        batch.append(Point("pipeline_metric", accuracy, {"value": (k % 89) / 89}, t + steps * S))
        batch.append(Point("execution_end", tags, {"status": "succeeded"}, t + (steps + 1) * S))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def plain_scan(store: Store, start_ns: int, end_ns: int) -> int:
    """Every list-metric point of the window, reduced per series in Python; series seen."""
    reduced: dict[tuple, list[float]] = {}
    for p in store.stream_points("list_metric", start_ns, end_ns):
        key = (p.tags["execution_id"], p.tags["metric"])
        value = float(p.fields["value"])
        r = reduced.get(key)
        if r is None:
            reduced[key] = [1, value, value, value]
        else:
            r[0] += 1
            r[1] += value
            r[2] = min(r[2], value)
            r[3] = max(r[3], value)
    return len(reduced)


def page_read(
    store: Store,
    start_ns: int,
    end_ns: int,
    where: str | None = None,
    compared: Sequence[str] = (),
    sort: tuple[str, bool] | None = None,
) -> int:
    """What the Executions page's first callback reads and draws (its store part, without
    Dash): the view, the parallel-coordinates figure and the first page; rows shown."""
    view = read_executions_view(store, start_ns, end_ns, None, None, None, compared, where)
    inputs = [c for c in ex.columns_of(view.records) if c.startswith("input.")]
    figures.parallel_figure(view.drawn, inputs[:8], view.by, ex.cell)
    shown, _ = read_page(store, view.records, 0, PAGE_SIZE, sort)
    return len(shown)


def once(fn: Callable[[], object]) -> float:
    """Milliseconds of one call."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def timed(fn: Callable[[], object], runs: int) -> float:
    """Median milliseconds of ``runs`` calls after one untimed call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(store: Store, args: argparse.Namespace) -> dict[str, float]:
    """Load the executions into ``store``; the figures in ms."""
    now = time.time_ns()
    t0 = time.perf_counter()
    points = 0
    for batch in batches(now, args.executions, args.metrics, args.steps):
        store.write(batch)
        points += len(batch)
    settle = getattr(store, "settle", None)
    if settle is not None:
        settle()
    loaded = time.perf_counter() - t0
    print(f"  loaded {points:,} points in {loaded:.0f} s", flush=True)
    # read as the dashboard reads: its own store object (on InfluxDB not through the
    # relay), in a process that holds no writer's caches (they are dropped here)
    store.forget_idle()
    store.forget_idle()
    gc.collect()
    reader = open_store(getattr(store, "read_url", store.url))
    try:
        figures = _figures(reader, now, args)
    finally:
        reader.close()
    figures.update(load_s=loaded, points=float(points))
    for name in ("table", "search", "comparison", "all_matches", "scan"):
        print(f"  {name}: {figures[name]:,.0f} ms", flush=True)
    return figures


def _figures(store: Store, now: int, args: argparse.Namespace) -> dict[str, float]:
    """The timed reads, in ms."""
    start, end = now - 30 * DAY, now + S
    compared = tuple(f"run-{k:06d}" for k in range(args.executions - 5, args.executions))
    figures = {
        "table": timed(lambda: page_read(store, start, end), args.runs),
        "search": timed(lambda: page_read(store, start, end, SEARCH), args.runs),
        "all_matches": timed(lambda: read_matching(store, start, end, SEARCH), 1),
        "comparison": timed(lambda: page_read(store, start, end, compared=compared), args.runs),
        "scan": once(lambda: plain_scan(store, start, end)),  # 40 s: no untimed run
    }
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=10_000, help="(default 10,000)")
    parser.add_argument("--metrics", type=int, default=10, help="list metrics each (10)")
    parser.add_argument("--steps", type=int, default=100, help="steps per list metric (100)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per figure (3)")
    parser.add_argument(
        "--store", choices=("sqlite", "influxdb", "both"), default="both", help="(both)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met."""
    args = parse_args(argv)
    backends = ("sqlite", "influxdb") if args.store == "both" else (args.store,)
    rows, saved, passed = [], [], True
    every_match: list[tuple[str, float]] = []
    size = f"{args.executions:,} executions x {args.metrics} x {args.steps} steps"
    for name in backends:
        print(f"[{name}] {size}", flush=True)
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
            opener = sqlite_store if name == "sqlite" else influxdb_store
            store = stack.enter_context(opener(Path(tmp)))
            f = measure(store, args)
        every_match.append((name, f["all_matches"]))
        for figure in ("table", "search", "comparison"):
            ok = f[figure] <= TARGET_MS
            passed = passed and ok
            label = f"{name}: executions {figure}, {size}"
            reference = f"plain scan of the list points: {f['scan']:,.0f} ms"
            ratio = f[figure] / f["scan"] if f["scan"] else None
            rows.append(
                [
                    label,
                    f"{f[figure]:,.0f} ms",
                    reference,
                    "-" if ratio is None else f"{ratio:.3f}",
                    f"<= {TARGET_MS:,.0f} ms",
                    "PASS" if ok else "FAIL",
                ]
            )
            saved.append(Figure(label, f"{f[figure]:,.0f} ms", reference, ratio, "<= 1 s", ok))
    command = (
        f"python -m bench.bench_executions --executions {args.executions} --metrics"
        f" {args.metrics} --steps {args.steps} --runs {args.runs} --store {args.store}"
    )
    info = [(k, v) for k, v in machine() if k in MACHINE_KEYS]
    notes = [
        "table: what the Executions page reads for its first view (every execution listed,"
        " the chart of the newest 1,000 and the first page of 25 with every metric); search:"
        f" the same with `{SEARCH}` in the filter box; comparison:"
        " the table plus 5 executions compared",
        *(
            f"{name}: search_executions with that filter and no limit (every execution that"
            f" passes, all its metrics; no target): {ms:,.0f} ms"
            for name, ms in every_match
        ),
        "reference: every list-metric point of the 30-day window streamed and reduced per"
        " series in Python (one run)",
        f"data written with store.write; median of {args.runs} runs after one untimed run",
    ]
    print(text_table(HEADERS, rows))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(
        markdown_report("Executions at scale", command, "", HEADERS, rows, notes, info)
    )
    results.save("executions", saved)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
