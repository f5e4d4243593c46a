"""A simulated hyper-parameter grid, recorded through the SDK into a real agent's push endpoint.

Nine executions of pipeline ``train``: learning rate 0.01 / 0.001 / 0.0001 x
batch size 32 / 64 / 128. Each records ``accuracy`` and ``loss`` per epoch (list
metrics), a ``checkpoint_saved`` event after epoch 2, and, when it succeeds,
``test_accuracy`` (a simple metric). Accuracy climbs to a ceiling that depends
on the inputs, so the best execution is known: lr 0.001, batch 64. The run at
lr 0.01, batch 128 fails after four epochs. One execution (lr 0.0001, batch 32)
gets its id made up by the SDK; the others are named ``grid-lr<lr>-bs<bs>``.

Each starts tagged ``sweep=lr-batch``, is tagged ``stage=checkpointed`` at its
checkpoint, and ends with outputs ``model_path`` and ``epochs_run``; after the
grid, the best run is tagged ``best=yes`` and loses its ``stage`` tag.

Each execution's training process is also in the store as the agent writes a
registered process (``process`` and ``gpu_process`` points every 10 s over the
execution): it uses batch/32 cores (1, 2 or 4), its resident memory grows from
1 GiB to 1 + batch/32 GiB, and on GPU 0 it holds batch/4 GiB at a share of
50 + batch/4 % of the SM time; so each execution's resources are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent_process import AgentProcess

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import open_store

S = 1_000_000_000
MINUTE = 60 * S
PIPELINE = "train"
ENVIRONMENT = "lab"
WORKER = "trainer-01"
LEARNING_RATES = (0.01, 0.001, 0.0001)
BATCH_SIZES = (32, 64, 128)
EPOCHS = 6
FAILED = (0.01, 128)
FAILED_AFTER = 4
GENERATED = (0.0001, 32)
BEST = (0.001, 64)
CHECKPOINT_EPOCH = 2
_CEILING_LR = {0.01: 0.8, 0.001: 0.9, 0.0001: 0.7}
_CEILING_BS = {32: 0.0, 64: 0.05, 128: 0.02}


def accuracy(lr: float, batch: int, epoch: int) -> float:
    """Accuracy after ``epoch`` (from 0): rises towards a ceiling set by the inputs."""
    return round((_CEILING_LR[lr] + _CEILING_BS[batch]) * (1 - 0.5 ** (epoch + 1)), 6)


@dataclass
class Run:
    """What one execution recorded."""

    execution_id: str
    lr: float
    batch: int
    start_ns: int
    end_ns: int
    status: str
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    epoch_ns: list[int] = field(default_factory=list)
    test_accuracy: float | None = None
    checkpoint_ns: int | None = None
    resources: dict[str, float] = field(default_factory=dict)
    """What its process used, as ``get_execution(...)["resources"]`` should give it."""
    cores: float = 0.0
    pid: int = 0
    outputs: dict[str, object] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Grid:
    """The nine runs, by (lr, batch)."""

    runs: dict[tuple[float, int], Run]

    @property
    def best(self) -> Run:
        return self.runs[BEST]

    def by_final_accuracy(self) -> list[Run]:
        return sorted(self.runs.values(), key=lambda r: r.accuracy[-1], reverse=True)


def record_grid(client: MetricsClient, first_start_ns: int) -> Grid:
    """Record the grid with the SDK; execution k starts 15 minutes after execution k-1."""
    runs = {}
    k = 0
    for lr in LEARNING_RATES:
        for batch in BATCH_SIZES:
            start = first_start_ns + k * 15 * MINUTE
            k += 1
            given = None if (lr, batch) == GENERATED else f"grid-lr{lr}-bs{batch}"
            run = client.start_execution(
                PIPELINE,
                inputs={"learning_rate": lr, "batch_size": batch, "optimizer": "adam"},
                execution_id=given,
                time=start / S,
                tags={"sweep": "lr-batch"},
            )
            epochs = FAILED_AFTER if (lr, batch) == FAILED else EPOCHS
            r = Run(run.execution_id, lr, batch, start, start + (epochs + 1) * MINUTE, "")
            for epoch in range(epochs):
                t = start + (epoch + 1) * MINUTE
                acc = accuracy(lr, batch, epoch)
                r.accuracy.append(acc)
                r.loss.append(round(1 - acc, 6))
                r.epoch_ns.append(t)
                run.record_list_metric_values("accuracy", acc, step=epoch, time=t / S)
                run.record_list_metric_values("loss", r.loss[-1], step=epoch, time=t / S)
                if epoch == CHECKPOINT_EPOCH:
                    r.checkpoint_ns = t + 10 * S
                    run.log_event(
                        "checkpoint_saved", metadata={"epoch": epoch}, time=r.checkpoint_ns / S
                    )
                    run.set_tags(stage="checkpointed")
            if (lr, batch) == FAILED:
                r.status = "failed"
            else:
                r.status = "succeeded"
                r.test_accuracy = round(r.accuracy[-1] + 0.01, 6)
                run.record_metric_value("test_accuracy", r.test_accuracy, time=r.end_ns / S)
            r.outputs = {"model_path": f"/models/{run.execution_id}.pt", "epochs_run": epochs}
            r.tags = {"sweep": "lr-batch", "stage": "checkpointed"}
            run.finish(r.status, time=r.end_ns / S, outputs=r.outputs)
            runs[(lr, batch)] = r
    grid = Grid(runs)
    client.set_execution_tags(grid.best.execution_id, {"best": "yes"}, PIPELINE)
    client.remove_execution_tags(grid.best.execution_id, "stage", PIPELINE)
    grid.best.tags = {"sweep": "lr-batch", "best": "yes"}
    return grid


def seed_grid(store_url: str, workdir: Path, first_start_ns: int) -> Grid:
    """Run a real agent on ``store_url``, record the grid through its push endpoint, stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    agent = AgentProcess(
        workdir,
        *("--store", store_url, "--environment", ENVIRONMENT, "--worker", WORKER),
        *("--interval", "60", "--flush-interval", "0.2", "--collectors", "cpu"),
    )
    with agent:
        client = MetricsClient(url=f"http://127.0.0.1:{agent.push_port}", flush_interval=0.05)
        try:
            grid = record_grid(client, first_start_ns)
            assert client.flush(20), client.stats()
            stats = client.stats()
        finally:
            client.close()
        assert sum(stats["dropped"].values()) == 0, stats
        code, _ = agent.stop()
        assert code == 0, agent.log()
    store = open_store(store_url)
    try:
        for k, r in enumerate(grid.runs.values()):
            store.write(process_points(r, 41000 + k))
    finally:
        store.close()
    return grid


