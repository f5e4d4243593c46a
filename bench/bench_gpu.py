"""GPU collector benchmark: what one sample of 8 GPUs costs the agent, NVML itself aside.

The collector reads the ``gpu`` fields of 8 GPUs (throttled H100s: every field supported
but the fan) through the fake NVML of the tests, ``--samples`` times. Each NVML call is
timed on its way in and out, so the figure is the collector's own CPU per sample (CPU
time of the sampling thread minus the time spent inside the fake NVML): our overhead,
without the driver, which a real GPU adds (NVML calls serialise through the GPU's
firmware). Reported per sample and as a share of one core at the agent's default
``--interval 10``.

The issue's second figure, the wall time of one sample per GPU against
``nvidia-smi --query-gpu=<same fields> --format=csv`` (target <= 0.5x), needs a real GPU:
on a machine without one it is reported as not run.

``python -m bench.bench_gpu [--samples N]`` (or ``scripts/bench gpu``); the table goes to
``bench/out/gpu.md`` and the suite's figures file.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import results
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure

__all__ = ["main"]

REPORT_PATH = OUT_DIR / "gpu.md"
GPUS = 8
INTERVAL_S = 10.0
HEADERS = ("figure", "value", "reference (same run)", "ratio", "target", "result")


class TimedNvml:
    """The fake NVML with the time spent inside each of its functions added up."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml
        self.inside_s = 0.0

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._nvml, name)
        if not callable(value) or not name.startswith("nvml"):
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return value(*args, **kwargs)
            finally:
                self.inside_s += time.thread_time() - t0

        timed.__name__ = name
        return timed


def measure(samples: int) -> tuple[list[float], list[float], int]:
    """Per sample: (CPU seconds of the collector alone, CPU seconds inside NVML), fields."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from collectors.fake_nvml import FakeNvml, throttled_h100
    finally:
        sys.path.remove(str(REPO / "tests"))
    from fleetgauge.agent.collectors.gpu import GpuCollector
    from fleetgauge.catalogue import GPU_MEASUREMENT

    gpus = []
    for i in range(GPUS):
        gpu = throttled_h100()
        gpu.uuid = f"GPU-{i:08d}-bench"
        gpus.append(gpu)
    nvml = TimedNvml(FakeNvml(gpus))
    collector = GpuCollector({"environment": "bench", "worker": "bench"}, nvml=nvml)
    collector.collect(time.time_ns())  # start-up and the unsupported reads: once
    ours, inside = [], []
    for _ in range(samples):
        nvml.inside_s = 0.0
        t0 = time.thread_time()
        points = collector.collect(time.time_ns())
        total = time.thread_time() - t0
        ours.append(total - nvml.inside_s)
        inside.append(nvml.inside_s)
    collector.close()
    fields = sum(len(p.fields) for p in points if p.measurement == GPU_MEASUREMENT.name)
    return ours, inside, fields


def figures(ours: Sequence[float], inside: Sequence[float], fields: int) -> list[Figure]:
    per_sample, fake = statistics.median(ours), statistics.median(inside)
    return [
        Figure(
            f"gpu collector: own CPU per sample, {GPUS} GPUs ({fields} fields)",
            f"{per_sample * 1e3:.2f} ms ({per_sample / INTERVAL_S:.4%} of a core"
            f" at --interval {INTERVAL_S:g})",
            f"inside the fake NVML: {fake * 1e3:.2f} ms",
            per_sample / fake if fake else None,
            "-",
            None,
        )
    ]


SMI_NOTE = (
    "one sample's wall time per GPU against nvidia-smi --query-gpu=<same fields>"
    " --format=csv (target <= 0.5x): not run, it needs a real GPU and this machine has none"
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_gpu", description=__doc__)
    parser.add_argument("--samples", type=int, default=500, help="samples to time (default 500)")
    args = parser.parse_args(argv)
    ours, inside, fields = measure(args.samples)
    got = figures(ours, inside, fields)
    rows = [[f.name, f.value, f.reference, f"{f.ratio:.2f}x", f.target, f.result] for f in got]
    notes = [
        f"{args.samples} samples after one warm-up; medians. Our CPU = the sampling thread's"
        " CPU time minus the time inside each NVML call.",
        f"p90 own CPU per sample: {sorted(ours)[int(0.9 * len(ours))] * 1e3:.2f} ms",
        SMI_NOTE if shutil.which("nvidia-smi") is None else "nvidia-smi found: compare by hand",
    ]
    print(text_table(HEADERS, rows))
    print("\n".join(notes))
    command = f"python -m bench.bench_gpu --samples {args.samples}"
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(
        markdown_report("GPU collector", command, "", HEADERS, rows, notes, machine())
    )
    results.save("gpu", got)
    return 0


if __name__ == "__main__":
    sys.exit(main())
