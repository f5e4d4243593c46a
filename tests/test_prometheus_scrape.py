"""A real Prometheus scrapes the agent: the user queries its CPU and memory through PromQL.

The agent samples every 0.5 s into a SQLite store; the packaged ``prometheus``
scrapes its ``/metrics`` every second. Everything the test asks goes through
Prometheus' HTTP API, so it checks what a Prometheus user really gets. On CI
(``CI`` set) a missing ``prometheus`` binary fails the test instead of skipping it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess
from prometheus_server import PrometheusServer, require_tool

from fleetgauge import catalogue

ENVIRONMENT = "prom-scrape"
CPU_USAGE, _ = catalogue.prometheus_name(catalogue.CPU, catalogue.CPU.get_field("usage_percent"))
MEMORY_USED, _ = catalogue.prometheus_name(
    catalogue.MEMORY, catalogue.MEMORY.get_field("used_bytes")
)
MEMORY_TOTAL, _ = catalogue.prometheus_name(
    catalogue.MEMORY, catalogue.MEMORY.get_field("total_bytes")
)
SAMPLES = catalogue.AGENT_SAMPLES.name


@pytest.fixture
def prometheus_binary() -> str:
    """Path of ``prometheus``; skip when missing, but fail on CI."""
    return require_tool()


@pytest.fixture
def scraped_agent(
    tmp_path: Path, prometheus_binary: str
) -> Iterator[tuple[AgentProcess, PrometheusServer, str]]:
    """An agent with a unique worker name, and a Prometheus scraping it every second."""
    worker = f"prom-{uuid.uuid4().hex[:8]}"
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    store = f"sqlite:///{tmp_path / 'agent.db'}"
    args = ("--store", store, "--interval", "0.5", "--flush-interval", "1")
    with AgentProcess(agent_dir, *args, "--worker", worker, "--environment", ENVIRONMENT) as agent:
        target = f"127.0.0.1:{agent.metrics_port}"
        with PrometheusServer(tmp_path / "prometheus", [target], binary=prometheus_binary) as prom:
            yield agent, prom, worker


def _value(series: dict) -> float:
    return float(series["value"][1])


def test_prometheus_scrapes_cpu_and_memory_of_this_worker(
    scraped_agent: tuple[AgentProcess, PrometheusServer, str],
) -> None:
    agent, prom, worker = scraped_agent
    selector = f'{{worker="{worker}",environment="{ENVIRONMENT}"}}'

    up = prom.wait_for(f'up{{job="{prom.job}",instance="127.0.0.1:{agent.metrics_port}"}} == 1')
    assert len(up) == 1, up

    cpu = prom.wait_for(CPU_USAGE + selector)
    assert len(cpu) == 1, cpu
    labels = cpu[0]["metric"]
    assert labels["__name__"] == CPU_USAGE
    assert (labels["worker"], labels["environment"]) == (worker, ENVIRONMENT)
    assert labels["instance"] == f"127.0.0.1:{agent.metrics_port}"
    assert 0.0 <= _value(cpu[0]) <= 1.0

    used = prom.wait_for(MEMORY_USED + selector)
    total = prom.wait_for(MEMORY_TOTAL + selector)
    assert len(used) == len(total) == 1, (used, total)
    assert used[0]["metric"]["worker"] == total[0]["metric"]["worker"] == worker
    assert 0 < _value(used[0]) < _value(total[0])

    first = prom.wait_for(SAMPLES + selector)
    assert _value(first[0]) >= 1
    later = prom.wait_for(f"{SAMPLES}{selector} > {_value(first[0])}", timeout=10)
    assert _value(later[0]) > _value(first[0])
    rate = prom.wait_for(f"rate({SAMPLES}{selector}[5s]) > 0", timeout=10)
    assert 0.5 <= _value(rate[0]) <= 4.0, rate  # one sample per 0.5 s: about 2 per second

    assert prom.target_health() == {f"http://127.0.0.1:{agent.metrics_port}/metrics": "up"}
