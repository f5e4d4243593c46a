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
from conftest import make_store
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

from fleetgauge.read.query import (
    get_events,
    get_execution,
    get_execution_input,
    get_execution_output,
    list_executions,
)
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
        assert (e["outputs"], e["tags"]) == (r.outputs, r.tags)
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


def test_one_input_or_output_by_name(grid) -> None:
    url, g = grid
    best = g.best
    assert get_execution_input(best.execution_id, "batch_size", store=url) == best.batch
    path = get_execution_output(best.execution_id, "model_path", store=url)
    assert path == f"/models/{best.execution_id}.pt"
    with pytest.raises(KeyError, match="has no output 'weights' \\(outputs: 'model_path'"):
        get_execution_output(best.execution_id, "weights", store=url)
    with pytest.raises(LookupError, match="no execution 'nope' was recorded"):
        get_execution_input("nope", "batch_size", store=url)


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
        "output.model_path",
        "output.epochs_run",
        "tag.best",
        "tag.stage",
        "tag.sweep",
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
        assert (row["output.model_path"], row["output.epochs_run"]) == (
            f"/models/{r.execution_id}.pt",
            str(r.outputs["epochs_run"]),
        )
        assert {k: row[f"tag.{k}"] for k in ("best", "stage", "sweep")} == {
            k: r.tags.get(k, "") for k in ("best", "stage", "sweep")
        }
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
            (
                {"pipeline": "t", "status": "running", "outputs": {"path": "/m"}},
                "outputs",
                "outputs are given when the execution ends",
            ),
            (
                {"pipeline": "t", "status": "failed", "execution_id": "x", "outputs": {"m": {}}},
                "outputs",
                "output 'm' must be text, a finite number",
            ),
            ({"pipeline": "t", "execution_id": "x"}, "status", "or left out by an item that"),
            ({"pipeline": "t", "tags": {"stage": "a"}}, "execution_id", "is required"),
            ({"pipeline": "t", "execution_id": "x", "tags": {"n": 3}}, "tags", "must be text"),
            ({"pipeline": "t", "execution_id": "x", "tags": {}}, "tags", "at least one tag"),
            (
                {"pipeline": "t", "execution_id": "x", "tags": {"n": "v" * 300}},
                "tags",
                "300 characters long (limit 256)",
            ),
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
        end["outputs"], end["tags"] = {"path": "/m/1.pt", "score": 0.5}, {"stage": "done"}
        relabel = {"pipeline": "train", "execution_id": made_up, "time": t + 6}
        relabel["tags"] = {"stage": None, "k": "v"}
        assert agent.post(EXECUTIONS, {"executions": [end, relabel]}) == (
            202,
            {"accepted": 2, "execution_ids": [made_up, made_up]},
        )
        assert agent.stop()[0] == 0
    e = get_execution(made_up, store=url)
    assert (e["status"], e["inputs"], e["environment"]) == ("succeeded", {"lr": 0.1}, "lab")
    assert e["outputs"] == {"path": "/m/1.pt", "score": 0.5}
    assert e["tags"] == {"k": "v"}  # set at the end, removed a second later
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


@pytest.mark.parametrize("backend", ["sqlite", "influxdb"])
def test_values_of_an_execution_never_started_make_it_appear(backend, request, tmp_path) -> None:
    store = make_store(backend, request, tmp_path)
    url = store.url
    store.close()
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    now = time.time()
    with agent:
        client = MetricsClient(url=f"http://127.0.0.1:{agent.push_port}", flush_interval=0.05)
        for step in range(3):  # values only: the start was never recorded
            client.record_list_metric_values(
                "loss",
                1 / (step + 1),
                step=step,
                pipeline="train",
                execution_id="orphan-1",
                time=now - 300 + 60 * step,
            )
        client.log_event(
            "checkpoint_saved", pipeline="train", execution_id="orphan-1", time=now - 30
        )
        client.record_metric_value(
            "accuracy", 0.7, pipeline="train", execution_id="orphan-2", time=now - 100
        )
        client.finish_execution("orphan-2", "failed", pipeline="train", time=now - 50)
        old = client.start_execution("train", execution_id="started-long-ago", time=now - 3 * 86400)
        old.record_metric_value("accuracy", 0.5, time=now - 200)  # a value today, its start not
        assert client.flush(10), client.stats()
        client.close()
        assert agent.stop()[0] == 0
    day = {"start": format_time(int((now - 86400) * S)), "end": format_time(int((now + 60) * S))}
    found = {e["execution_id"]: e for e in list_executions(store=url, **day)}
    assert set(found) == {"orphan-1", "orphan-2"}
    first = found["orphan-1"]
    assert (first["status"], first["pipeline"], first["end"]) == (
        "unknown",
        "train",
        format_time(int((now - 30) * S)),
    )
    assert first["start"] == format_time(int((now - 300) * S))
    assert first["duration_s"] == pytest.approx(270, abs=1e-3)
    assert first["list_metrics"]["loss"]["last"] == pytest.approx(1 / 3)
    second = found["orphan-2"]  # its end says more: failed, ended then
    assert (second["status"], second["metrics"]) == ("failed", {"accuracy": 0.7})
    assert second["duration_s"] == pytest.approx(50, abs=1e-3)
    assert [e["execution_id"] for e in list_executions(status="unknown", store=url, **day)] == [
        "orphan-1"
    ]
    assert get_execution("orphan-1", store=url)["status"] == "unknown"
    assert get_execution("started-long-ago", store=url)["status"] == "running"
    assert get_execution("never-seen", store=url) is None
    done = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "executions", "--store", url]
        + ["--start", day["start"], "--end", day["end"], "--status", "unknown"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["execution_id"], r["status"]) for r in rows] == [("orphan-1", "unknown")]
