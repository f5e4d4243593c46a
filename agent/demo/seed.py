"""Demo data: a day of a small fleet and two deployed models, as history and live.

``seed`` writes synthetic history into a store; ``SimulatedModel`` keeps
scoring predictions through the SDK while ``fleetgauge demo`` runs. The values
are made up but shaped like real ones (daily load waves, one worker that runs
hot, one model whose score slowly drifts worse, a few training runs of a small
hyper-parameter grid, the model processes of each deployment as their agents would
sample them, and on the fourth worker a notebook holding a GPU it does not use) so
every card and chart has something to show. Every
name says it is a demo: environment ``demo``, workers ``demo-gpu-node-NN``,
events from source ``demo-model`` with ``"demo": true``, executions
``demo-train-...``.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import StoreError, StoreWriter
from fleetgauge.timeutil import NS_PER_S

__all__ = [
    "ENVIRONMENT",
    "PIPELINE",
    "DEPLOYMENTS",
    "DRIFTING",
    "SCORE",
    "worker_names",
    "SimulatedWorkers",
    "accuracy",
    "training_accuracy",
    "execution_id",
    "TRAINING",
    "seed",
    "SimulatedModel",
]

S = NS_PER_S
GIB = 1024**3
DAY_S = 86_400
ENVIRONMENT = "demo"
PIPELINE = "fraud-scoring"
DEPLOYMENTS = ("fraud-detector-v1", "fraud-detector-v2")
DRIFTING = DEPLOYMENTS[1]
"""The deployment whose score drifts worse over time."""
SCORE = "score"
SOURCE = "demo-model"
RELOAD_EVERY_H = 6
HOT, FULL_DISK, IDLE_GPU = 0, 1, 3
"""Indexes of the worker that runs hot (CPU, memory, GPU), of the one whose disk fills up
and of the one whose GPU a notebook holds without using it."""
MODEL_WORKERS = (1, HOT)
"""Where each deployment's model process runs (an index into the workers, wrapped)."""


def worker_names(workers: int) -> list[str]:
    """The demo workers: ``demo-gpu-node-01`` onwards; the first one runs hot."""
    return [f"demo-gpu-node-{i + 1:02d}" for i in range(workers)]


def accuracy(deployment: str, hours: float) -> float:
    """Share of correct predictions ``hours`` after the demo history began."""
    if deployment == DRIFTING:
        return max(0.55, 0.95 - 0.008 * hours)
    return 0.88


def _load(index: int, t_s: float) -> float:
    """0..1: a daily wave plus a faster ripple, shifted per worker."""
    day = math.sin(2 * math.pi * t_s / DAY_S + index)
    ripple = math.sin(2 * math.pi * t_s / 5400 + 2 * index)
    return 0.5 + 0.35 * day + 0.15 * ripple


def _resources(worker: str, index: int, t: int, rng: random.Random) -> list[Point]:
    tags = {catalogue.ENVIRONMENT: ENVIRONMENT, catalogue.WORKER: worker}
    wave = _load(index, t / S)
    if index == HOT:  # sustained over the levels: CPU and memory warn, the GPU is critical
        cpu = 84 + 8 * wave + rng.uniform(-2, 2)
        memory = 0.86 + 0.05 * wave
        gpu = min(100.0, 96 + 3 * wave + rng.uniform(-1, 1))
        gpu_memory = 84 + 4 * wave
    else:
        cpu = min(100.0, 15 + 55 * wave + rng.uniform(-5, 5))
        memory = 0.30 + 0.35 * wave
        gpu = max(0.0, min(100.0, 20 + 60 * wave + rng.uniform(-8, 8)))
        gpu_memory = 0.7 * gpu
        if index == IDLE_GPU:  # a notebook holds 12 GiB of it and leaves it idle
            gpu, gpu_memory = rng.uniform(0.5, 2.5), 15.0
    disk = 88.0 + 4 * (t / S % DAY_S) / DAY_S if index == FULL_DISK else 40.0 + 5 * (index % 8)
    total = 64 * GIB
    return [
        Point(
            catalogue.CPU.name,
            tags,
            {
                "usage_percent": cpu,
                "load1": cpu / 12,
                "load5": cpu / 13,
                "load15": cpu / 14,
                "logical_count": 16,
            },
            t,
        ),
        Point(
            catalogue.MEMORY.name,
            tags,
            {
                "used_bytes": total * memory,
                "available_bytes": total * (1 - memory),
                "total_bytes": total,
                "used_percent": 100 * memory,
                "swap_used_bytes": 0.0,
                "swap_used_percent": 0.0,
            },
            t,
        ),
        Point(
            catalogue.DISK.name,
            {**tags, catalogue.MOUNT: "/"},
            {
                "used_bytes": 500 * GIB * disk / 100,
                "total_bytes": 500 * GIB,
                "used_percent": disk,
            },
            t,
        ),
        Point(
            catalogue.NETWORK.name,
            {**tags, catalogue.INTERFACE: "eth0"},
            {"receive_bytes_per_second": 4e6 * wave, "transmit_bytes_per_second": 1e6 * wave},
            t,
        ),
        Point(
            catalogue.GPU_MEASUREMENT.name,
            {**tags, catalogue.GPU: "0"},
            {
                "utilization_percent": gpu,
                "memory_used_bytes": 80 * GIB * gpu_memory / 100,
                "memory_total_bytes": 80 * GIB,
                "memory_used_percent": gpu_memory,
                "temperature_celsius": 40 + gpu / 3,
                "power_draw_watts": 100 + 5 * gpu,
                "power_limit_watts": 700.0,
                # the hot worker's GPU sits at its power cap, and in the warm part of the
                # day the driver slows it for heat: its clocks drop
                "throttle_power_cap": 1.0 if index == HOT and gpu > 97 else 0.0,
                "throttle_thermal_software": 1.0 if index == HOT and wave > 0.75 else 0.0,
                "sm_clock_hertz": (1605e6 if index == HOT and wave > 0.75 else 1980e6),
            },
            t,
        ),
    ]


