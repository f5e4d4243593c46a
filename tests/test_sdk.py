"""The recording SDK against a real agent: what model code records is what the store holds.

Every test talks to a real ``fleetgauge agent`` process (SQLite store, push
endpoint on a free loopback port) or to a port where nothing listens, and reads
the values back from the store the agent writes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_process import AgentProcess
from influx_server import free_port

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import open_store

S = 1_000_000_000
READ_TIMEOUT_S = 10.0


class Agent:
    """A running agent with its push URL and a way to read back what it stored."""

    def __init__(self, process: AgentProcess, push_port: int, store_url: str) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{push_port}"
        self.store_url = store_url

    def points(self, measurement: str, **where: str) -> list[Point]:
        """Points of ``measurement`` whose tags match ``where``, oldest first."""
        store = open_store(self.store_url, create=False)
        try:
            filters = {k: [v] for k, v in where.items()}
            return list(store.stream_points(measurement, 0, time.time_ns() + 60 * S, filters))
        finally:
            store.close()

    def wait_points(self, measurement: str, count: int, **where: str) -> list[Point]:
        """The matching points once at least ``count`` are stored (or all there are after 10 s)."""
        deadline = time.monotonic() + READ_TIMEOUT_S
        while True:
            points = self.points(measurement, **where)
            if len(points) >= count or time.monotonic() > deadline:
                return points
            time.sleep(0.2)


def start_agent(workdir: Path, port: int, *args: str, env: dict[str, str] | None = None) -> Agent:
    store_url = f"sqlite:///{workdir / 'agent.db'}"
    process = AgentProcess(
        workdir,
        "--store",
        store_url,
        "--push-port",
        str(port),
        "--interval",
        "60",
        "--flush-interval",
        "0.5",
        "--collectors",
        "cpu",
        *args,
        env=env,
    )
    process.start()
    return Agent(process, port, store_url)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One agent for the module; each test records under its own deployment or pipeline."""
    running = start_agent(tmp_path_factory.mktemp("agent"), free_port())
    try:
        yield running
    finally:
        code, _ = running.process.stop()
        assert code == 0, running.process.log()


def run_child(code: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with ``env`` added to this environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_every_value_a_model_loop_records_reaches_the_store(agent: Agent) -> None:
    client = MetricsClient(url=agent.url, deployment="fraud-v1")
    for i in range(10_000):
        client.record_metric_value("score", i)
    assert client.flush(timeout=10)
    client.close()

    points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 10_000, deployment="fraud-v1")
    assert len(points) == 10_000
    assert [p.fields["value"] for p in points] == [float(i) for i in range(10_000)]
    assert {p.tags[catalogue.METRIC] for p in points} == {"score"}
    assert {p.tags[catalogue.DEPLOYMENT] for p in points} == {"fraud-v1"}
    assert all(p.tags[catalogue.ENVIRONMENT] == "default" for p in points)
    stats = client.stats()
    assert stats["recorded"] == stats["sent"] == 10_000
    assert not any(stats["dropped"].values()), stats


def test_a_full_batch_goes_out_at_once_not_at_the_next_tick(agent: Agent) -> None:
    """A client that sends every 60 s still sends the moment a full batch is queued (and,
    being awake, what is queued behind it), without a flush."""
    client = MetricsClient(
        url=agent.url, deployment="full-batch", batch_size=200, flush_interval=60
    )
    try:
        time.sleep(0.5)  # the sender thread is asleep until its tick, 60 s away
        for i in range(250):
            client.record_metric_value("score", i)
        where = {"deployment": "full-batch"}
        points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 250, **where)
        assert [p.fields["value"] for p in points] == [float(i) for i in range(250)]
    finally:
        client.close()


def test_values_recorded_while_a_batch_is_built_find_room_up_to_max_queue(agent: Agent) -> None:
    """A queue holds ``max_queue`` values whatever the sender is doing. Here five values are
    recorded while the sender builds the batch before them (from inside the build, to make
    that moment certain): with ten of ten held, none may be dropped."""
    client = MetricsClient(
        url=agent.url, deployment="room", max_queue=10, batch_size=5, flush_interval=60
    )
    builder = client._sender._builder
    build, during, recorded = builder.metric, [5, 6, 7, 8, 9], threading.Event()

    def metric_recording_meanwhile(entry: tuple) -> dict:
        while during:
            client.record_metric_value("score", during.pop(0))
        recorded.set()
        return build(entry)

    builder.metric = metric_recording_meanwhile
    try:
        for i in range(5):  # the fifth fills a batch and wakes the sender
            client.record_metric_value("score", i)
        assert recorded.wait(10)
        assert client.flush(timeout=10)
        points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 10, deployment="room")
        assert [p.fields["value"] for p in points] == [float(i) for i in range(10)]
        assert not any(client.stats()["dropped"].values()), client.stats()
    finally:
        client.close()


