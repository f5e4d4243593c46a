"""``fleetgauge demo``: demo history, this machine's agent, a simulated model and the dashboard.

The agent and the dashboard run as child processes started exactly as a user
would start them (``fleetgauge agent``, ``fleetgauge dashboard``), so the demo
shows the real programs, not a special mode of them. The simulated model runs
in a thread of this process and records through the SDK, as model code would.

Children run in their own process group, so a Ctrl-C on the terminal reaches
this process only: it stops the model first (its last scores still reach the
agent), then sends SIGTERM to the children, waits, and kills what is left. On
Linux a child also gets SIGTERM if this process dies without cleaning up.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, TypeVar
from urllib.parse import urlsplit

from fleetgauge.agent.demo import seed as demo
from fleetgauge.agent.writer_lock import StoreInUse, WriterLock
from fleetgauge.protocol import DEFAULT_PUSH_URL, PUSH_URL_ENV
from fleetgauge.sdk import MetricsClient
from fleetgauge.stores import Store, default_store_url, open_store

__all__ = ["DemoSettings", "run_demo"]

_URL_LINE = re.compile(r"fleetgauge dashboard on (http://\S+)")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
DEMO_PRICES = ("gpu-hour=2.5", "cpu-core-hour=0.04")
"""Illustrative prices, so the Pipeline page shows a cost per 1,000 predictions."""
T = TypeVar("T")


@dataclass(frozen=True)
class DemoSettings:
    """What ``fleetgauge demo`` was asked for; ``store`` None: the default store
    (``$FLEETGAUGE_STORE`` or the embedded file), unless another agent writes it."""

    store: str | None = None
    port: int = 8050
    hours: float = 24.0
    workers: int = 4


class DemoFailed(Exception):
    """A child exited on its own, or did not come up: the demo cannot go on."""


class _Stopped(Exception):
    """Stopping was asked for (Ctrl-C, SIGTERM) before everything was up."""


@dataclass
class _Child:
    """One child process and the file its output goes to."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise DemoFailed(
                f"the {self.name} exited early (code {self.proc.returncode});"
                f" its log, {self.log_path}, ends with:\n{_tail(self.log_path)}"
            )


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join("  " + line for line in text.splitlines()[-lines:])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Linux: SIGTERM this child when the demo process goes away (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Demo:
    """The running demo: its directory, children and model thread; ``stop()`` undoes all."""

    def __init__(self, settings: DemoSettings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop_requested = stop
        self.directory = Path(tempfile.mkdtemp(prefix="fleetgauge-demo-"))
        self.store = settings.store or default_store_url()
        self.store_note = ""
        self.worker = socket.gethostname()
        self.url = ""
        self.push_port = self.metrics_port = 0
        self.children: list[_Child] = []
        self.client: MetricsClient | None = None
        self.model_thread: threading.Thread | None = None
        self.fleet_thread: threading.Thread | None = None
        self.fleet_store: Store | None = None
        self.model_stop = threading.Event()

    def _spawn(self, name: str, *args: str) -> _Child:
        log_path = self.directory / f"{name}.log"
        log = log_path.open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetgauge", name, "--store", self.store, *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = _Child(name, proc, log_path, log)
        self.children.append(child)
        return child

    def _wait(self, what: str, ready: Callable[[], T | None]) -> T:
        """Poll ``ready()`` until it gives something, a child dies or stopping is asked for."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.stop_requested.is_set():
            if result := ready():
                return result
            for child in self.children:
                child.check()
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what} did not come up in {STARTUP_TIMEOUT_S:g} s")
            time.sleep(0.1)
        raise _Stopped

    def preflight(self) -> None:
        """Ports first, before any history is written: a busy one is one line, nothing left.

        The push endpoint takes the port the SDK sends to (``FLEETGAUGE_PUSH_URL``, else
        the default) when it is local and free, so the SDK reaches the demo's agent with
        no settings; else any free port, and the demo says what to export. The default
        store is used unless another agent writes it (then a file in the demo directory).
        """
        s = self.settings
        if s.port and not _port_free(s.port):
            raise ValueError(
                f"--port {s.port} on 127.0.0.1: Address already in use (another dashboard or"
                " demo?); pick another port, or --port 0 for any free one"
            )
        if not s.store and (holder := _writer(self.store)):
            self.store_note = (
                f"The default store {self.store} is written by another agent ({holder});"
                " the demo uses a store of its own."
            )
            self.store = f"sqlite:///{self.directory / 'demo.db'}"
        wanted = urlsplit(os.environ.get(PUSH_URL_ENV) or DEFAULT_PUSH_URL)
        local = wanted.hostname in ("127.0.0.1", "localhost") and wanted.port
        self.push_port = wanted.port if local and _port_free(wanted.port) else _free_port()
        self.metrics_port = _free_port()

    def start(self) -> None:
        s = self.settings
        _say(f"Demo directory: {self.directory}")
        if self.store_note:
            _say(self.store_note)
        _say(f"Writing {s.hours:g} h of demo history for {s.workers} workers into {self.store} ...")
        store = open_store(self.store)
        try:
            points = demo.seed(store, time.time_ns(), hours=s.hours, workers=s.workers)
        finally:
            store.close()
        _say(f"  {points} points written")
        self._spawn(
            "agent",
            "--worker", self.worker,
            "--environment", demo.ENVIRONMENT,
            "--interval", "1",
            "--flush-interval", "1",
            "--push-host", "127.0.0.1",
            "--push-port", str(self.push_port),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            "--spool-dir", str(self.directory / "spool"),
        )  # fmt: skip
        prices = [flag for price in DEMO_PRICES for flag in ("--price", price)]
        dashboard = self._spawn("dashboard", "--host", "127.0.0.1", "--port", str(s.port), *prices)
        self.url = self._wait("the dashboard", lambda: _dashboard_url(dashboard.log_path))
        self._wait("the agent's push endpoint", lambda: _listening(self.push_port))
        # (both simulated deployments record from this one process: their model processes
        # are the simulated workers' to report, not this one's)
        self.client = MetricsClient(
            url=f"http://127.0.0.1:{self.push_port}",
            pipeline=demo.PIPELINE,
            register_process=False,
        )
        model = demo.SimulatedModel(self.client, history_hours=s.hours)
        self.model_thread = threading.Thread(
            target=model.run, args=(self.model_stop,), name="demo-model", daemon=True
        )
        self.model_thread.start()
        self.fleet_store = open_store(self.store)
        fleet = demo.SimulatedWorkers(self.fleet_store, s.workers)
        self.fleet_thread = threading.Thread(
            target=fleet.run, args=(self.model_stop,), name="demo-workers", daemon=True
        )
        self.fleet_thread.start()

    def describe(self) -> None:
        s = self.settings
        workers = demo.worker_names(s.workers)
        shown = workers[0] if len(workers) == 1 else f"{workers[0]} .. {workers[-1]}"
        _say()
        _say(f"  fleetgauge dashboard:  {self.url}")
        _say()
        _say("Running:")
        _say(
            f"  agent       this machine as worker {self.worker!r}, environment"
            f" {demo.ENVIRONMENT!r}, a sample every 1 s;"
            f" push endpoint http://127.0.0.1:{self.push_port},"
            f" /metrics on http://127.0.0.1:{self.metrics_port}/metrics"
        )
        _say(
            f"  model       simulated, in this process: {' and '.join(demo.DEPLOYMENTS)} record"
            f" a {demo.SCORE!r} per prediction, a few a second; {demo.DRIFTING} drifts worse"
        )
        _say(f"  dashboard   {self.url} (store {self.store})")
        _say(
            f"Demo data:    {s.hours:g} h of synthetic history for {shown}"
            f" ({workers[0]} runs hot) and both deployments, environment {demo.ENVIRONMENT!r};"
            " the simulated workers go on reporting every 10 s"
        )
        _say(f"Logs:         {', '.join(str(c.log_path) for c in self.children)}")
        _say()
        push_url = f"http://127.0.0.1:{self.push_port}"
        sdk_url = os.environ.get(PUSH_URL_ENV) or DEFAULT_PUSH_URL
        exports = [f"FLEETGAUGE_STORE='{self.store}'"] if self.store != default_store_url() else []
        if urlsplit(sdk_url).port != self.push_port:
            exports.append(f"FLEETGAUGE_PUSH_URL={push_url}")
        if exports:
            _say("In another shell, to record into the demo and read it back:")
            _say(f"  export {' '.join(exports)}")
        else:
            _say(
                "In another shell, record_metric_value(...), get_metrics(...) and"
                " fleetgauge export reach the demo with no settings."
            )
        _say()
        _say("Ctrl-C stops everything.")

    def watch(self) -> None:
        """Return when stopping is asked for; DemoFailed when a child exits by itself."""
        while not self.stop_requested.wait(0.5):
            for child in self.children:
                child.check()

    def stop(self) -> None:
        """Stop the model (flushing what it recorded), then the children; close the logs."""
        self.model_stop.set()
        for thread in (self.model_thread, self.fleet_thread):
            if thread is not None:
                thread.join()
        if self.fleet_store is not None:
            self.fleet_store.close()
        if self.client is not None:
            self.client.close(timeout=3.0)
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in self.children:
            try:
                child.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(
                    f"fleetgauge demo: the {child.name} did not stop in {STOP_TIMEOUT_S:g} s;"
                    " killed",
                    file=sys.stderr,
                )
                child.proc.kill()
                child.proc.wait()
            child.log.close()


def _dashboard_url(log_path: Path) -> str | None:
    match = _URL_LINE.search(log_path.read_text(errors="replace")) if log_path.exists() else None
    return match.group(1) if match else None


def _port_free(port: int) -> bool:
    """Whether a listener could bind ``port`` on 127.0.0.1 now."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _writer(store: str) -> str | None:
    """Who holds the writer lock of a SQLite ``store`` ("pid N"), None when nobody does."""
    if not store.startswith("sqlite:///"):
        return None
    database = Path(store.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        WriterLock(database).release()
    except StoreInUse as e:
        return f"pid {e.holder}"
    return None


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def run_demo(settings: DemoSettings) -> int:
    """Run the demo until SIGINT, SIGTERM or SIGHUP; 0 when stopped so, 1 when a part failed."""
    if settings.hours <= 0 or settings.workers < 1:
        raise ValueError("--hours must be above 0 and --workers at least 1")
    if not 0 <= settings.port <= 65535:
        raise ValueError(f"--port {settings.port} is not a TCP port (0 to 65535)")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    running = _Demo(settings, stop)
    try:
        running.preflight()
    except ValueError:
        shutil.rmtree(running.directory, ignore_errors=True)
        raise
    code = 0
    try:
        running.start()
        running.describe()
        running.watch()
        _say("Stopping ...")
    except _Stopped:
        _say("Stopping ...")
    except DemoFailed as e:
        print(f"fleetgauge demo: {e}", file=sys.stderr)
        code = 1
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        kept = running.store.startswith("sqlite:///") and Path(
            running.store.removeprefix("sqlite:///")
        ).is_relative_to(running.directory)
        if kept:
            _say(f"Stopped. The demo store and logs stay in {running.directory}")
        else:  # the store lives elsewhere: the logs and spool were only the demo's
            shutil.rmtree(running.directory, ignore_errors=True)
            _say(f"Stopped. The demo data stays in {running.store}; its logs were removed")
    return code
