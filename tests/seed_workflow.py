"""The held seed workflow, recorded through the SDK as a user would write it.

A 9-run grid of pipeline ``mnist-train``: learning rate 0.01 / 0.001 / 0.0001 x batch
size 32 / 64 / 128, 10 epochs each. Every epoch records the list metrics
``test-loss`` and ``test-accuracy`` and logs a line through ``logging`` (the run
captures its logs); the run ends with the simple metrics ``accuracy`` and ``loss``
and the output ``model_path``, tagged ``grid=lr-bs``. The figures are made up but
fixed, so which runs a filter keeps and which run is best are known:
final accuracy = ceiling(lr) + bonus(batch size); the best is lr 0.001, batch 128.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from agent_process import AgentProcess

from fleetgauge.sdk import MetricsClient

PIPELINE = "mnist-train"
LEARNING_RATES = (0.01, 0.001, 0.0001)
BATCH_SIZES = (32, 64, 128)
EPOCHS = 10
DEFAULTS = {"optimizer": "adam", "epochs": 5}
_CEILING = {0.01: 0.90, 0.001: 0.95, 0.0001: 0.85}
_BONUS = {32: 0.0, 64: 0.01, 128: 0.02}


def accuracy_after(lr: float, batch: int, epoch: int) -> float:
    """Accuracy on the test set after ``epoch`` (from 0), rising to the run's ceiling."""
    return round((_CEILING[lr] + _BONUS[batch]) * (1 - 0.6 ** (epoch + 1)), 4)


@dataclass
class Run:
    lr: float
    batch: int
    execution_id: str
    accuracy: list[float]
    loss: list[float]

    @property
    def model_path(self) -> str:
        return f"/models/mnist/lr{self.lr}-bs{self.batch}.pt"


def train(client: MetricsClient, lr: float, batch: int) -> Run:
    """One run, as a training script would record it."""
    log = logging.getLogger("trainer")
    inputs = {"learning_rate": lr, "batch_size": batch, "epochs": EPOCHS}
    with client.start_execution(
        PIPELINE,
        inputs=inputs,
        tags={"grid": "lr-bs"},
        capture_logs=True,
        defaults=DEFAULTS,  # what the script falls back on: epochs is given, optimizer not
    ) as run:
        accuracy, loss = [], []
        for epoch in range(EPOCHS):
            acc = accuracy_after(lr, batch, epoch)
            accuracy.append(acc)
            loss.append(round(1 - acc, 4))
            run.record_list_metric_values("test-accuracy", acc, step=epoch)
            run.record_list_metric_values("test-loss", loss[-1], step=epoch)
            log.info("epoch %d: test-loss %.4f test-accuracy %.4f", epoch, loss[-1], acc)
        run.record_metric_value("accuracy", accuracy[-1])
        run.record_metric_value("loss", loss[-1])
        done = Run(lr, batch, run.execution_id, accuracy, loss)
        log.warning("saved the model to %s", done.model_path)
        run.finish("succeeded", outputs={"model_path": done.model_path})
    return done


def record_workflow(store_url: str, workdir: Path) -> list[Run]:
    """Run a real agent on ``store_url``, record the nine runs through it, stop it."""
    workdir.mkdir(parents=True, exist_ok=True)
    agent = AgentProcess(
        workdir,
        *("--store", store_url, "--environment", "lab", "--worker", "gpu-01"),
        *("--interval", "60", "--flush-interval", "0.2", "--collectors", "cpu"),
    )
    trainer = logging.getLogger("trainer")
    trainer.setLevel(logging.INFO)
    with agent:
        client = MetricsClient(url=f"http://127.0.0.1:{agent.push_port}", flush_interval=0.05)
        try:
            runs = [train(client, lr, batch) for lr in LEARNING_RATES for batch in BATCH_SIZES]
            assert client.flush(20), client.stats()
            stats = client.stats()
        finally:
            client.close()
        assert sum(stats["dropped"].values()) == 0, stats
        code, _ = agent.stop()
        assert code == 0, agent.log()
    return runs