GIB = 2**30
PROCESS_EVERY = 10 * S


def process_points(r: Run, pid: int) -> list[Point]:
    """The agent's samples of ``r``'s process over the execution (see the module docstring)."""
    r.pid, r.cores = pid, r.batch / 32
    tags = {
        catalogue.ENVIRONMENT: ENVIRONMENT,
        catalogue.WORKER: WORKER,
        catalogue.PID: str(pid),
        catalogue.PROCESS: "python",
        catalogue.PIPELINE: PIPELINE,
        catalogue.EXECUTION_ID: r.execution_id,
    }
    samples = (r.end_ns - r.start_ns) // PROCESS_EVERY
    peak_rss = (1 + r.batch / 32) * GIB
    gpu_memory, share = r.batch / 4 * GIB, 50 + r.batch / 4
    points = []
    for i in range(samples + 1):
        t = r.start_ns + i * PROCESS_EVERY
        rss = GIB + (peak_rss - GIB) * i / samples
        fields = {
            "cpu_cores": r.cores,
            "cpu_seconds": 5.0 + r.cores * i * PROCESS_EVERY / S,
            "rss_bytes": rss,
            "threads": 12.0,
        }
        points.append(Point(catalogue.PROCESS_MEASUREMENT.name, tags, fields, t))
        gpu_fields = {"memory_used_bytes": gpu_memory, "sm_utilization_percent": share}
        points.append(
            Point(catalogue.GPU_PROCESS.name, {**tags, catalogue.GPU: "0"}, gpu_fields, t)
        )
    r.resources = {
        "peak_gpu_memory_bytes": gpu_memory,
        "mean_gpu_utilization_percent": share,
        "peak_rss_bytes": peak_rss,
        "cpu_seconds": r.cores * (r.end_ns - r.start_ns) / S,
    }
    return points