def _processes(worker: str, index: int, workers: int, gpu: Point) -> list[Point]:
    """The model processes on this worker (and the idle notebook), as the agent samples
    registered processes: ``process`` points and their share of GPU 0."""
    t, use = gpu.time_ns, gpu.fields
    here = [d for d, w in zip(DEPLOYMENTS, MODEL_WORKERS, strict=True) if w % workers == index]
    tags = {catalogue.ENVIRONMENT: ENVIRONMENT, catalogue.WORKER: worker, catalogue.GPU: "0"}
    points = []
    for k, deployment in enumerate(here):
        pid = str(4100 + 10 * index + k)
        cores = 1.5 + use["utilization_percent"] / 100  # busier GPU, busier feeder
        process = {
            **tags,
            catalogue.PID: pid,
            catalogue.PROCESS: "python",
            catalogue.DEPLOYMENT: deployment,
            catalogue.PIPELINE: PIPELINE,
        }
        del process[catalogue.GPU]
        fields = {
            "cpu_cores": cores,
            "cpu_seconds": 2.0 * (t / S - 1_700_000_000),  # about two cores since 2023
            "rss_bytes": (6 + cores) * GIB,
            "threads": 24.0,
        }
        points.append(Point(catalogue.PROCESS_MEASUREMENT.name, process, fields, t))
        share = {
            "memory_used_bytes": use["memory_used_bytes"] / len(here),
            "sm_utilization_percent": use["utilization_percent"] / len(here),
        }
        points.append(Point(catalogue.GPU_PROCESS.name, {**process, **tags}, share, t))
    if index == IDLE_GPU:
        notebook = {**tags, catalogue.PID: "5120", catalogue.PROCESS: "jupyter-kernel"}
        held = {"memory_used_bytes": 12.0 * GIB, "sm_utilization_percent": 0.0}
        points.append(Point(catalogue.GPU_PROCESS.name, notebook, held, t))
    return points


def _worker_sample(
    worker: str, index: int, workers: int, t: int, rng: random.Random
) -> list[Point]:
    """What one demo worker's agent writes at ``t``: resources and its processes."""
    points = _resources(worker, index, t, rng)
    gpu = next(p for p in points if p.measurement == catalogue.GPU_MEASUREMENT.name)
    return points + _processes(worker, index, workers, gpu)


