"""Every benchmark, one table: ``scripts/bench`` (``python -m bench.suite``).

Runs, each as a child process with the parameters below, and in this order:

- ``bench_sdk``: SDK per-call cost against ``prometheus_client``;
- ``bench_import``: ``import fleetgauge`` (time, RSS) and the base install's size, against
  ``prometheus_client``'s;
- ``bench_agent``: agent CPU and memory against ``node_exporter`` and Glances, side by side;
- ``bench_push``: values/s from the SDK through the agent into a real ``influxd``,
  against raw ``/write`` of pre-built batches and influxdb-client's batching;
- ``bench_fleet``: per store, ``store.write`` points/s, bucketed-read latency,
  the dashboard's first callback and payload for 32 workers x 7 days, and CSV
  export rows/s and peak RSS, each against its reference;
- ``bench_gpu``: the GPU collector's own CPU per sample of 8 GPUs on the fake NVML (the
  comparison with ``nvidia-smi`` needs a real GPU).

``scripts/bench --scale`` (``python -m bench.suite --scale``, about 35 minutes) runs the
fleet-scale group instead, written to ``bench/RESULTS-scale.md``: the dashboard alone
(``bench_fleet --dashboard-only``) at 256 workers x 1 day, 32 workers x 30 days and 1,000
workers x 1 hour on each store, and ``bench_users``: 20 users polling the three pages of
the production server against the development server.

Each child saves its rows (``bench/out/NAME.figures.json``); the suite prints them as one
table (figure, value, reference measured in the same run, ratio, target, pass/fail) and
writes it with the machine's description and each child's wall time to
``bench/RESULTS.md``. The exit status is 1 when a target was missed or a benchmark failed.
On 2 cores the whole run takes about 8 minutes.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from collections.abc import Sequence

from bench import results
from bench.bench_agent import GLANCES_HINT, NODE_EXPORTER, _version, _version_of_module
from bench.bench_agent import glances_available as _glances
from bench.bench_store import REPO, machine

__all__ = ["main", "PLAN"]

PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sdk", ()),
    ("import", ("--runs", "10")),
    ("agent", ("--seconds", "60", "--warmup", "5")),
    ("push", ("--values", "500000")),
    ("fleet", ("--days", "7", "--workers", "32", "--export-rows", "1000000")),
    ("gpu", ("--samples", "500")),
)
SCALE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fleet", ("--days", "1", "--workers", "256", "--dashboard-only")),
    ("fleet", ("--days", "30", "--workers", "32", "--raw-days", "1", "--dashboard-only")),
    ("fleet", ("--hours", "1", "--workers", "1000", "--dashboard-only")),
    ("users", ()),
)
SCALE_QUICK: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fleet", ("--hours", "1", "--workers", "20", "--dashboard-only")),
    ("users", ("--users", "3", "--seconds", "8", "--every", "4", "--workers", "4")),
)
QUICK: dict[str, tuple[str, ...]] = {
    "sdk": ("--rounds", "10", "--live-rounds", "10"),
    "import": ("--runs", "2"),
    "agent": ("--seconds", "5", "--warmup", "2"),
    "push": ("--values", "20000"),
    "fleet": ("--days", "1", "--workers", "2", "--export-rows", "20000"),
    "gpu": ("--samples", "20"),
}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_plan(
    plan: Sequence[tuple[str, Sequence[str]]],
) -> tuple[list[results.Figure], list[tuple[str, str, float, int]]]:
    """Run each benchmark of ``plan`` with its arguments; (all figures, per benchmark: name,
    command, seconds, exit status)."""
    figures: list[results.Figure] = []
    runs = []
    for name, args in plan:
        results.path_of(name).unlink(missing_ok=True)  # no stale rows from an earlier run
        command = [sys.executable, "-m", f"bench.bench_{name}", *args]
        shown = f"python -m bench.bench_{name} {' '.join(args)}"
        _progress(f"=== {shown}")
        t0 = time.perf_counter()
        status = subprocess.run(command, cwd=REPO, check=False).returncode
        seconds = time.perf_counter() - t0
        got = results.load(name)
        if status not in (0, 1) or not got:
            got.append(
                results.Figure(f"{name}: benchmark failed", f"exit {status}", "-", None, "-", False)
            )
        figures += got
        runs.append((name, shown, seconds, status))
        _progress(f"=== {name}: {seconds:.0f} s, exit {status}")
    return figures, runs


def markdown(
    figures: Sequence[results.Figure],
    runs: Sequence[tuple[str, str, float, int]],
    command: str,
    total_s: float,
) -> str:
    info = machine()
    info.append(("node_exporter", _version(NODE_EXPORTER)))
    info.append(("Glances", _version_of_module("glances") if _glances() else GLANCES_HINT))
    passed = sum(f.passed is True for f in figures)
    failed = sum(f.passed is False for f in figures)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"`{command}` on {when}: {total_s / 60:.1f} minutes in all; {passed} targets met,"
        f" {failed} missed. Ratio = value / reference; every reference was measured in the"
        " same run on the same machine. Written by `scripts/bench`; each benchmark's own"
        " report (method and details) is in `bench/out/NAME.md` after a run.",
        "",
        *results.markdown(figures),
        "",
        "## Runs",
        "",
        *(f"- `{shown}`: {seconds:.0f} s, exit {status}" for _, shown, seconds, status in runs),
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.suite", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (a minute or so): checks the benchmarks run, figures mean nothing;"
        " writes bench/out/RESULTS-quick.md instead of bench/RESULTS.md",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="the fleet-scale group instead (about 35 minutes): writes bench/RESULTS-scale.md"
        " (with --quick: bench/out/RESULTS-scale-quick.md)",
    )
    args = parser.parse_args(argv)
    if args.scale:
        plan = SCALE_QUICK if args.quick else SCALE
    else:
        plan = tuple((name, QUICK[name] if args.quick else a) for name, a in PLAN)
    t0 = time.perf_counter()
    figures, runs = run_plan(plan)
    total = time.perf_counter() - t0
    flags = (" --scale" if args.scale else "") + (" --quick" if args.quick else "")
    command = "scripts/bench" + flags
    print()
    print(results.text(figures))
    name = "RESULTS" + ("-scale" if args.scale else "")
    if args.quick:
        path = REPO / "bench" / "out" / f"{name}-quick.md"
    else:
        path = REPO / "bench" / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(figures, runs, command, total))
    print(f"\n{total / 60:.1f} minutes; written to {path.relative_to(REPO)}")
    return 1 if any(f.passed is False for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
