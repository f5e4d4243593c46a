"""A deployment's footprint and cost: predictions, the resources its processes used, prices.

For each deployment in a window ``[start, end)``:

- **predictions**: values recorded under its most-recorded metric (a model that records
  ``score`` and ``latency`` after each prediction made that many predictions), and per
  second of the window;
- **CPU seconds**: what its registered processes used (the growth of each one's
  ``cpu_seconds`` between its first and last sample in the window, summed);
- **GPU seconds**: the time of the GPUs its processes were on, split between the
  processes on each GPU by their share of the GPU's SM time in that interval or, when no
  process on it used any SM time (a GPU allocated but idle), by their share of the GPU
  memory held. An idle GPU is thus charged to whoever holds memory on it; a GPU no
  process holds memory on is charged to nobody. Intervals are the buckets of one read of
  at least ``MIN_STEP_S`` seconds (at most ``MAX_BUCKETS`` in the window): a process
  seen in a bucket held its share for the whole bucket, so the agent must sample at
  least that often;
- **peak GPU memory**: the most its processes held together on one GPU, with that GPU's
  memory (for right-sizing: "at most 9 GiB of 80");
- **cost**, from a :class:`Prices` table: GPU-hours at the GPU-hour price plus CPU
  core-hours at the core-hour price; or, with a price per worker-hour, that price split
  evenly over the worker's GPUs (a GPU worker) or its logical cores (a CPU-only worker),
  charged the same way. Capacity no process used or held is charged to no deployment.
  **Cost per 1,000 predictions** is the cost over the predictions, times 1,000.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetgauge import catalogue
from fleetgauge.stores import StoreReader
from fleetgauge.timeutil import NS_PER_S

__all__ = [
    "Prices",
    "DeploymentUsage",
    "parse_prices",
    "read_prices_file",
    "deployment_usage",
    "USAGE_COLUMNS",
    "MIN_STEP_S",
    "MAX_BUCKETS",
]

MIN_STEP_S = 60
"""Shortest interval GPU time is split over (seconds)."""
MAX_BUCKETS = 500
"""Most intervals in one window: a week is split in 21-minute intervals."""
PRICE_NAMES = {
    "worker-hour": "worker_hour",
    "gpu-hour": "gpu_hour",
    "cpu-core-hour": "cpu_core_hour",
}
"""Prices a table may hold, as ``--price NAME=AMOUNT`` spells them -> the TOML key."""

_VALUE = catalogue.PIPELINE_METRIC.get_field("value").name
_CPU_SECONDS = catalogue.PROCESS_MEASUREMENT.get_field("cpu_seconds").name
_GPU_MEMORY = catalogue.GPU_PROCESS.get_field("memory_used_bytes").name
_GPU_SM = catalogue.GPU_PROCESS.get_field("sm_utilization_percent").name
_GPU_TOTAL = catalogue.GPU_MEASUREMENT.get_field("memory_total_bytes").name
_CORES = catalogue.CPU.get_field("logical_count").name


@dataclass(frozen=True)
class Prices:
    """What an hour costs: of a whole worker, or of one GPU and one CPU core."""

    worker_hour: float | None = None
    gpu_hour: float | None = None
    cpu_core_hour: float | None = None

    def __post_init__(self) -> None:
        if self.worker_hour is not None and (
            self.gpu_hour is not None or self.cpu_core_hour is not None
        ):
            raise ValueError(
                "give a price per worker-hour, or prices per gpu-hour and cpu-core-hour, not both"
            )

    @property
    def empty(self) -> bool:
        return self.worker_hour is None and self.gpu_hour is None and self.cpu_core_hour is None


def parse_prices(items: Iterable[str], base: Prices | None = None) -> Prices:
    """``["gpu-hour=2.5", "cpu-core-hour=0.04"]`` (``--price`` flags) over ``base``;
    ValueError naming the item that is not ``NAME=AMOUNT`` with a known name."""
    given = dict(vars(base)) if base is not None else {}
    for item in items:
        name, sep, amount = item.partition("=")
        key = PRICE_NAMES.get(name.strip())
        if not sep or key is None:
            known = ", ".join(PRICE_NAMES)
            raise ValueError(f"price {item!r}: use NAME=AMOUNT with NAME one of {known}")
        given[key] = _amount(f"price {item!r}", amount.strip())
    return Prices(**given)


def read_prices_file(path: str) -> Prices:
    """A TOML price table: ``[prices]`` with ``gpu_hour``, ``cpu_core_hour`` or
    ``worker_hour``; ValueError naming the file and the key at fault."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"price file {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"price file {path}: not TOML ({e})") from None
    table = doc.get("prices")
    if not isinstance(table, dict):
        raise ValueError(f"price file {path}: needs a [prices] table")
    known = set(PRICE_NAMES.values())
    given = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"price file {path}: unknown key {key!r} (known: {sorted(known)})")
        given[key] = _amount(f"price file {path}, {key}", value)
    return Prices(**given)