def test_agent_down_calls_return_at_once_and_drops_are_counted_exactly() -> None:
    client = MetricsClient(url=f"http://127.0.0.1:{free_port()}", deployment="d", max_queue=1000)
    started = time.perf_counter()
    for i in range(10_000):
        client.record_metric_value("score", i)
    took = time.perf_counter() - started
    assert took < 0.5, f"10,000 calls took {took:.3f} s with the agent down"

    started = time.monotonic()
    assert client.flush(timeout=1) is False
    assert 0.9 < time.monotonic() - started < 3
    stats = client.stats()
    assert stats["recorded"] == 10_000
    assert stats["sent"] == 0
    assert stats["dropped"]["queue_full"] == 9_000
    assert stats["queued"] + stats["in_flight"] == 1_000

    client.close(timeout=0)
    stats = client.stats()
    assert stats["dropped"]["undelivered_at_close"] == 1_000
    assert stats["queued"] == stats["in_flight"] == 0
    client.record_metric_value("score", 1)  # after close: counted, not raised
    assert client.stats()["dropped"]["closed"] == 1


def test_values_queued_while_the_agent_is_down_arrive_when_it_starts(tmp_path: Path) -> None:
    port = free_port()
    client = MetricsClient(url=f"http://127.0.0.1:{port}", deployment="late")
    for i in range(500):
        client.record_metric_value("latency_ms", i)
    assert client.flush(timeout=0.5) is False

    late = start_agent(tmp_path, port)
    try:
        assert client.flush(timeout=15), late.process.log()
        points = late.wait_points(catalogue.PIPELINE_METRIC.name, 500, deployment="late")
    finally:
        client.close()
        late.process.stop()
    assert [p.fields["value"] for p in points] == [float(i) for i in range(500)]
    assert client.stats()["sent"] == 500


def test_a_full_queue_gives_up_its_oldest_values_so_the_newest_arrive(tmp_path: Path) -> None:
    port = free_port()
    client = MetricsClient(
        url=f"http://127.0.0.1:{port}", deployment="newest", max_queue=1000, batch_size=100
    )
    for i in range(5000):
        client.record_metric_value("step", i)
    assert client.flush(timeout=0.5) is False
    held = client.stats()
    assert held["dropped"]["queue_full"] == 4000 and held["queued"] + held["in_flight"] == 1000

    late = start_agent(tmp_path, port)
    try:
        assert client.flush(timeout=15), late.process.log()
        points = late.wait_points(catalogue.PIPELINE_METRIC.name, 1000, deployment="newest")
    finally:
        client.close()
        late.process.stop()
    values = sorted(int(p.fields["value"]) for p in points)
    # the newest arrive; at most one batch of older ones (in flight, so kept) took their place
    assert len(set(values)) == 1000 and set(range(4100, 5000)) <= set(values)
    assert client.stats()["sent"] == 1000 and client.stats()["recorded"] == 5000


def test_batches_too_large_for_the_agent_are_split_until_they_fit(tmp_path: Path) -> None:
    small = start_agent(tmp_path, free_port(), "--push-max-body", "1KiB")
    client = MetricsClient(url=small.url, deployment="split", tags={"team": "ml"})
    try:
        for i in range(1000):
            client.record_metric_value("score", i)
        assert client.flush(timeout=15), small.process.log()
        points = small.wait_points(catalogue.PIPELINE_METRIC.name, 1000, deployment="split")
        refused = small.process.value("fleetgauge_agent_push_requests_total", code="413")
    finally:
        client.close()
        small.process.stop()
    assert [p.fields["value"] for p in points] == [float(i) for i in range(1000)]
    assert {p.tags["team"] for p in points} == {"ml"}
    assert refused > 0
    assert client.stats()["sent"] == 1000


