"""Test helper: a throwaway real Prometheus server (Debian package ``prometheus``).

:class:`PrometheusServer` writes a config into ``base_dir``, starts the packaged
``prometheus`` on a free loopback port with its TSDB in ``base_dir`` and waits
until ``/-/ready`` answers. It scrapes the given targets (``host:port`` serving
``/metrics``) at a short interval and can load rule files, so a test can check
what Prometheus really makes of the agent's exposition, and run any PromQL
expression (Grafana panels, alert rules) against it through the HTTP API.

The config is written as JSON, which is valid YAML: no YAML library needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from influx_server import free_port, terminate

__all__ = ["PrometheusServer", "PrometheusError", "find_prometheus", "require_tool", "INSTALL_HINT"]

INSTALL_HINT = (
    "prometheus not found: install it with `apt-get update && apt-get install -y prometheus`"
)
DEFAULT_JOB = "fleetgauge"

Result = list[dict[str, Any]]


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary, or None when it is not installed."""
    return shutil.which("prometheus")


def require_tool(name: str = "prometheus") -> str:
    """Path of ``prometheus`` or ``promtool`` (Debian package ``prometheus``).

    A missing binary skips the test on a developer's machine and fails it on CI
    (``CI`` set), where scripts/test installs it: nothing is skipped silently there.
    """
    import os

    import pytest

    binary = shutil.which(name)
    if binary is None:
        hint = INSTALL_HINT.replace("prometheus not", f"{name} not", 1)
        if os.environ.get("CI"):
            pytest.fail(hint)
        pytest.skip(hint)
    return binary


class PrometheusError(RuntimeError):
    """Prometheus answered an API call with an error (bad PromQL, bad config, ...)."""


class PrometheusServer:
    """A real ``prometheus`` whose config, TSDB and log live under ``base_dir``.

    ``scrape_targets`` (``host:port``) form one job called ``job``; more scrape jobs
    (``extra_scrape_configs``, dicts as in prometheus.yml) and ``rule_files`` can be
    added, and ``extra_config`` is merged into the top level of the config.
    """

    def __init__(
        self,
        base_dir: Path,
        scrape_targets: Sequence[str],
        scrape_interval: str = "1s",
        *,
        job: str = DEFAULT_JOB,
        evaluation_interval: str | None = None,
        rule_files: Sequence[Path] = (),
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
        extra_config: Mapping[str, Any] | None = None,
        binary: str | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.scrape_targets = list(scrape_targets)
        self.scrape_interval = scrape_interval
        self.job = job
        self.evaluation_interval = evaluation_interval or scrape_interval
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.extra_scrape_configs = [dict(c) for c in extra_scrape_configs]
        self.extra_config = dict(extra_config or {})
        self.binary = binary or find_prometheus() or "prometheus"
        self.port = free_port()
        self.config_path = self.base_dir / "prometheus.json"
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> dict[str, Any]:
        """The configuration Prometheus is given (as prometheus.yml would hold it)."""
        scrape = {
            "job_name": self.job,
            "scrape_interval": self.scrape_interval,
            "scrape_timeout": self.scrape_interval,
            "static_configs": [{"targets": self.scrape_targets}],
        }
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [scrape, *self.extra_scrape_configs],
            **self.extra_config,
        }

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write the config, launch ``prometheus`` and wait until ``/-/ready`` answers 200."""
        if self.is_running():
            return self
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._log = open(self.log_path, "ab")  # closed in stop()
        try:
            self._proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError:
            self.stop()
            raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200 and self._proc.poll() is None:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        state = f"exited {self._proc.returncode}" if self._proc.poll() is not None else "not ready"
        self.stop()
        raise RuntimeError(
            f"prometheus {state} on {self.url} after {timeout:.0f} s;"
            f" log {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM ``prometheus`` and wait for it, killing it after ``timeout`` seconds."""
        terminate(self._proc, timeout)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    # --- HTTP API --------------------------------------------------------------
    def api(self, path: str, params: Mapping[str, str] | None = None, method: str = "GET") -> Any:
        """``data`` of a ``/api/v1/...`` answer; PrometheusError when its status is error."""
        url = f"{self.url}/api/v1/{path}"
        body = None
        if params and method == "POST":
            body = urlencode(params).encode()
        elif params:
            url += "?" + urlencode(params)
        req = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error body
            try:
                answer = json.load(exc)
            except ValueError:
                raise PrometheusError(f"{path}: HTTP {exc.code}") from exc
        if answer.get("status") != "success":
            raise PrometheusError(
                f"{path} {dict(params or {})}: {answer.get('errorType')}: {answer.get('error')}"
            )
        return answer["data"]

    def query(self, promql: str, at: float | None = None) -> Result:
        """Instant query: one dict per series (``metric`` labels, ``value`` [time, "text"])."""
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        data = self.api("query", params, method="POST")
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, promql: str, start: float, end: float, step: str) -> Result:
        """Range query: one dict per series (``metric`` labels, ``values`` [[time, "text"]])."""
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        return list(self.api("query_range", params, method="POST")["result"])

    def wait_for(
        self,
        promql: str,
        timeout: float = 15.0,
        accept: Callable[[Result], bool] = bool,
        interval: float = 0.25,
    ) -> Result:
        """Poll ``promql`` until ``accept(result)`` (default: non-empty); TimeoutError else."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if accept(result):
                return result
            if time.monotonic() >= deadline or not self.is_running():
                try:
                    targets: object = self.target_health()
                except (OSError, PrometheusError) as exc:
                    targets = f"unknown ({exc})"
                raise TimeoutError(
                    f"{promql!r} still gave {result!r} after {timeout:.0f} s;"
                    f" targets: {targets}; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def targets(self) -> Result:
        """The active scrape targets as ``/api/v1/targets`` lists them."""
        return list(self.api("targets", {"state": "active"})["activeTargets"])

    def target_health(self) -> dict[str, str]:
        """``scrapeUrl`` -> ``up``/``down``/``unknown`` (with the last error) per active target."""
        return {
            t["scrapeUrl"]: t["health"] + (f" ({t['lastError']})" if t.get("lastError") else "")
            for t in self.targets()
        }

    def rules(self) -> list[dict[str, Any]]:
        """The rule groups loaded from ``rule_files`` (``/api/v1/rules``), with their health."""
        return list(self.api("rules")["groups"])

    def reload(self) -> None:
        """Re-read the config file (``POST /-/reload``), e.g. after rule files changed."""
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        req = urllib.request.Request(self.url + "/-/reload", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"reload failed: {exc.read().decode(errors='replace')}") from exc

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return "<no log>"

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