def _amount(where: str, value: Any) -> float:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{where}: must be a price of 0 or more, got {value!r}")
    return amount


@dataclass
class DeploymentUsage:
    """One deployment's footprint in a window, and its cost when prices were given."""

    deployment: str
    predictions: int = 0
    predictions_per_second: float = 0.0
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    peak_gpu_memory_bytes: float | None = None
    gpu_memory_total_bytes: float | None = None
    cost: float | None = None
    cost_per_1000_predictions: float | None = None
    by_worker: dict[str, list[float]] = field(default_factory=dict, repr=False)
    """Per worker: [GPU seconds, CPU seconds] (what worker-hour prices are applied to)."""

    def as_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in USAGE_COLUMNS}


USAGE_COLUMNS = (
    "deployment",
    "predictions",
    "predictions_per_second",
    "cpu_seconds",
    "gpu_seconds",
    "peak_gpu_memory_bytes",
    "gpu_memory_total_bytes",
    "cost",
    "cost_per_1000_predictions",
)
"""What :func:`deployment_usage` gives per deployment, in the order exports show it."""


def _where(environment: str | None, **tags: Sequence[str]) -> dict[str, list[str]]:
    where = {key: list(values) for key, values in tags.items()}
    if environment:
        where[catalogue.ENVIRONMENT] = [environment]
    return where


def deployment_usage(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    deployments: Sequence[str] | None = None,
    prices: Prices | None = None,
    environment: str | None = None,
) -> list[DeploymentUsage]:
    """The footprint (and cost) of ``deployments`` (None: every one that recorded values or
    registered processes in the window), sorted by name; see the module docstring."""
    measurements = [
        catalogue.PIPELINE_METRIC.name,
        catalogue.PROCESS_MEASUREMENT.name,
        catalogue.GPU_PROCESS.name,
    ]
    if deployments is None:
        deployments = store.tag_values(
            catalogue.DEPLOYMENT, start_ns, end_ns, measurements, _where(environment)
        )
    usage = {d: DeploymentUsage(d) for d in deployments}
    if not usage:
        return []
    chosen = _where(environment, **{catalogue.DEPLOYMENT: list(usage)})
    _predictions(store, usage, start_ns, end_ns, chosen)
    _cpu(store, usage, start_ns, end_ns, chosen)
    _gpu(store, usage, start_ns, end_ns, environment, chosen)
    if prices is not None and not prices.empty:
        _cost(store, usage, start_ns, end_ns, prices, environment)
    return [usage[d] for d in sorted(usage)]


def _predictions(store, usage, start_ns, end_ns, where) -> None:
    b = store.read_buckets(
        catalogue.PIPELINE_METRIC.name,
        [_VALUE],
        start_ns,
        end_ns,
        1,
        where,
        (catalogue.DEPLOYMENT, catalogue.METRIC),
    )
    for s in b.series:
        u = usage.get(s.tags.get(catalogue.DEPLOYMENT, ""))
        if u is not None:
            u.predictions = max(u.predictions, sum(s.fields[_VALUE].count))
    seconds = (end_ns - start_ns) / NS_PER_S
    for u in usage.values():
        u.predictions_per_second = u.predictions / seconds


def _cpu(store, usage, start_ns, end_ns, where) -> None:
    group = (catalogue.DEPLOYMENT, catalogue.WORKER, catalogue.PID)
    b = store.read_buckets(
        catalogue.PROCESS_MEASUREMENT.name, [_CPU_SECONDS], start_ns, end_ns, 4, where, group
    )
    for s in b.series:
        u = usage.get(s.tags.get(catalogue.DEPLOYMENT, ""))
        f = s.fields[_CPU_SECONDS]
        lows = [v for v in f.min if v is not None]
        highs = [v for v in f.max if v is not None]
        if u is None or not lows:
            continue
        used = max(highs) - min(lows)
        u.cpu_seconds += used
        u.by_worker.setdefault(s.tags.get(catalogue.WORKER, ""), [0.0, 0.0])[1] += used


