"""A deployment's footprint and cost (issue 23, point 4), on a seeded store of each kind.

Two hours on worker gpu-01 (4 GPUs of 80 GiB, 32 cores). On GPU 0:

- hour 1, both busy: fraud-v2 at 80 % SM, ranker-v1 at 20 % (and an unregistered
  process holding 5 GiB at 0 %): fraud gets 0.8 of the hour, ranker 0.2, the stray none;
- hour 2, the GPU idle (0 % SM for all): split by memory held, fraud 10 GiB, ranker
  30 GiB and the stray 5 GiB: fraud 10/45, ranker 30/45 (the stray's 5/45 is charged to
  no deployment).

So fraud used 2,880 + 800 = 3,680 GPU seconds (1.0222 h), ranker 720 + 2,400 = 3,120
(0.8667 h). CPU: fraud's process uses half a core, ranker's two (sampled every 10 s:
7,190 s between the first and last sample): 3,595 and 14,380 CPU seconds.
Predictions: fraud records score every second and latency every two (7,200
predictions), ranker score every two seconds (3,600).

At 2.00 per GPU-hour and 0.10 per core-hour: fraud 2.0444444 + 0.0998611 = 2.1443056,
per 1,000 predictions 0.2978202; ranker 1.7333333 + 0.3994444 = 2.1327778, per 1,000
0.5924383. At 8.00 per worker-hour (2.00 per GPU-hour on a 4-GPU worker, the cores
not charged separately): fraud 2.0444444.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read.query import get_deployment_usage
from fleetgauge.read.usage import Prices, parse_prices, read_prices_file
from fleetgauge.stores import Store

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
HOUR = 3600 * S
GIB = 2**30
WORKER = "gpu-01"
START, END = "2026-01-01T00:00:00Z", "2026-01-01T02:00:00Z"


def _tags(**tags: str) -> dict[str, str]:
    return {catalogue.ENVIRONMENT: "prod", catalogue.WORKER: WORKER, **tags}


def seed(store: Store) -> None:
    points = []
    for minute in range(120):
        t = T0 + minute * 60 * S
        points.append(Point("cpu", _tags(), {"logical_count": 32.0, "usage_percent": 20.0}, t))
        for gpu in range(4):
            fields = {"memory_total_bytes": 80.0 * GIB, "utilization_percent": 50.0}
            points.append(Point("gpu", _tags(gpu=str(gpu)), fields, t))
    processes = {
        "fraud-v2": (101, 0.5, (80, 30 * GIB), (0, 10 * GIB)),
        "ranker-v1": (202, 2.0, (20, 10 * GIB), (0, 30 * GIB)),
        None: (303, 0.1, (0, 5 * GIB), (0, 5 * GIB)),
    }
    for k in range(720):  # every 10 s
        t = T0 + k * 10 * S
        for deployment, (pid, cores, busy, idle) in processes.items():
            context = {} if deployment is None else {catalogue.DEPLOYMENT: deployment}
            tags = _tags(pid=str(pid), process="python", **context)
            cpu = {"cpu_cores": cores, "cpu_seconds": 1000 + cores * 10 * k}
            points.append(Point("process", tags, {**cpu, "rss_bytes": 2.0 * GIB}, t))
            sm, memory = busy if t < T0 + HOUR else idle
            gpu_fields = {"memory_used_bytes": float(memory), "sm_utilization_percent": float(sm)}
            points.append(Point("gpu_process", {**tags, "gpu": "0"}, gpu_fields, t))
    for second in range(7200):
        t = T0 + second * S
        points.append(
            Point("pipeline_metric", _tags(deployment="fraud-v2", metric="score"), {"value": 1}, t)
        )
        if second % 2 == 0:
            for deployment, metric in (("fraud-v2", "latency"), ("ranker-v1", "score")):
                tags = _tags(deployment=deployment, metric=metric)
                points.append(Point("pipeline_metric", tags, {"value": 0.5}, t))
    for i in range(0, len(points), 5000):
        store.write(points[i : i + 5000])


def test_usage_splits_a_shared_gpu_by_share_and_an_idle_one_by_memory(store: Store) -> None:
    seed(store)
    prices = {"gpu_hour": 2.0, "cpu_core_hour": 0.1}
    got = {
        u["deployment"]: u
        for u in get_deployment_usage(None, START, END, prices=prices, store=store)
    }
    assert set(got) == {"fraud-v2", "ranker-v1"}
    fraud, ranker = got["fraud-v2"], got["ranker-v1"]
    assert fraud["predictions"] == 7200 and ranker["predictions"] == 3600
    assert fraud["predictions_per_second"] == pytest.approx(1.0)
    assert fraud["gpu_seconds"] == pytest.approx(3680)
    assert ranker["gpu_seconds"] == pytest.approx(3120)
    assert fraud["cpu_seconds"] == pytest.approx(3595)
    assert ranker["cpu_seconds"] == pytest.approx(14380)
    assert fraud["peak_gpu_memory_bytes"] == 30 * GIB  # "uses at most 30 GiB of 80"
    assert fraud["gpu_memory_total_bytes"] == 80 * GIB
    assert fraud["cost"] == pytest.approx(2.1443056, abs=1e-6)
    assert fraud["cost_per_1000_predictions"] == pytest.approx(0.2978202, abs=1e-6)
    assert ranker["cost"] == pytest.approx(2.1327778, abs=1e-6)
    assert ranker["cost_per_1000_predictions"] == pytest.approx(0.5924383, abs=1e-6)

    by_worker = get_deployment_usage(
        "fraud-v2", START, END, prices=Prices(worker_hour=8.0), store=store
    )
    assert [u["deployment"] for u in by_worker] == ["fraud-v2"]
    assert by_worker[0]["cost"] == pytest.approx(2.0444444, abs=1e-6)
    no_prices = get_deployment_usage(["ranker-v1"], START, END, store=store)
    assert no_prices[0]["cost"] is None and no_prices[0]["gpu_seconds"] == pytest.approx(3120)


def test_export_usage_writes_the_same_figures_as_csv(tmp_path: Path) -> None:
    from fleetgauge.stores import open_store

    url = f"sqlite:///{tmp_path / 'fg.db'}"
    store = open_store(url)
    try:
        seed(store)
    finally:
        store.close()
    prices = tmp_path / "prices.toml"
    prices.write_text("[prices]\ngpu_hour = 2.0\ncpu_core_hour = 0.5\n")
    done = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "usage", "--store", url]
        + ["--start", START, "--end", END, "--prices", str(prices)]
        + ["--price", "cpu-core-hour=0.1", "--deployment", "fraud-v2"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "FLEETGAUGE_STORE": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "1 rows of usage" in done.stderr
    [row] = list(csv.DictReader(io.StringIO(done.stdout)))
    assert row["deployment"] == "fraud-v2" and row["predictions"] == "7200"
    assert float(row["cost_per_1000_predictions"]) == pytest.approx(0.2978202, abs=1e-6)
    assert float(row["gpu_seconds"]) == pytest.approx(3680)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["gpu-hour"], "use NAME=AMOUNT"),
        (["tpu-hour=3"], "NAME one of worker-hour, gpu-hour, cpu-core-hour"),
        (["gpu-hour=cheap"], "'cheap' is not a number"),
        (["gpu-hour=-1"], "a price of 0 or more"),
        (["worker-hour=8", "gpu-hour=2"], "not both"),
    ],
)
def test_a_bad_price_is_named(items: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_prices(items)


def test_a_bad_price_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[prices]\ngpu_hours = 2\n")
    with pytest.raises(ValueError, match="p.toml: unknown key 'gpu_hours'"):
        read_prices_file(str(path))
    path.write_text("gpu_hour = 2\n")
    with pytest.raises(ValueError, match="needs a \\[prices\\] table"):
        read_prices_file(str(path))
