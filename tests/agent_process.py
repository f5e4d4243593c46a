"""Test helper: ``fleetgauge agent`` as a real process, its /metrics and its log."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from influx_server import free_port
from prometheus_client.parser import text_string_to_metric_families

from fleetgauge import protocol


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def push_metrics(conn: http.client.HTTPConnection, items: list[dict]) -> tuple[int, dict]:
    """POST ``items`` to ``/v1/metrics`` on a kept-alive connection: status and JSON answer."""
    conn.request(
        "POST",
        protocol.PUSH_METRICS_PATH,
        json.dumps({"metrics": items}),
        {"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read())


class AgentProcess:
    """Runs the agent with ``args`` (plus free metrics and push ports and a spool in ``workdir``).

    A ``--push-port`` in ``args`` wins over the free one (the last flag counts).
    """

    def __init__(self, workdir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.metrics_port = free_port()
        self.push_port = free_port()
        if "--push-port" in args:
            self.push_port = int(args[args.index("--push-port") + 1])
        self.log_path = workdir / "agent.log"
        self.args = [
            sys.executable,
            "-m",
            "fleetgauge",
            "agent",
            "--metrics-port",
            str(self.metrics_port),
            "--push-port",
            str(self.push_port),
            "--spool-dir",
            str(workdir / "spool"),
            *args,
        ]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> AgentProcess:
        """Start and wait until /metrics answers."""
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.started_ns = time.time_ns()
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}:\n{self.log()}")
            try:
                self.scrape()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"agent /metrics did not answer:\n{self.log()}")

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        token = self.env.get("FLEETGAUGE_METRICS_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=5
        ) as resp:
            return resp.read().decode()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample on /metrics keyed by (name, sorted labels)."""
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(self.scrape())
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            v
            for (n, ls), v in self.samples().items()
            if n == name and labels.items() <= dict(ls).items()
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> tuple[int, float]:
        """Send ``sig`` and wait; returns (exit code, seconds it took to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code, time.monotonic() - started

    def post(
        self, path: str, body: object, token: str | None = None, raw: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """POST ``body`` (JSON-encoded unless ``raw`` bytes) to the push endpoint."""
        data = body if raw else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.push_port}{path}", data=data, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(signal.SIGKILL)