def test_list_metrics_and_events_arrive_with_steps_and_metadata(agent: Agent) -> None:
    client = MetricsClient(url=agent.url, pipeline="train-resnet", execution_id="run-7")
    client.log_event("training_started", source="trainer")
    client.record_list_metric_values("loss", [0.9, 0.5, 0.3])
    client.record_list_metric_values("loss", 0.2)
    client.record_list_metric_values("accuracy", [0.6, 0.7], step=10)
    client.record_list_metric_values("accuracy", 0.8)
    client.log_event("checkpoint_saved", metadata={"epoch": 3, "path": "/ckpt/3"})
    assert client.flush(timeout=10)
    client.close()

    points = agent.wait_points(catalogue.LIST_METRIC.name, 7, pipeline="train-resnet")
    got = {(p.tags[catalogue.METRIC], p.fields["step"]): p.fields["value"] for p in points}
    assert got == {
        ("loss", 0): 0.9,
        ("loss", 1): 0.5,
        ("loss", 2): 0.3,
        ("loss", 3): 0.2,
        ("accuracy", 10): 0.6,
        ("accuracy", 11): 0.7,
        ("accuracy", 12): 0.8,
    }
    assert {p.tags[catalogue.EXECUTION_ID] for p in points} == {"run-7"}
    events = agent.wait_points(catalogue.EVENT.name, 2, pipeline="train-resnet")
    assert [p.tags[catalogue.EVENT_NAME] for p in events] == [
        "training_started",
        "checkpoint_saved",
    ]
    assert events[0].tags[catalogue.EVENT_SOURCE] == "trainer"
    assert json.loads(events[1].fields["metadata"]) == {"epoch": 3, "path": "/ckpt/3"}
    assert {p.tags[catalogue.EXECUTION_ID] for p in events} == {"run-7"}


def test_the_context_of_a_call_overrides_the_clients(agent: Agent) -> None:
    client = MetricsClient(url=agent.url, deployment="base", tags={"team": "ml"})
    client.record_metric_value("score", 1.0)
    client.record_metric_value(
        "score", 2.0, deployment="override", execution_id="e1", tags={"region": "eu"}
    )
    client.record_metric_value("score", 3.0, time=1_700_000_000.5)
    client.record_metric_value("score", 4.0, time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    client.record_metric_value("score", 5.0, time="2024-05-01T12:00:01.25Z")
    assert client.flush(timeout=10)
    client.close()

    base = agent.wait_points(catalogue.PIPELINE_METRIC.name, 4, deployment="base")
    assert sorted(p.fields["value"] for p in base) == [1.0, 3.0, 4.0, 5.0]
    assert {p.tags["team"] for p in base} == {"ml"}
    times = {p.fields["value"]: p.time_ns for p in base}
    assert times[3.0] == 1_700_000_000_500_000_000
    assert abs(times[4.0] - 1_714_564_800 * S) < 1000
    assert abs(times[5.0] - (1_714_564_801 * S + 250_000_000)) < 1000
    override = agent.wait_points(catalogue.PIPELINE_METRIC.name, 1, deployment="override")
    assert [
        (p.fields["value"], p.tags[catalogue.EXECUTION_ID], p.tags["team"], p.tags["region"])
        for p in override
    ] == [(2.0, "e1", "ml", "eu")]


def test_a_misconfigured_client_never_raises_and_counts_what_it_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = [
        {"url": "ftp://127.0.0.1:1"},
        {"url": "http://127.0.0.1:1", "deployment": "d" * 300},
        {"url": "http://127.0.0.1:1", "token": "two words"},
    ]
    for given in settings:
        with caplog.at_level(logging.ERROR, logger="fleetgauge.sdk"):
            client = MetricsClient(**given)
        client.record_metric_value("score", 1)
        client.record_list_metric_values("loss", [0.5, 0.4])
        client.log_event("started")
        assert client.stats()["dropped"]["misconfigured"] == 4
        assert client.flush(timeout=1) is False
        client.close()
    assert len(caplog.records) == len(settings)
    assert "two words" not in caplog.text


def test_invalid_arguments_never_raise_and_the_good_values_still_arrive(agent: Agent) -> None:
    client = MetricsClient(url=agent.url, deployment="messy")
    bad_calls = [
        lambda: client.record_metric_value("score", float("nan")),
        lambda: client.record_metric_value("score", float("inf")),
        lambda: client.record_metric_value("score", "0.5"),
        lambda: client.record_metric_value("score", None),  # type: ignore[arg-type]
        lambda: client.record_metric_value("", 1),
        lambda: client.record_metric_value(None, 1),  # type: ignore[arg-type]
        lambda: client.record_metric_value("x" * 257, 1),
        lambda: client.record_metric_value("score", 1, tags={"region": "x" * 257}),
        lambda: client.record_metric_value("score", 1, tags={"metric": "taken"}),
        lambda: client.record_metric_value("score", 1, tags="region=eu"),
        lambda: client.record_metric_value("score", 1, deploymnet="typo"),
        lambda: client.record_metric_value("score", 1, time="yesterday-ish"),
        lambda: client.record_metric_value("score", 1, deployment="bad\x00name"),
        lambda: client.record_list_metric_values("loss", 0.1, step=-1),
        lambda: client.log_event(""),
        lambda: client.log_event("saved", metadata={"obj": object()}),
        lambda: client.log_event("saved", metadata={"blob": "x" * 5000}),
    ]
    for i in range(100):
        client.record_metric_value("score", i / 100)
        if i < len(bad_calls):
            bad_calls[i]()
    assert client.flush(timeout=10)
    client.close()

    points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 100, deployment="messy")
    assert [p.fields["value"] for p in points] == [i / 100 for i in range(100)]
    stats = client.stats()
    assert stats["dropped"]["invalid"] == len(bad_calls)
    assert stats["dropped"]["rejected"] == 0
    assert stats["sent"] == 100
    assert agent.process.value("fleetgauge_agent_push_requests_total", code="400") == 0


