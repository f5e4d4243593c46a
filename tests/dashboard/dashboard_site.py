"""A seeded store with known values and a real ``fleetgauge dashboard`` process over it.

The seed is small and exact so a test can say what the user must see:

- environment ``test``, workers w1..w4, one sample a minute for 26 hours ending
  at the seed's ``end_ns`` (a whole minute);
- CPU: w1 97 %, w2 85 %, w3 40 % with one 100 % spike, w4 10 %; so two workers
  are over 80 %, the worst is w1 (critical), and the mean of all four is 58 %;
- memory 50 % everywhere, but w1 runs in a container at 90 % of its limit;
- GPU: w1 has two GPUs (20 % and 99 %), the others one at 50 %;
- disk 60 %, network 1 MB/s receive + 0.5 MB/s transmit per worker;
- w4 sends nothing for 30 minutes, 10 hours before the end (agent down);
- environment ``evil``: worker ``=HYPERLINK("x")`` for the CSV formula check;
- pipeline metric ``score``: 120 values for ``model-a`` (alternating 1 and 0,
  last one 0) and 60 values of 0.5 for ``model-b`` in the last 2 hours, and one
  ``model_reloaded`` event of ``model-a``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from influx_server import free_port, terminate

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.stores import Store

S = 1_000_000_000
MINUTE = 60 * S
HOURS = 26
WORKERS = ("w1", "w2", "w3", "w4")
CPU = {"w1": 97.0, "w2": 85.0, "w3": 40.0, "w4": 10.0}
SPIKE_AGO = 5 * 3600 * S
GAP_AGO = (10 * 3600 * S, 9 * 3600 * S + 30 * MINUTE)
EVIL_WORKER = '=HYPERLINK("x")'


@dataclass
class Seed:
    """The points written and the instant they end at."""

    end_ns: int
    points: list[Point] = field(default_factory=list)

    @property
    def start_ns(self) -> int:
        return self.end_ns - HOURS * 3600 * S


def _resources(env: str, worker: str, t: int, end_ns: int) -> list[Point]:
    tags = {catalogue.ENVIRONMENT: env, catalogue.WORKER: worker}
    cpu = CPU.get(worker, 30.0)
    if worker == "w3" and t == end_ns - SPIKE_AGO:
        cpu = 100.0
    points = [
        Point(catalogue.CPU.name, tags, {"usage_percent": cpu, "logical_count": 8}, t),
        Point(catalogue.MEMORY.name, tags, {"used_percent": 50.0, "used_bytes": 8e9}, t),
        Point(catalogue.DISK.name, {**tags, catalogue.MOUNT: "/"}, {"used_percent": 60.0}, t),
        Point(
            catalogue.NETWORK.name,
            {**tags, catalogue.INTERFACE: "eth0"},
            {"receive_bytes_per_second": 1e6, "transmit_bytes_per_second": 5e5},
            t,
        ),
    ]
    gpus = {"0": 20.0, "1": 99.0} if worker == "w1" else {"0": 50.0}
    for gpu, util in gpus.items():
        points.append(
            Point(
                catalogue.GPU_MEASUREMENT.name,
                {**tags, catalogue.GPU: gpu},
                {"utilization_percent": util, "memory_used_percent": 40.0},
                t,
            )
        )
    if worker == "w1":
        points.append(
            Point(
                catalogue.CONTAINER.name,
                tags,
                {"memory_used_percent": 90.0, "memory_limit_bytes": 16e9},
                t,
            )
        )
    return points


def _pipeline(end_ns: int) -> list[Point]:
    points = []
    for i in range(120):
        t = end_ns - (120 - i) * MINUTE + 7 * S
        tags = {
            catalogue.ENVIRONMENT: "test",
            catalogue.WORKER: "w2" if i % 2 else "w1",  # model-a: 0s on w1, 1s on w2
            catalogue.DEPLOYMENT: "model-a",
            catalogue.METRIC: "score",
        }
        points.append(Point(catalogue.PIPELINE_METRIC.name, tags, {"value": float(i % 2)}, t))
    for i in range(60):
        t = end_ns - (60 - i) * MINUTE + 13 * S
        tags = {
            catalogue.ENVIRONMENT: "test",
            catalogue.WORKER: "w3",
            catalogue.DEPLOYMENT: "model-b",
            catalogue.METRIC: "score",
        }
        points.append(Point(catalogue.PIPELINE_METRIC.name, tags, {"value": 0.5}, t))
    points.append(
        Point(
            catalogue.EVENT.name,
            {
                catalogue.ENVIRONMENT: "test",
                catalogue.EVENT_NAME: "model_reloaded",
                catalogue.EVENT_SOURCE: "test",
                catalogue.DEPLOYMENT: "model-a",
            },
            {"metadata": '{"version": 2}'},
            end_ns - 30 * MINUTE,
        )
    )
    return points


def seed(store: Store, end_ns: int) -> Seed:
    """Write the seed described in the module docstring into ``store``."""
    result = Seed(end_ns)
    for t in range(result.start_ns, end_ns, MINUTE):
        for worker in WORKERS:
            if worker == "w4" and end_ns - GAP_AGO[0] <= t < end_ns - GAP_AGO[1]:
                continue
            result.points += _resources("test", worker, t, end_ns)
        result.points += _resources("evil", EVIL_WORKER, t, end_ns)
    result.points += _pipeline(end_ns)
    for i in range(0, len(result.points), 5000):
        store.write(result.points[i : i + 5000])
    return result


class DashboardProcess:
    """``fleetgauge dashboard`` on a free loopback port, as a user starts it."""

    def __init__(self, store_url: str, log_path: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetgauge", "dashboard", "--store", store_url]
            + ["--port", str(self.port), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its workers are found by group in stop()
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited {self.proc.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/_dash-layout", timeout=2):
                    return
            except OSError as e:
                if getattr(e, "code", None) == 401:
                    return
                time.sleep(0.2)
        raise TimeoutError(f"dashboard not ready on {self.url}: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        terminate(self.proc)
        with contextlib.suppress(ProcessLookupError):  # a worker a long request kept alive
            os.killpg(self.proc.pid, signal.SIGKILL)  # would burn the next tests' CPU
        self._log.close()
        return self.proc.returncode


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    """GET ``url``: status, headers and text (errors too)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def no_traceback(text: str) -> bool:
    return not re.search(r"Traceback \(most recent call last\)", text)


@contextlib.contextmanager
def dashboard_over(store: Store, points: list[Point], log_path: Path) -> Iterator[str]:
    """Write ``points``, close ``store`` and serve a dashboard over it; yields the site's URL.

    On the way out the dashboard must stop cleanly with no traceback in its log.
    """
    store.write(points)
    url = store.url
    store.close()
    process = DashboardProcess(url, log_path)
    process.wait_ready()
    try:
        yield process.url
    except BaseException:
        process.stop()  # a failed test leaves no server behind
        raise
    assert process.stop() == 0, process.log()
    assert no_traceback(process.log()), process.log()