def _gpu(store, usage, start_ns, end_ns, environment, chosen) -> None:
    """GPU seconds by share, per interval and GPU, with every process on those GPUs."""
    workers = store.tag_values(
        catalogue.WORKER, start_ns, end_ns, [catalogue.GPU_PROCESS.name], chosen
    )
    if not workers:
        return
    points = min(MAX_BUCKETS, max(1, (end_ns - start_ns) // (MIN_STEP_S * NS_PER_S)))
    group = (catalogue.WORKER, catalogue.GPU, catalogue.PID, catalogue.DEPLOYMENT)
    b = store.read_buckets(
        catalogue.GPU_PROCESS.name,
        [_GPU_MEMORY, _GPU_SM],
        start_ns,
        end_ns,
        points,
        _where(environment, **{catalogue.WORKER: workers}),
        group,
    )
    # (worker, gpu, bucket start) -> [(deployment, SM share mean, memory mean, memory max)]
    held: dict[tuple[str, str, int], list[tuple[str, float, float, float]]] = {}
    for s in b.series:
        memory, sm = s.fields[_GPU_MEMORY], s.fields[_GPU_SM]
        for i, t in enumerate(s.times):
            if not memory.count[i]:
                continue
            key = (s.tags.get(catalogue.WORKER, ""), s.tags.get(catalogue.GPU, ""), t)
            held.setdefault(key, []).append(
                (
                    s.tags.get(catalogue.DEPLOYMENT, ""),
                    sm.mean[i] or 0.0,
                    memory.mean[i] or 0.0,
                    memory.max[i] or 0.0,
                )
            )
    gpus_used: dict[str, set[tuple[str, str]]] = {}
    for (worker, gpu, t), entries in held.items():
        seconds = (min(t + b.step_ns, end_ns) - max(t, start_ns)) / NS_PER_S
        busy = sum(e[1] for e in entries)
        memory = sum(e[2] for e in entries)
        together: dict[str, float] = {}
        for deployment, sm_share, memory_mean, memory_max in entries:
            share = sm_share / busy if busy > 0 else (memory_mean / memory if memory else 0.0)
            u = usage.get(deployment)
            if u is None:
                continue
            u.gpu_seconds += seconds * share
            u.by_worker.setdefault(worker, [0.0, 0.0])[0] += seconds * share
            together[deployment] = together.get(deployment, 0.0) + memory_max
            gpus_used.setdefault(deployment, set()).add((worker, gpu))
        for deployment, total in together.items():
            u = usage[deployment]
            u.peak_gpu_memory_bytes = max(u.peak_gpu_memory_bytes or 0.0, total)
    if gpus_used:
        totals = _gpu_totals(store, start_ns, end_ns, environment, workers)
        for deployment, used in gpus_used.items():
            sizes = [totals[g] for g in used if g in totals]
            if sizes:
                usage[deployment].gpu_memory_total_bytes = max(sizes)


def _gpu_totals(store, start_ns, end_ns, environment, workers) -> dict[tuple[str, str], float]:
    b = store.read_buckets(
        catalogue.GPU_MEASUREMENT.name,
        [_GPU_TOTAL],
        start_ns,
        end_ns,
        1,
        _where(environment, **{catalogue.WORKER: workers}),
        (catalogue.WORKER, catalogue.GPU),
    )
    totals = {}
    for s in b.series:
        highs = [v for v in s.fields[_GPU_TOTAL].max if v is not None]
        if highs:
            totals[(s.tags.get(catalogue.WORKER, ""), s.tags.get(catalogue.GPU, ""))] = max(highs)
    return totals


def _cost(store, usage, start_ns, end_ns, prices: Prices, environment) -> None:
    gpu_hour, core_hour = prices.gpu_hour or 0.0, prices.cpu_core_hour or 0.0
    per_worker: dict[str, tuple[float, float]] = {}  # worker -> (per GPU-hour, per core-hour)
    if prices.worker_hour is not None:
        workers = sorted({w for u in usage.values() for w in u.by_worker})
        gpus, cores = _worker_sizes(store, start_ns, end_ns, environment, workers)
        for w in workers:
            if gpus.get(w):
                per_worker[w] = (prices.worker_hour / gpus[w], 0.0)
            elif cores.get(w):
                per_worker[w] = (0.0, prices.worker_hour / cores[w])
    for u in usage.values():
        cost = 0.0
        for worker, (gpu_s, cpu_s) in u.by_worker.items():
            g, c = per_worker.get(worker, (gpu_hour, core_hour))
            cost += gpu_s / 3600 * g + cpu_s / 3600 * c
        u.cost = cost
        if u.predictions:
            u.cost_per_1000_predictions = cost / u.predictions * 1000


def _worker_sizes(store, start_ns, end_ns, environment, workers):
    """GPUs and logical cores of each worker, as its agent reported them in the window."""
    where = _where(environment, **{catalogue.WORKER: workers})
    gpus: dict[str, int] = {}
    for worker, _gpu in _gpu_totals(store, start_ns, end_ns, environment, workers):
        gpus[worker] = gpus.get(worker, 0) + 1  # (one grouped read, not one per worker)
    b = store.read_buckets(
        catalogue.CPU.name, [_CORES], start_ns, end_ns, 1, where, (catalogue.WORKER,)
    )
    cores = {}
    for s in b.series:
        highs = [v for v in s.fields[_CORES].max if v is not None]
        if highs:
            cores[s.tags.get(catalogue.WORKER, "")] = max(highs)
    return gpus, cores
