"""Executions end to end: recorded through the SDK into a real agent, read back on both stores.

The grid of ``executions_grid`` (nine runs of ``train``) goes through the real
push endpoint; ``get_execution``, ``list_executions`` and ``fleetgauge export
executions`` must give back what was recorded.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
import time

import pytest
from agent_process import AgentProcess
from executions_grid import (
    CHECKPOINT_EPOCH,
    ENVIRONMENT,
    FAILED,
    GENERATED,
    MINUTE,
    PIPELINE,
    WORKER,
    Grid,
    S,
)

from fleetgauge.read.query import get_events, get_execution, list_executions
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import open_store
from fleetgauge.timeutil import format_time, format_time_ns

EXECUTIONS = "/v1/executions"


def window(grid: Grid) -> tuple[str, str]:
    starts = [r.start_ns for r in grid.runs.values()]
    return format_time(min(starts) - MINUTE), format_time(max(starts) + MINUTE)


def test_list_executions_gives_back_the_grid(grid) -> None:
    url, g = grid
    start, end = window(g)
    found = list_executions(start=start, end=end, store=url)
    assert len(found) == 9
    newest_first = sorted(g.runs.values(), key=lambda r: r.start_ns, reverse=True)
    assert [e["execution_id"] for e in found] == [r.execution_id for r in newest_first]
    for e in found:
        r = next(r for r in g.runs.values() if r.execution_id == e["execution_id"])
        assert e["pipeline"] == PIPELINE and e["environment"] == ENVIRONMENT
        assert e["status"] == r.status
        assert e["start"] == format_time(r.start_ns) and e["end"] == format_time(r.end_ns)
        assert e["duration_s"] == pytest.approx((r.end_ns - r.start_ns) / S)
        assert e["inputs"] == {"learning_rate": r.lr, "batch_size": r.batch, "optimizer": "adam"}
        acc = e["list_metrics"]["accuracy"]
        assert (acc["last"], acc["min"], acc["max"]) == (
            r.accuracy[-1],
            r.accuracy[0],
            max(r.accuracy),
        )
        assert acc["mean"] == pytest.approx(sum(r.accuracy) / len(r.accuracy))
        assert "values" not in acc
        expected = {} if r.test_accuracy is None else {"test_accuracy": r.test_accuracy}
        assert e["metrics"] == expected
    best = max(found, key=lambda e: e["list_metrics"]["accuracy"]["last"])
    assert best["execution_id"] == g.best.execution_id == "grid-lr0.001-bs64"


def test_filters_and_the_window(grid) -> None:
    url, g = grid
    start, end = window(g)
    failed = list_executions(start=start, end=end, status="failed", store=url)
    assert [e["execution_id"] for e in failed] == [g.runs[FAILED].execution_id]
    assert list_executions(PIPELINE, start, end, status=["running"], store=url) == []
    assert list_executions("serve", start, end, store=url) == []
    assert len(list_executions(PIPELINE, start, end, environment=ENVIRONMENT, store=url)) == 9
    assert list_executions(start=start, end=end, environment="prod", store=url) == []
    # the window is on the start: only the first execution started in its first 10 minutes
    first = min(g.runs.values(), key=lambda r: r.start_ns)
    early = list_executions(start=first.start_ns // S, end=first.start_ns // S + 600, store=url)
    assert [e["execution_id"] for e in early] == [first.execution_id]
    assert len(list_executions(limit=3, start=start, end=end, store=url)) == 3
    with pytest.raises(ValueError, match="unknown status 'done'"):
        list_executions(start=start, end=end, status="done", store=url)


def test_get_execution_has_every_value(grid) -> None:
    url, g = grid
    r = g.runs[FAILED]
    e = get_execution(r.execution_id, store=url)
    assert e["status"] == "failed"
    acc = e["list_metrics"]["accuracy"]
    assert acc["steps"] == list(range(len(r.accuracy))) and acc["values"] == r.accuracy
    assert e["list_metrics"]["loss"]["values"] == r.loss
    assert e["metrics"] == {}
    assert get_execution("no-such-run", store=url) is None
    generated = g.runs[GENERATED].execution_id
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{8}", generated), generated
    assert get_execution(generated, store=url)["inputs"]["learning_rate"] == 0.0001
    events = get_events("checkpoint_saved", execution_id=g.best.execution_id, store=url)
    assert [(ev["metadata"], ev["pipeline"]) for ev in events] == [
        ({"epoch": CHECKPOINT_EPOCH}, PIPELINE)
    ]


def _export(url: str, g: Grid, *extra: str) -> subprocess.CompletedProcess:
    start, end = window(g)
    return subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "executions", "--store", url]
        + ["--start", start, "--end", end, *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_export_executions_matches_the_seed(grid, tmp_path) -> None:
    url, g = grid
    out = tmp_path / "runs.csv"
    done = _export(url, g, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "9 rows of executions" in done.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == [
        "execution_id",
        "pipeline",
        "worker",
        "status",
        "start",
        "end",
        "duration_s",
        "input.learning_rate",
        "input.batch_size",
        "input.optimizer",
        "metric.test_accuracy",
        "list.accuracy.last",
        "list.loss.last",
        "resource.peak_gpu_memory_bytes",
        "resource.mean_gpu_utilization_percent",
        "resource.peak_rss_bytes",
        "resource.cpu_seconds",
    ]
    by_id = {row["execution_id"]: row for row in rows}
    assert len(by_id) == 9
    for r in g.runs.values():
        row = by_id[r.execution_id]
        assert row["status"] == r.status and row["start"] == format_time_ns(r.start_ns)
        assert row["worker"] == WORKER  # stamped by the agent that took the records
        for name, value in r.resources.items():  # what its process used
            assert float(row[f"resource.{name}"]) == pytest.approx(value), name
        assert float(row["input.learning_rate"]) == r.lr and int(row["input.batch_size"]) == r.batch
        assert float(row["list.accuracy.last"]) == r.accuracy[-1]
        assert float(row["list.loss.last"]) == r.loss[-1]
        assert row["metric.test_accuracy"] == (
            "" if r.test_accuracy is None else str(r.test_accuracy)
        )

    chosen = _export(url, g, "--columns", "execution_id,list.accuracy.max,input.batch_size")
    assert chosen.returncode == 0, chosen.stderr
    rows = list(csv.reader(io.StringIO(chosen.stdout)))
    assert rows[0] == ["execution_id", "list.accuracy.max", "input.batch_size"]
    assert {tuple(row) for row in rows[1:]} == {
        (r.execution_id, str(max(r.accuracy)), str(r.batch)) for r in g.runs.values()
    }
    by_mean = _export(url, g, "--mode", "mean", "--status", "failed")
    rows = list(csv.DictReader(io.StringIO(by_mean.stdout)))
    failed = g.runs[FAILED]
    assert [row["execution_id"] for row in rows] == [failed.execution_id]
    assert float(rows[0]["list.accuracy.mean"]) == pytest.approx(
        sum(failed.accuracy) / len(failed.accuracy)
    )


def test_export_executions_refuses_bad_arguments(grid) -> None:
    url, g = grid
    bad = _export(url, g, "--columns", "execution_id,list.accuracy.median")
    assert bad.returncode == 2
    assert "unknown column 'list.accuracy.median'" in bad.stderr
    wrong_kind = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetgauge",
            "export",
            "metrics",
            "--store",
            url,
            "--status",
            "failed",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong_kind.returncode == 2
    assert "--status applies to 'export executions' only" in wrong_kind.stderr


def test_the_push_endpoint_checks_execution_items(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(
        tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu", "--environment", "lab"
    )
    with agent:
        bad = [
            ({"pipeline": "train", "status": "done"}, "status", "must be one of running"),
            ({"status": "running"}, "pipeline", "is required"),
            ({"pipeline": "train", "status": "failed"}, "execution_id", "is required"),
            (
                {"pipeline": "train", "status": "running", "inputs": {"layers": [1, 2]}},
                "inputs",
                "input 'layers' must be text, a finite number",
            ),
            (
                {"pipeline": "t", "status": "succeeded", "execution_id": "x", "inputs": {}},
                "inputs",
                "inputs are given when the execution starts",
            ),
            ({"pipeline": "t", "status": "running", "epochs": 3}, "epochs", "unknown field"),
        ]
        for item, field, message in bad:
            status, answer = agent.post(EXECUTIONS, {"executions": [item]})
            assert status == 400, (item, answer)
            assert answer["field"] == field and message in answer["error"], answer
        t = time.time()
        start = {"pipeline": "train", "status": "running", "inputs": {"lr": 0.1}, "time": t}
        status, answer = agent.post(EXECUTIONS, {"executions": [start]})
        assert status == 202 and answer["accepted"] == 1
        (made_up,) = answer["execution_ids"]
        end = {"pipeline": "train", "status": "succeeded", "execution_id": made_up, "time": t + 5}
        assert agent.post(EXECUTIONS, {"executions": [end]}) == (
            202,
            {"accepted": 1, "execution_ids": [made_up]},
        )
        assert agent.stop()[0] == 0
    e = get_execution(made_up, store=url)
    assert (e["status"], e["inputs"], e["environment"]) == ("succeeded", {"lr": 0.1}, "lab")
    assert e["duration_s"] == pytest.approx(5, abs=1e-3)
    s = open_store(url, create=False)
    try:
        assert sum(1 for _ in s.stream_points("execution", 0, 2**62)) == 1
    finally:
        s.close()


def test_sdk_execution_context_marks_a_crash_failed(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    with agent:
        client = MetricsClient(url=f"http://127.0.0.1:{agent.push_port}", flush_interval=0.05)
        with (
            pytest.raises(RuntimeError),
            client.start_execution("train", inputs={"lr": 0.1}) as run,
        ):
            run.record_list_metric_values("loss", [0.9, 0.5])
            raise RuntimeError("out of memory")
        with client.start_execution("train", inputs={"lr": 0.01}) as ok:
            ok.record_metric_value("test_accuracy", 0.8)
        client.start_execution("train", inputs={"bad": object()})
        client.finish_execution(ok.execution_id, "done")
        assert client.flush(10)
        stats = client.stats()
        client.close()
        assert agent.stop()[0] == 0
    assert stats["dropped"]["invalid"] == 2, stats
    crashed = get_execution(run.execution_id, store=url)
    assert crashed["status"] == "failed"
    assert crashed["list_metrics"]["loss"]["values"] == [0.9, 0.5]
    good = get_execution(ok.execution_id, store=url)
    assert (good["status"], good["metrics"]) == ("succeeded", {"test_accuracy": 0.8})
    assert len(list_executions(store=url)) == 2