def test_booleans_are_one_and_zero_and_each_bad_name_is_reported_once(
    agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    client = MetricsClient(url=agent.url, deployment="booleans")
    with caplog.at_level(logging.WARNING, logger="fleetgauge.sdk"):
        for pred, label in [(1, 1), (0, 1), (1, 0), (1, 1)]:
            client.record_metric_value("correct", pred == label)
        client.record_metric_value("correct", np.int64(3) == np.int64(3))  # numpy's bool_
        client.record_list_metric_values("correct_per_epoch", [True, False, np.bool_(True)])
        for _ in range(3):
            client.record_metric_value("latency", "fast")
            client.record_metric_value("score", "0.5")
        assert client.flush()
    client.close()

    points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 5, deployment="booleans")
    assert [p.fields["value"] for p in points] == [1.0, 0.0, 0.0, 1.0, 1.0]
    listed = agent.wait_points(catalogue.LIST_METRIC.name, 3, deployment="booleans")
    assert [p.fields["value"] for p in listed] == [1.0, 0.0, 1.0]
    assert client.stats()["dropped"]["invalid"] == 6
    warned = [r.getMessage() for r in caplog.records if "invalid" in r.getMessage()]
    assert len(warned) == 2, warned  # once per name and reason, not once per value
    assert any("'latency'" in w and "got str" in w for w in warned), warned
    assert any("'score'" in w and "got str" in w for w in warned), warned


def test_flush_gives_up_after_its_default_timeout_when_no_agent_runs() -> None:
    from fleetgauge.sdk import FLUSH_TIMEOUT

    client = MetricsClient(url=f"http://127.0.0.1:{free_port()}", deployment="nowhere")
    client.record_metric_value("score", 1)
    started = time.monotonic()
    assert client.flush() is False
    waited = time.monotonic() - started
    assert FLUSH_TIMEOUT - 0.5 <= waited < FLUSH_TIMEOUT + 2, waited
    stats = client.stats()
    assert stats["queued"] + stats["in_flight"] == 1, stats  # kept for a later try
    assert not any(stats["dropped"].values()), stats
    client.close(timeout=0.1)


def test_context_from_the_environment_and_delivery_at_exit(agent: Agent) -> None:
    child = run_child(
        """
        from fleetgauge import sdk
        for i in range(200):
            sdk.record_metric_value("latency_ms", i)
        sdk.log_event("batch_done", metadata={"n": 200})
        """,
        {
            "FLEETGAUGE_PUSH_URL": agent.url,
            "FLEETGAUGE_DEPLOYMENT": "env-deploy",
            "FLEETGAUGE_PIPELINE": "env-pipe",
            "FLEETGAUGE_EXECUTION_ID": "exec-42",
        },
    )
    assert child.returncode == 0, child.stderr
    assert "not delivered" not in child.stderr

    points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 200, deployment="env-deploy")
    assert [p.fields["value"] for p in points] == [float(i) for i in range(200)]
    for p in points:
        assert p.tags[catalogue.PIPELINE] == "env-pipe"
        assert p.tags[catalogue.EXECUTION_ID] == "exec-42"
    events = agent.wait_points(catalogue.EVENT.name, 1, deployment="env-deploy")
    assert [json.loads(p.fields["metadata"]) for p in events] == [{"n": 200}]


