"""prometheus/prometheus.yml and prometheus/targets/, checked by promtool and a real Prometheus.

The committed config names the token file compose writes inside the container
(``/run/secrets/fleetgauge_metrics_token``), which promtool wants to exist. So the config
is checked twice: in place with ``--syntax-only``, and in full as a copy whose only change
is that one path, pointing at a token file in a temporary directory, beside the repository's
own ``rules/`` and ``targets/``. The scrape test runs that copy (with a 1 s interval) in a
real ``prometheus`` against a real agent that listens off loopback and wants the token.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import stack_files as sf
import yaml
from agent_process import AgentProcess
from prometheus_server import PrometheusServer, require_tool

from fleetgauge.agent.stack import AGENT_JOB

CONFIG = sf.PROMETHEUS_DIR / "prometheus.yml"
SECRET_PATH = "/run/secrets/fleetgauge_metrics_token"
EXAMPLE = sf.PROMETHEUS_DIR / "targets" / "agents.yml.example"


def promtool(*args: str) -> subprocess.CompletedProcess:
    """Run Debian's promtool (package ``prometheus``) from the repository root."""
    binary = require_tool("promtool")
    return subprocess.run(
        [binary, *args], cwd=sf.ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def deployable_copy(base: Path, token: str, text: str | None = None) -> Path:
    """The config with the secret's path (and nothing else) pointing at a real token file."""
    text = CONFIG.read_text() if text is None else text
    assert text.count(SECRET_PATH) == 1, "one token file, named once"
    base.mkdir(parents=True, exist_ok=True)
    (base / "token").write_text(token + "\n")
    (base / "rules").symlink_to(sf.PROMETHEUS_DIR / "rules")
    (base / "targets").mkdir()
    config = base / "prometheus.yml"
    config.write_text(text.replace(SECRET_PATH, str(base / "token")))
    return config


def test_promtool_accepts_the_committed_config_as_it_is() -> None:
    done = promtool("check", "config", "--syntax-only", "prometheus/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_accepts_the_config_with_its_token_file_and_rules(tmp_path: Path) -> None:
    config = deployable_copy(tmp_path, "some-token")
    done = promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(r"SUCCESS: (\d+) rule files found", done.stdout)
    assert found and int(found.group(1)) >= 1, done.stdout


def test_without_the_token_file_promtool_refuses_the_config() -> None:
    done = promtool("check", "config", "prometheus/prometheus.yml")
    assert done.returncode != 0
    assert SECRET_PATH in done.stdout + done.stderr


def commented_static_example() -> list[dict[str, Any]]:
    """The static-targets example that prometheus.yml carries in comments, uncommented."""
    lines = CONFIG.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "Example: static targets" in line)
    block, indent = [], lines[start].partition("#")[0]
    for line in lines[start + 1 :]:  # the comment lines at the example's indentation
        if not line.startswith(indent + "# "):
            break
        block.append(indent + line.removeprefix(indent + "# "))
    return yaml.safe_load("\n".join(block))


def test_the_static_fleet_example_in_the_comments_is_valid(tmp_path: Path) -> None:
    example = commented_static_example()
    assert example[0]["targets"] == ["gpu-node-01:9108", "gpu-node-02:9108"]
    config = yaml.safe_load(CONFIG.read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == AGENT_JOB)
    job["static_configs"].extend(example)
    path = deployable_copy(tmp_path, "some-token", yaml.safe_dump(config))
    done = promtool("check", "config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_file_sd_example_is_a_list_of_target_groups() -> None:
    groups = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(groups, list) and groups
    for group in groups:
        assert set(group) <= {"targets", "labels"}, group
        assert all(re.fullmatch(r"[a-z0-9.-]+:9108", t) for t in group["targets"]), group
        assert all(isinstance(v, str) for v in group.get("labels", {}).values()), group
    config = yaml.safe_load(CONFIG.read_text())
    patterns = [
        f
        for j in config["scrape_configs"]
        for sd in j.get("file_sd_configs", [])
        for f in sd["files"]
    ]
    assert patterns, "prometheus.yml reads no target files"
    example = EXAMPLE.relative_to(sf.PROMETHEUS_DIR)
    assert not any(example.match(p) for p in patterns), "the stack would scrape the example"
    assert any(example.with_suffix("").match(p) for p in patterns), "copied, it is read"


class CommittedConfigPrometheus(PrometheusServer):
    """A real prometheus run with a given config instead of the helper's own."""

    def __init__(self, base_dir: Path, config: dict[str, Any]) -> None:
        super().__init__(base_dir, [])
        self._given = config

    def config(self) -> dict[str, Any]:
        return self._given


def test_prometheus_scrapes_a_worker_listed_in_targets_with_the_fleet_token(
    tmp_path: Path,
) -> None:
    token = "fleet-metrics-token-0123456789abcdef"
    agent = AgentProcess(
        tmp_path,
        "--store",
        f"sqlite:///{tmp_path / 'a.db'}",
        "--worker",
        "gpu-node-07",
        "--interval",
        "1",
        "--metrics-host",
        "0.0.0.0",
        env={"FLEETGAUGE_METRICS_TOKEN": token},
    )
    base = tmp_path / "prometheus"
    config = yaml.safe_load(deployable_copy(base, token).read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    rules = base / "rules"
    rules.unlink()  # the rules have their own tests; this one is about scraping
    rules.mkdir()
    prometheus = CommittedConfigPrometheus(base, config)
    with agent, prometheus:
        # the user copies the example and lists the worker: no restart
        shutil.copy(EXAMPLE, base / "targets" / "example.yml")
        worker = f"127.0.0.1:{agent.metrics_port}"
        (base / "targets" / "agents.yml").write_text(
            yaml.safe_dump([{"targets": [worker], "labels": {"rack": "b9"}}])
        )
        up = prometheus.wait_for(f'up{{job="{AGENT_JOB}", instance="{worker}"}} == 1', timeout=60)
        assert up[0]["metric"]["rack"] == "b9"
        samples = prometheus.wait_for(
            f'fleetgauge_agent_samples_total{{instance="{worker}"}}', timeout=30
        )
        assert samples[0]["metric"]["worker"] == "gpu-node-07"
        # the example's hosts are targets too (down here: those names do not resolve)
        example = prometheus.wait_for(
            f'up{{job="{AGENT_JOB}", rack="b2"}}', timeout=30, accept=lambda r: len(r) == 2
        )
        assert {s["metric"]["instance"] for s in example} == {
            "gpu-node-01.internal:9108",
            "gpu-node-02.internal:9108",
        }
        agent.stop()


def test_a_wrong_fleet_token_leaves_the_worker_down(tmp_path: Path) -> None:
    agent = AgentProcess(
        tmp_path,
        "--store",
        f"sqlite:///{tmp_path / 'a.db'}",
        "--metrics-host",
        "0.0.0.0",
        env={"FLEETGAUGE_METRICS_TOKEN": "the-agents-token-0123456789"},
    )
    base = tmp_path / "prometheus"
    config = yaml.safe_load(deployable_copy(base, "another-token-0123456789").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    (base / "rules").unlink()
    (base / "rules").mkdir()
    worker = f"127.0.0.1:{agent.metrics_port}"
    (base / "targets" / "agents.yml").write_text(yaml.safe_dump([{"targets": [worker]}]))
    with agent, CommittedConfigPrometheus(base, config) as prometheus:
        prometheus.wait_for(f'up{{instance="{worker}"}} == 0', timeout=30)
        url = f"http://{worker}/metrics"
        deadline = time.monotonic() + 15
        health = prometheus.target_health()
        while "401" not in health.get(url, "") and time.monotonic() < deadline:
            time.sleep(0.5)
            health = prometheus.target_health()
        assert "401" in health.get(url, ""), health
        agent.stop()
