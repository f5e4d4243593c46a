"""Execution logs end to end: logging records and output lines through the SDK and a real
agent into both stores, read back by ``get_execution_logs`` and ``fleetgauge export logs``;
10,000 lines logged while InfluxDB is down all arrive once it is back."""

from __future__ import annotations

import csv
import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_process import AgentProcess
from conftest import make_store
from influx_server import influx_to_stop

from fleetgauge import protocol
from fleetgauge.read.query import get_execution, get_execution_logs
from fleetgauge.sdk import MetricsClient
from fleetgauge.sdk.items import MAX_LOG_LINES

EXECUTIONS = "/v1/executions"
LOGS = "/v1/logs"


def push_url(agent: AgentProcess) -> str:
    return f"http://127.0.0.1:{agent.push_port}"


@pytest.fixture(params=["sqlite", "influxdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    store = make_store(request.param, request, tmp_path)
    url = store.url
    store.close()
    return url


def test_a_run_s_logging_and_output_are_its_log_lines(store_url: str, tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path, "--store", store_url, "--interval", "60", "--collectors", "cpu")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with agent:
            client = MetricsClient(url=push_url(agent), flush_interval=0.05)
            log = logging.getLogger("trainer")
            log.info("before the run: not captured")
            with client.start_execution("train", capture_logs=True, capture_output=True) as run:
                log.info("epoch %d: loss %.2f", 1, 0.5)
                log.debug("below the root level: not sent")
                logging.getLogger("fleetgauge.sdk").warning("the SDK's own: not captured")
                print("plain output line")
                print("partial ", end="")
                print("line done", file=sys.stdout)
                try:
                    raise ValueError("bad batch")
                except ValueError:
                    log.exception("batch failed")
                log.warning("é" * 10_000)  # 20,000 bytes: cut to 16 KiB, not refused
                run.record_log("direct line", "ERROR", "custom")
            log.info("after the run: not captured")
            print("after the run: not captured")
            assert client.flush(20), client.stats()
            stats = client.stats()
            client.close()
            assert agent.stop()[0] == 0
    finally:
        root.setLevel(level)
    assert sum(stats["dropped"].values()) == 0, stats
    lines = get_execution_logs("train", run.execution_id, order="oldest", store=store_url)
    shown = [(line["level"], line["logger"], line["message"][:40]) for line in lines]
    assert shown == [
        ("INFO", "trainer", "epoch 1: loss 0.50"),
        ("INFO", "stdout", "plain output line"),
        ("INFO", "stdout", "partial line done"),
        ("ERROR", "trainer", "batch failed\nTraceback (most recent call"),
        ("WARNING", "trainer", "é" * 40),
        ("ERROR", "custom", "direct line"),
    ], shown
    assert "ValueError: bad batch" in lines[3]["message"]
    long = lines[4]
    assert len(long["message"].encode()) == protocol.MAX_LOG_MESSAGE_BYTES
    assert long["cut_bytes"] == 20_000 - protocol.MAX_LOG_MESSAGE_BYTES
    assert long["execution_id"] == run.execution_id and long["pipeline"] == "train"
    newest = get_execution_logs("train", run.execution_id, limit=2, store=store_url)
    assert [line["message"] for line in newest] == ["direct line", long["message"]]
    graver = get_execution_logs(None, run.execution_id, level="ERROR", store=store_url)
    assert [line["logger"] for line in graver] == ["custom", "trainer"]
    found = get_execution_logs("train", run.execution_id, search="LOSS", store=store_url)
    assert [line["message"] for line in found] == ["epoch 1: loss 0.50"]
    assert get_execution_logs("serve", run.execution_id, store=store_url) == []
    with pytest.raises(ValueError, match="unknown level 'LOUD'"):
        get_execution_logs("train", run.execution_id, level="LOUD", store=store_url)
    exported = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "logs", "--store", store_url]
        + ["--execution-id", run.execution_id, "--level", "ERROR"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["logger"], r["level"], r["execution_id"]) for r in rows] == [
        ("trainer", "ERROR", run.execution_id),
        ("custom", "ERROR", run.execution_id),
    ]
    assert rows[0]["message"].startswith("batch failed")