def _predictions(t: int, hours: float, interval_s: int, rng: random.Random) -> Iterator[Point]:
    """Scored predictions of each deployment in ``[t, t + interval_s)``: one every 4 s or so."""
    for deployment in DEPLOYMENTS:
        tags = {
            catalogue.ENVIRONMENT: ENVIRONMENT,
            catalogue.PIPELINE: PIPELINE,
            catalogue.DEPLOYMENT: deployment,
            catalogue.METRIC: SCORE,
        }
        correct = accuracy(deployment, hours)
        count = rng.randint(1, max(1, interval_s // 2))
        for offset_ms in sorted(rng.sample(range(interval_s * 1000), count)):
            value = 1.0 if rng.random() < correct else 0.0
            yield Point(
                catalogue.PIPELINE_METRIC.name, tags, {"value": value}, t + offset_ms * 10**6
            )


def _event(name: str, deployment: str, t: int, **metadata: object) -> Point:
    tags = {
        catalogue.ENVIRONMENT: ENVIRONMENT,
        catalogue.EVENT_NAME: name,
        catalogue.EVENT_SOURCE: SOURCE,
        catalogue.PIPELINE: PIPELINE,
        catalogue.DEPLOYMENT: deployment,
    }
    text = json.dumps({"demo": True, **metadata}, sort_keys=True)
    return Point(catalogue.EVENT.name, tags, {"metadata": text}, t)


def _gpu_xid(t: int) -> Point:
    """One XID 48 (a double-bit ECC error) on the second demo worker's GPU, as the agent's
    GPU event watcher writes it."""
    tags = {
        catalogue.ENVIRONMENT: ENVIRONMENT,
        catalogue.WORKER: worker_names(2)[1],
        catalogue.EVENT_NAME: catalogue.GPU_XID_EVENT,
        catalogue.EVENT_SOURCE: "nvml",
        catalogue.GPU: "0",
    }
    metadata = {"gpu": 0, "xid": 48, "meaning": "double-bit ECC error", "demo": True}
    return Point(catalogue.EVENT.name, tags, {"metadata": json.dumps(metadata)}, t)


def _events(start: int, end: int) -> list[Point]:
    """v2 deployed at the start of the history, then each model reloaded every few hours."""
    points = [_event("model_deployed", DRIFTING, start + 300 * S, version="2.0.0")]
    points.append(_gpu_xid(start + (end - start) * 2 // 3))
    step = RELOAD_EVERY_H * 3600 * S
    for i, deployment in enumerate(DEPLOYMENTS):
        for t in range(start + (i + 1) * step // 2, end, step):
            points.append(_event("model_reloaded", deployment, t, reason="scheduled refresh"))
    return points


TRAINING = "fraud-training"
"""The demo pipeline whose executions (a small hyper-parameter grid) the history holds."""
TRAINING_GRID = ((0.01, 64), (0.001, 64), (0.001, 128), (0.0001, 64))
EPOCHS = 8


def training_accuracy(lr: float, batch: int, epoch: int) -> float:
    """Validation accuracy of a demo training run after ``epoch``: lr 0.001, batch 64 wins."""
    ceiling = {0.01: 0.86, 0.001: 0.94, 0.0001: 0.8}[lr] - (0.03 if batch == 128 else 0.0)
    return round(ceiling * (1 - 0.6 ** (epoch + 1)), 4)


def execution_id(lr: float, batch: int) -> str:
    """The id of a demo training run: ``demo-train-lr0.001-bs64``."""
    return f"demo-train-lr{lr}-bs{batch}"


def _executions(start: int, end: int) -> list[Point]:
    """One demo training run an hour, the last ones ending before ``end``; one fails."""
    points = []
    for k, (lr, batch) in enumerate(TRAINING_GRID):
        t0 = start + (k + 1) * 3600 * S
        if t0 + (EPOCHS + 1) * 300 * S > end:
            break
        tags = {
            catalogue.ENVIRONMENT: ENVIRONMENT,
            catalogue.PIPELINE: TRAINING,
            catalogue.EXECUTION_ID: execution_id(lr, batch),
        }
        inputs = {"learning_rate": lr, "batch_size": batch, "optimizer": "adam", "demo": True}
        points.append(Point(catalogue.EXECUTION.name, tags, {"inputs": json.dumps(inputs)}, t0))
        epochs = 5 if lr == 0.01 else EPOCHS
        for epoch in range(epochs):
            t = t0 + (epoch + 1) * 300 * S
            acc = training_accuracy(lr, batch, epoch)
            for metric, value in (("val_accuracy", acc), ("loss", round(1.1 - acc, 4))):
                fields = {"value": value, "step": epoch}
                points.append(
                    Point(catalogue.LIST_METRIC.name, {**tags, catalogue.METRIC: metric}, fields, t)
                )
            if epoch == 3:
                event_tags = {
                    **tags,
                    catalogue.EVENT_NAME: "checkpoint_saved",
                    catalogue.EVENT_SOURCE: SOURCE,
                }
                text = json.dumps({"demo": True, "epoch": epoch})
                points.append(
                    Point(catalogue.EVENT.name, event_tags, {"metadata": text}, t + 20 * S)
                )
        status = catalogue.FAILED if lr == 0.01 else catalogue.SUCCEEDED
        t_end = t0 + (epochs + 1) * 300 * S
        points.append(Point(catalogue.EXECUTION_END.name, tags, {"status": status}, t_end))
    return points


def seed(
    store: StoreWriter,
    end_ns: int,
    hours: float = 24.0,
    workers: int = 4,
    interval_s: int = 30,
    rng: random.Random | None = None,
) -> int:
    """Write ``hours`` of history for ``workers`` workers and both deployments ending at
    ``end_ns``; returns the number of points written."""
    rng = rng or random.Random(7)
    names = worker_names(workers)
    start = end_ns - int(hours * 3600 * S)
    start -= start % (interval_s * S)
    batch: list[Point] = _events(start, end_ns) + _executions(start, end_ns)
    written = 0
    for t in range(start, end_ns, interval_s * S):
        for i, name in enumerate(names):
            batch.extend(_worker_sample(name, i, workers, t, rng))
        age_h = (t - start) / (3600 * S)
        batch.extend(p for p in _predictions(t, age_h, interval_s, rng) if p.time_ns < end_ns)
        if len(batch) >= 5000:
            store.write(batch)
            written += len(batch)
            batch = []
    if batch:
        store.write(batch)
        written += len(batch)
    return written


class SimulatedModel:
    """Both deployments scoring a few predictions a second, each score recorded by the SDK.

    The model starts where the seeded history of ``history_hours`` ended, so v2's
    accuracy carries on from there; live, a minute counts as an hour of drift, so
    the decline shows within minutes. It logs ``model_reloaded`` for both
    deployments when it starts and for one of them every ``reload_every_s``.
    """

    TICK_S = 0.25

    def __init__(
        self,
        client: MetricsClient,
        history_hours: float,
        rate: float = 3.0,
        reload_every_s: float = 90.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < rate * self.TICK_S <= 1:
            raise ValueError(f"rate must be above 0 and at most {1 / self.TICK_S:g} a second")
        self.client = client
        self.history_hours = history_hours
        self.rate = rate
        self.reload_every_s = reload_every_s
        self.rng = rng or random.Random()
        self.clock = clock

    def run(self, stop: threading.Event) -> None:
        """Record scores until ``stop`` is set; the caller flushes or closes the client."""
        started = self.clock()
        for deployment in DEPLOYMENTS:
            self._reload(deployment, "demo started")
        next_reload = started + self.reload_every_s
        while not stop.wait(self.TICK_S):
            now = self.clock()
            hours = self.history_hours + (now - started) / 60
            for deployment in DEPLOYMENTS:
                if self.rng.random() < self.rate * self.TICK_S:
                    correct = self.rng.random() < accuracy(deployment, hours)
                    self.client.record_metric_value(
                        SCORE, 1.0 if correct else 0.0, deployment=deployment
                    )
            if now >= next_reload:
                self._reload(self.rng.choice(DEPLOYMENTS), "scheduled refresh")
                next_reload = now + self.reload_every_s

    def _reload(self, deployment: str, reason: str) -> None:
        self.client.log_event(
            "model_reloaded",
            source=SOURCE,
            metadata={"demo": True, "reason": reason},
            deployment=deployment,
        )


class SimulatedWorkers:
    """The demo workers of the history, reporting on while the demo runs.

    Every ``interval_s`` they write the points of this moment straight into the store
    (as their agents would), so the views of the last minutes show the whole demo
    fleet, not only this machine. A failed write is reported once and retried on the
    next tick: the demo goes on.
    """

    def __init__(self, store: StoreWriter, workers: int, interval_s: float = 10.0) -> None:
        self.store = store
        self.names = worker_names(workers)
        self.interval_s = interval_s
        self.rng = random.Random(11)
        self.failed = False

    def run(self, stop: threading.Event) -> None:
        """Write a sample per worker every ``interval_s`` until ``stop`` is set."""
        while True:
            t = time.time_ns()
            n = len(self.names)
            points = [
                p
                for i, name in enumerate(self.names)
                for p in _worker_sample(name, i, n, t, self.rng)
            ]
            try:
                self.store.write(points)
                self.failed = False
            except (StoreError, OSError) as e:
                if not self.failed:
                    print(
                        f"fleetgauge demo: the simulated workers could not write: {e}",
                        file=sys.stderr,
                    )
                self.failed = True
            if stop.wait(self.interval_s):
                return
