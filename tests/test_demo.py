"""``fleetgauge demo`` as a user runs it: real agent, dashboard and model, stopped with Ctrl-C."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

from fleetgauge.agent.demo import seed as demo
from fleetgauge.agent.writer_lock import WriterLock
from fleetgauge.read.query import get_events, get_metrics, get_resource_metrics
from fleetgauge.stores import open_store

URL_LINE = re.compile(r"fleetgauge dashboard:\s+(http://127\.0\.0\.1:\d+/)")


class DemoProcess:
    """``fleetgauge demo ARGS`` with its output collected line by line in the background.

    The demo directory (logs, spool) is made under ``workdir`` (through ``TMPDIR``).
    """

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.launched = datetime.now(UTC)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetgauge", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(workdir), **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_url(self, timeout: float = 30.0) -> str:
        url = wait_until(
            lambda: (m := URL_LINE.search(self.output)) and m.group(1),
            timeout,
            lambda: f"no dashboard URL; output:\n{self.output}",
            self.proc,
        )
        return url

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def wait_until(
    ready: Callable[[], Any],
    timeout: float,
    why: Callable[[], str],
    proc: subprocess.Popen[str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := ready():
            return result
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(why())


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return resp.status, resp.read().decode()


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def running_demo(tmp_path: Path) -> Iterator[tuple[DemoProcess, str]]:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    process = DemoProcess(tmp_path, "--store", url, "--port", "0", "--hours", "1")
    try:
        yield process, url
    finally:
        process.kill()


def test_demo_runs_everything_until_ctrl_c(running_demo: tuple[DemoProcess, str]) -> None:
    process, store = running_demo
    site = process.wait_for_url()
    live_from = datetime.now(UTC)  # the model starts recording once the URL is printed
    children = psutil.Process(process.proc.pid).children(recursive=True)
    started = [c.cmdline()[3] for c in psutil.Process(process.proc.pid).children()]
    assert sorted(started) == ["agent", "dashboard"], started  # (and the dashboard's workers)
    assert "Ctrl-C stops everything" in process.output
    assert f"export FLEETGAUGE_STORE='{store}'" in process.output  # (and the push URL if moved)

    status, page = get(site)
    assert status == 200 and "fleetgauge" in page
    now = datetime.now(UTC)
    status, text = get(
        f"{site}download/metrics.csv?start={iso(now - timedelta(hours=2))}"
        f"&end={iso(now + timedelta(minutes=1))}"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert status == 200
    assert {r["deployment"] for r in rows} == set(demo.DEPLOYMENTS)

    def live_scores() -> set[str]:
        return {r["deployment"] for r in get_metrics(demo.SCORE, start=live_from, store=store)}

    wait_until(
        lambda: live_scores() == set(demo.DEPLOYMENTS),
        20,
        lambda: f"no live scores for both deployments: {live_scores()}\n{process.output}",
    )
    reloads = get_events("model_reloaded", start=process.launched, store=store)
    assert {e["deployment"] for e in reloads} == set(demo.DEPLOYMENTS)
    assert all(e["metadata"]["reason"] == "demo started" for e in reloads), reloads

    def own_samples() -> list[dict[str, Any]]:
        return get_resource_metrics(
            live_from, datetime.now(UTC), workers=socket.gethostname(), store=store
        )

    wait_until(own_samples, 20, lambda: f"no samples of this machine\n{process.output}")
    assert {r["environment"] for r in own_samples()} == {demo.ENVIRONMENT}

    def live_fleet() -> set[str]:  # the simulated workers report on, not only the history
        rows = get_resource_metrics(live_from, datetime.now(UTC), store=store)
        return {r["worker"] for r in rows} & set(demo.worker_names(4))

    wait_until(
        lambda: live_fleet() == set(demo.worker_names(4)),
        20,
        lambda: f"simulated workers not live: {live_fleet()}\n{process.output}",
    )

    process.proc.send_signal(signal.SIGINT)
    assert process.finish(timeout=20) == 0, process.output
    assert "Traceback" not in process.output
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [c.cmdline() for c in alive]


def test_a_busy_port_is_one_line_before_any_history_is_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        url = f"sqlite:///{tmp_path / 'demo.db'}"
        process = DemoProcess(tmp_path, "--store", url, "--port", str(port), "--hours", "0.1")
        try:
            code = process.finish(timeout=40)
        finally:
            process.kill()
    assert code == 2, process.output
    assert f"--port {port} on 127.0.0.1: Address already in use" in process.output
    assert "Writing" not in process.output and not (tmp_path / "demo.db").exists()
    assert not list(tmp_path.glob("fleetgauge-demo-*")), "the demo left its directory behind"


def test_demo_says_which_part_failed_and_stops_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    process = DemoProcess(  # an agent setting that cannot work: the agent exits at start
        tmp_path, "--store", url, "--port", "0", "--hours", "0.1",
        env={"FLEETGAUGE_COLLECTORS": "bogus"},
    )  # fmt: skip
    try:
        children = wait_until(
            lambda: psutil.Process(process.proc.pid).children(recursive=True),
            20,
            lambda: f"no children started\n{process.output}",
            process.proc,
        )
        code = process.finish(timeout=40)
    finally:
        process.kill()
    assert code == 1, process.output
    assert "the agent exited early" in process.output and "unknown collector" in process.output
    assert "Traceback" not in process.output.split("ends with:")[0]
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, [c.cmdline() for c in alive]


def test_demo_history_has_a_hot_worker_and_a_drifting_model(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    end = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        demo.seed(store, int(end.timestamp()) * 10**9, hours=24, workers=3)
        start = end - timedelta(hours=24)
        gpu = get_resource_metrics(start, end, measurements="gpu", store=store)
        scores = get_metrics(demo.SCORE, deployment=demo.DRIFTING, store=store)
    finally:
        store.close()
    by_worker: dict[str, list[float]] = {}
    for row in gpu:
        by_worker.setdefault(row["worker"], []).append(row["utilization_percent"])
    hot, *others = demo.worker_names(3)
    assert set(by_worker) == {hot, *others}
    assert min(by_worker[hot]) > 95
    assert all(sum(v) / len(v) < 80 for w, v in by_worker.items() if w != hot)

    def mean_score(first: datetime, last: datetime) -> float:
        values = [r["value"] for r in scores if first <= r["time"] < last]
        return sum(values) / len(values)

    early = mean_score(start, start + timedelta(hours=6))
    late = mean_score(end - timedelta(hours=6), end)
    assert early - late > 0.05


def test_demo_values_stay_physical_with_many_workers(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    end = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        demo.seed(store, int(end.timestamp()) * 10**9, hours=1, workers=32)
        rows = get_resource_metrics(end - timedelta(hours=1), end, store=store)
    finally:
        store.close()
    percents = [v for r in rows for k, v in r.items() if k.endswith("_percent") and v is not None]
    assert len({r["worker"] for r in rows}) == 32 and percents
    assert 0 <= min(percents) and max(percents) <= 100, (min(percents), max(percents))


def test_a_default_store_written_by_another_agent_gets_a_store_of_its_own(tmp_path: Path) -> None:
    data = tmp_path / "data"
    default_db = data / "fleetgauge" / "fleetgauge.db"
    default_db.parent.mkdir(parents=True)
    lock = WriterLock(default_db)  # as a running agent holds it
    try:
        process = DemoProcess(
            tmp_path, "--port", "0", "--hours", "0.1", env={"XDG_DATA_HOME": str(data)}
        )
        try:
            process.wait_for_url()
            match = re.search(r"export FLEETGAUGE_STORE='(sqlite:///\S+)'", process.output)
            assert match, process.output
            assert f"written by another agent (pid {os.getpid()})" in process.output
            own = Path(match.group(1).removeprefix("sqlite:///"))
            assert own.exists() and own != default_db
            process.proc.send_signal(signal.SIGINT)
            assert process.finish(timeout=20) == 0, process.output
        finally:
            process.kill()
    finally:
        lock.release()
    assert f"The demo store and logs stay in {own.parent}" in process.output
    assert not default_db.exists(), "the demo wrote the store another agent writes"


def test_demo_history_has_a_throttling_gpu_and_an_xid(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    end = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        demo.seed(store, int(end.timestamp()) * 10**9, hours=24, workers=4)
        gpu = get_resource_metrics(end - timedelta(hours=24), end, measurements="gpu", store=store)
        xids = get_events("gpu_xid", store=store)
    finally:
        store.close()
    hot, second = demo.worker_names(2)
    throttled = {r["worker"] for r in gpu if r["throttle_thermal_software"] == 1.0}
    capped = {r["worker"] for r in gpu if r["throttle_power_cap"] == 1.0}
    assert throttled == {hot} and capped == {hot}
    (xid,) = xids
    assert xid["other_tags"] == {"gpu": "0"} and xid["worker"] == second
    assert xid["metadata"]["xid"] == 48 and xid["source"] == "nvml"


def test_demo_deployments_have_a_footprint_and_a_notebook_holds_an_idle_gpu(
    tmp_path: Path,
) -> None:
    from fleetgauge.dashboard.data.gpu_idle import read_idle_gpus
    from fleetgauge.read.query import get_deployment_usage

    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    end = datetime(2026, 1, 2, tzinfo=UTC)
    start = end - timedelta(hours=6)
    try:
        demo.seed(store, int(end.timestamp()) * 10**9, hours=6, workers=4)
        prices = {"gpu_hour": 2.5, "cpu_core_hour": 0.04}
        usage = get_deployment_usage(None, start, end, prices=prices, store=store)
        s = 10**9
        idle, gpus = read_idle_gpus(
            store, int(start.timestamp()) * s, int(end.timestamp()) * s, 5, 0.5
        )
    finally:
        store.close()
    assert [u["deployment"] for u in usage] == list(demo.DEPLOYMENTS)
    for u in usage:  # each model process held its GPU for the six hours
        assert 5.5 * 3600 < u["gpu_seconds"] <= 6 * 3600, u
        assert u["cpu_seconds"] > 6 * 3600 and u["predictions"] > 1000, u
        assert u["cost_per_1000_predictions"] > 0, u
    assert gpus == 4
    [notebook] = idle
    assert notebook.worker == demo.worker_names(4)[3] and notebook.held_by == {"": 12 * 2**30}