def test_exit_with_the_agent_down_waits_briefly_and_reports_the_loss_once() -> None:
    token = "s3cret-push-token"
    started = time.monotonic()
    child = run_child(
        """
        from fleetgauge import sdk
        sdk.configure(exit_timeout=1)
        for i in range(300):
            sdk.record_metric_value("score", i)
        """,
        {
            "FLEETGAUGE_PUSH_URL": f"http://127.0.0.1:{free_port()}",
            "FLEETGAUGE_PUSH_TOKEN": token,
            "FLEETGAUGE_DEPLOYMENT": "nowhere",
        },
    )
    took = time.monotonic() - started
    assert child.returncode == 0, child.stderr
    assert took < 8, f"exit took {took:.1f} s"
    lost = [line for line in child.stderr.splitlines() if "not delivered" in line]
    assert len(lost) == 1 and "300 values" in lost[0], child.stderr
    assert token not in child.stderr


def test_a_forked_child_sends_its_own_values_and_not_the_parents(agent: Agent) -> None:
    child = run_child(
        """
        import os
        from fleetgauge import sdk
        for i in range(10):
            sdk.record_metric_value("parent_metric", i)
        pid = os.fork()
        if pid == 0:
            for i in range(5):
                sdk.record_metric_value("child_metric", i)
            os._exit(0 if sdk.flush(10) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        """,
        {"FLEETGAUGE_PUSH_URL": agent.url, "FLEETGAUGE_DEPLOYMENT": "forked"},
    )
    assert child.returncode == 0, child.stderr
    points = agent.wait_points(catalogue.PIPELINE_METRIC.name, 15, deployment="forked")
    by_metric: dict[str, list[float]] = {}
    for p in points:
        by_metric.setdefault(p.tags[catalogue.METRIC], []).append(p.fields["value"])
    assert by_metric == {
        "parent_metric": [float(i) for i in range(10)],
        "child_metric": [float(i) for i in range(5)],
    }


def test_a_wrong_token_is_counted_as_rejected_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    secured = start_agent(tmp_path, port, env={"FLEETGAUGE_PUSH_TOKEN": "right-token"})
    try:
        with caplog.at_level(logging.WARNING, logger="fleetgauge.sdk"):
            wrong = MetricsClient(url=secured.url, token="wrong-token", deployment="tok")
            wrong.record_metric_value("score", 1)
            assert wrong.flush(timeout=10)
            wrong.close()
        right = MetricsClient(url=secured.url, token="right-token", deployment="tok")
        right.record_metric_value("score", 2)
        assert right.flush(timeout=10)
        right.close()
        points = secured.wait_points(catalogue.PIPELINE_METRIC.name, 1, deployment="tok")
    finally:
        secured.process.stop()
    assert [p.fields["value"] for p in points] == [2.0]
    assert wrong.stats()["dropped"]["rejected"] == 1
    assert "401" in caplog.text
    assert "wrong-token" not in caplog.text and "right-token" not in caplog.text


class _OlderAgent:
    """An agent from before process registration, over real HTTP: it takes /v1/metrics
    (answering 202) and answers 404 for /v1/processes, as an unknown path."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.paths: list[str] = []
        seen = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append(self.path)
                if self.path == "/v1/metrics":
                    status, answer = 202, {"accepted": len(json.loads(body)["metrics"])}
                else:
                    status, answer = 404, {"error": f"no endpoint at {self.path!r}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_an_agent_that_does_not_take_registrations_still_gets_every_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    older = _OlderAgent()
    try:
        client = MetricsClient(url=older.url, flush_interval=0.05)
        with caplog.at_level(logging.WARNING, logger="fleetgauge.sdk"):
            client.record_metric_value("score", 1, deployment="fraud-v2")
            assert client.flush(10)
            client.record_metric_value("score", 0, deployment="ranker-v1")  # a new context
            assert client.flush(10)
        stats = client.stats()
        client.close()
    finally:
        older.close()
    assert stats["sent"] == 2 and sum(stats["dropped"].values()) == 0, stats
    # it asked before each new context, the values went all the same, and it said so once
    assert older.paths == ["/v1/processes", "/v1/metrics", "/v1/processes", "/v1/metrics"]
    warned = [r.getMessage() for r in caplog.records if "did not register" in r.getMessage()]
    assert len(warned) == 1 and "HTTP 404" in warned[0], warned