def test_the_logs_endpoint_takes_lines_from_any_language(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    with agent:
        bad = [
            ({"level": "INFO"}, "message", "must be text"),
            ({"message": "x", "level": "LOUD", "pipeline": "p"}, "level", "must be one of DEBUG"),
            ({"message": "x"}, "execution_id", "needs an 'execution_id', a 'pipeline'"),
            ({"message": "x", "pipeline": "p", "color": "red"}, "color", "unknown field"),
        ]
        for item, field, message in bad:
            status, answer = agent.post(LOGS, {"logs": [item]})
            assert status == 400, (item, answer)
            assert answer["field"] == field and message in answer["error"], answer
        t = time.time()
        lines = [
            {
                "message": "=cmd|' /C calc'!A0",
                "pipeline": "etl",
                "execution_id": "job-1",
                "time": t,
            },
            {"message": "warn", "level": "warn", "execution_id": "job-1", "pipeline": "etl"},
            {"message": "x" * 20_000, "execution_id": "job-1", "pipeline": "etl", "time": t + 1},
        ]
        lines[0]["time"] = t
        assert agent.post(LOGS, {"logs": lines}) == (202, {"accepted": 3})
        assert agent.stop()[0] == 0
    got = get_execution_logs("etl", "job-1", order="oldest", store=url)
    assert [(g["level"], g["logger"], g["cut_bytes"]) for g in got] == [
        ("INFO", "root", 0),
        ("WARNING", "root", 0),
        ("INFO", "root", 20_000 - protocol.MAX_LOG_MESSAGE_BYTES),
    ]
    # values never started an execution, its log lines make it appear
    assert get_execution("job-1", store=url)["status"] == "unknown"
    exported = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "logs", "--store", url]
        + ["--start", "2020-01-01", "--pipeline", "etl"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert exported.returncode == 0, exported.stderr
    first = next(csv.DictReader(io.StringIO(exported.stdout)))
    assert first["message"] == "'=cmd|' /C calc'!A0"  # never a formula in a spreadsheet


def test_a_run_over_its_log_limit_says_how_many_lines_were_dropped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    extra = 25
    with agent:
        client = MetricsClient(url=push_url(agent), flush_interval=0.05, max_queue=200_000)
        with client.start_execution("train") as run:
            for i in range(MAX_LOG_LINES + extra):
                run.record_log(f"line {i}")
        assert client.flush(60), client.stats()
        stats = client.stats()
        client.close()
        assert agent.stop()[0] == 0
    assert stats["dropped"]["log_limit"] == extra, stats
    newest = get_execution_logs("train", run.execution_id, limit=2, store=url)
    assert newest[0]["logger"] == "fleetgauge" and newest[0]["level"] == "WARNING"
    assert f"{extra} log lines of this execution were dropped" in newest[0]["message"]
    assert newest[1]["message"] == f"line {MAX_LOG_LINES - 1}"


def test_10000_lines_logged_while_influxdb_is_down_all_arrive(tmp_path: Path) -> None:
    with influx_to_stop(tmp_path / "influxd") as (server, url):
        agent = AgentProcess(
            tmp_path,
            *("--store", url, "--interval", "60", "--flush-interval", "0.5", "--collectors", "cpu"),
        )
        with agent:
            client = MetricsClient(url=push_url(agent), flush_interval=0.05)
            log = logging.getLogger("outage")
            log.setLevel(logging.INFO)
            server.stop()
            down_at = time.monotonic()
            with client.start_execution("train", capture_logs=True) as run:
                for i in range(10_000):
                    log.info("line %05d", i)
            assert client.flush(20), client.stats()  # the agent took them: its spool holds them
            time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
            assert agent.value("fleetgauge_agent_spool_points") >= 10_000
            server.start()
            deadline = time.monotonic() + 60
            while agent.value("fleetgauge_agent_spool_points") and time.monotonic() < deadline:
                time.sleep(0.3)
            assert agent.value("fleetgauge_agent_spool_points") == 0, agent.log()
            client.close()
            assert agent.stop()[0] == 0
        lines = get_execution_logs(
            "train", run.execution_id, limit=20_000, order="oldest", store=url
        )
        assert [line["message"] for line in lines] == [f"line {i:05d}" for i in range(10_000)]


def test_a_bad_line_from_the_sdk_is_dropped_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    with agent:
        client = MetricsClient(url=push_url(agent), flush_interval=0.05)
        client.record_log("kept before", "warn", pipeline="etl", execution_id="job-2")
        client.record_log(
            "a level the agent would refuse", "LOUD", pipeline="etl", execution_id="job-2"
        )
        client.record_log("no context: refused too")
        client.record_log("kept after", pipeline="etl", execution_id="job-2")
        assert client.flush(10), client.stats()
        stats = client.stats()
        client.close()
        assert agent.stop()[0] == 0
    assert stats["dropped"]["invalid"] == 2 and stats["dropped"]["rejected"] == 0, stats
    lines = get_execution_logs("etl", "job-2", order="oldest", store=url)
    assert [(line["level"], line["message"]) for line in lines] == [
        ("WARNING", "kept before"),
        ("INFO", "kept after"),
    ]
