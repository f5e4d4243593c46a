"""The alerting rules a fleetgauge user loads into Prometheus, checked with the real tools.

The committed rule file is what ``fleetgauge.agent.stack.prometheus`` makes from the data
model; ``promtool`` accepts it and passes its unit tests (one firing and one quiet
case per alert); and a real Prometheus that scrapes real agents (one healthy with
two fake GPUs, one whose InfluxDB is unreachable, and a target where nothing
listens) evaluates every rule without error, selects only series that exist, and
raises the alerts a user of that fleet should see, with their labels and
annotations filled in. On CI (``CI`` set) a missing ``promtool`` or
``prometheus`` fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_process import AgentProcess
from influx_server import free_port
from prometheus_server import PrometheusServer, require_tool

from fleetgauge import catalogue, protocol
from fleetgauge.agent.stack import prometheus as rules

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / rules.RULES_PATH
RULES_TEST_FILE = RULES_FILE.with_name("fleetgauge.rules.test.yml")
TESTS_DIR = Path(__file__).resolve().parents[1]
ENVIRONMENT = "rules-test"
BY_NAME = {a.name: a for a in rules.ALERTS}
LABEL_REF = re.compile(r"\$labels\.(\w+)")

CATALOGUE_METRICS = {
    rules.UP,
    catalogue.GPUS_METRIC,
    catalogue.GPU_XID_METRIC,
    catalogue.GPU_PROCESSES_METRIC,
    *(m.name for m in catalogue.AGENT_HEALTH),
    *(
        catalogue.prometheus_name(m, f)[0]
        for m in catalogue.RESOURCE_MEASUREMENTS
        for f in m.fields
        if f.type is not str
    ),
}
"""Every metric name a scraped agent can have, and ``up``."""


@pytest.fixture
def promtool() -> str:
    """Path of ``promtool`` (Debian package ``prometheus``); skip when missing, fail on CI."""
    return require_tool("promtool")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


# --- the file and promtool ---------------------------------------------------------------
def test_the_committed_rule_file_is_what_the_data_model_generates() -> None:
    assert rules.files() == {rules.RULES_PATH: RULES_FILE.read_text(encoding="utf-8")}, (
        f"{rules.RULES_PATH} is out of date: run python -m fleetgauge.agent.stack"
    )
    text = RULES_FILE.read_text(encoding="utf-8")
    assert text.startswith("# ") and "python -m fleetgauge.agent.stack" in text.splitlines()[0]


def test_the_stacks_prometheus_loads_the_rules_and_scrapes_agents_in_their_job() -> None:
    config_path = ROOT / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    globs = [config_path.parent / g for g in config["rule_files"]]
    assert [g for g in globs if RULES_FILE.match(str(g))], (globs, RULES_FILE)
    assert not [g for g in globs if RULES_TEST_FILE.match(str(g))], "unit tests are not rules"
    jobs = [c["job_name"] for c in config["scrape_configs"]]
    assert rules.JOB in jobs, f"FleetgaugeAgentDown selects job {rules.JOB!r}; jobs: {jobs}"


def test_every_rule_names_only_catalogue_metrics_and_labels_its_alerts_carry() -> None:
    groups = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))["groups"]
    loaded = [rule for group in groups for rule in group["rules"]]
    assert [r["alert"] for r in loaded] == list(BY_NAME), "one rule per Alert, in order"
    assert len(BY_NAME) == len(rules.ALERTS), "alert names are unique"
    for rule in loaded:
        alert = BY_NAME[rule["alert"]]
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"] == {"severity": alert.severity}
        assert alert.severity in (rules.CRITICAL, rules.WARNING, rules.INFO)
        assert set(rule["annotations"]) == {"summary", "description"}
        selected = set(re.findall(r"\b(?:fleetgauge_\w+|up)\b(?=\s*[{\[)\s]|$)", rule["expr"]))
        assert selected == set(alert.metrics), (alert.name, selected)
        assert set(alert.metrics) <= CATALOGUE_METRICS, alert.name
        used = {x for text in rule["annotations"].values() for x in LABEL_REF.findall(text)}
        assert used and used <= set(alert.labels), (alert.name, used - set(alert.labels))
    assert f'up{{job="{rules.JOB}"}}' in BY_NAME["FleetgaugeAgentDown"].expr


def test_promtool_accepts_the_rule_file(promtool: str) -> None:
    done = _run(promtool, "check", "rules", rules.RULES_PATH)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules.ALERTS)} rules found" in done.stdout, done.stdout


def test_promtool_unit_tests_fire_and_stay_quiet_for_every_alert(promtool: str) -> None:
    done = _run(promtool, "test", "rules", str(RULES_TEST_FILE.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "FAILED" not in done.stdout, done.stdout

    spec = yaml.safe_load(RULES_TEST_FILE.read_text(encoding="utf-8"))
    assert spec["rule_files"] == [RULES_FILE.name]
    cases = [case for test in spec["tests"] for case in test["alert_rule_test"]]
    firing = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert firing == quiet == set(BY_NAME), (set(BY_NAME) - firing, set(BY_NAME) - quiet)


# --- a real Prometheus scraping real agents ---------------------------------------------
FAKE_GPU_AGENT = """
import sys
sys.path.insert(0, {tests!r})
import pynvml
from collectors.fake_nvml import GIB, FakeGpu, FakeNvml
sys.modules["pynvml"] = FakeNvml([
    FakeGpu(uuid="GPU-busy", utilization_percent=99, memory_used=78 * GIB,
            clocks_event_reasons=pynvml.nvmlClocksEventReasonSwPowerCap,
            remapped_rows=(0, 0, 1, 0)),
    FakeGpu(uuid="GPU-idle", utilization_percent=3, memory_used=2 * GIB,
            compute_processes=[(4242, 2 * GIB)]),
], xid_file={xid_file!r})
from fleetgauge.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""The real agent, with NVML replaced by the fake the GPU collector tests use: GPU 0 busy, at
its power cap, a row remap pending; GPU 1 held by a process at 3 %; an XID is injected by a
line in ``xid_file``."""


@dataclass
class Fleet:
    prom: PrometheusServer
    healthy: AgentProcess  # SQLite store, two fake GPUs (GPU 0 at 99 %, 78 of 80 GiB)
    broken: AgentProcess  # InfluxDB store that is down, 1 MiB spool, no samples held in memory
    healthy_worker: str
    broken_worker: str
    dead_target: str  # a port nobody listens on, in the agents' job

    def target(self, agent: AgentProcess) -> str:
        return f"127.0.0.1:{agent.metrics_port}"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Two agents and a dead target, scraped every second in the job the rules expect."""
    binary = require_tool()
    suffix = uuid.uuid4().hex[:6]
    healthy_worker, broken_worker = f"healthy-{suffix}", f"broken-{suffix}"
    common = ("--environment", ENVIRONMENT, "--interval", "0.5", "--flush-interval", "0.5")
    (tmp_path / "healthy").mkdir()
    (tmp_path / "broken").mkdir()
    healthy = AgentProcess(
        tmp_path / "healthy",
        *common,
        "--worker",
        healthy_worker,
        "--store",
        f"sqlite:///{tmp_path / 'healthy.db'}",
        "--collectors",
        "cpu,memory,disk,gpu",
    )
    assert healthy.args[1:3] == ["-m", "fleetgauge"]
    xid_file = tmp_path / "healthy" / "xids"
    healthy.args[1:3] = ["-c", FAKE_GPU_AGENT.format(tests=str(TESTS_DIR), xid_file=str(xid_file))]
    dead_influx = f"influxdb+http://127.0.0.1:{free_port()}/fleet?org=test&timeout=1"
    broken = AgentProcess(
        tmp_path / "broken",
        *common,
        "--worker",
        broken_worker,
        "--store",
        dead_influx,
        "--collectors",
        "cpu,memory",
        "--spool-max-bytes",
        "1MiB",
        "--reserve-max-points",
        "0",
    )
    dead_target = f"127.0.0.1:{free_port()}"
    with healthy, broken:
        targets = [f"127.0.0.1:{a.metrics_port}" for a in (healthy, broken)] + [dead_target]
        prom = PrometheusServer(
            tmp_path / "prometheus",
            targets,
            job=rules.JOB,
            rule_files=[RULES_FILE],
            binary=binary,
        )
        with prom:
            yield Fleet(prom, healthy, broken, healthy_worker, broken_worker, dead_target)


def _labels(series: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in series["metric"].items() if k != "__name__"}


def _who(labels: dict[str, str]) -> tuple[str, ...]:
    """What an alert is about: the worker (and device or reason), or the target for ``up``."""
    keys = ("worker", "gpu", "reason") if catalogue.WORKER in labels else ("instance",)
    return tuple(labels[k] for k in keys if k in labels)


def test_a_real_prometheus_raises_the_alerts_this_fleet_deserves(fleet: Fleet) -> None:
    prom, healthy, broken = fleet.prom, fleet.healthy_worker, fleet.broken_worker
    broken_target = fleet.target(fleet.broken)

    # Given: both agents scraped, the healthy one has written, its fake GPUs are exposed,
    # and the broken one's drop counters were seen at zero...
    prom.wait_for(f'{rules.UP}{{instance="{fleet.dead_target}"}} == 0')
    prom.wait_for(f'{catalogue.AGENT_LAST_WRITE.name}{{worker="{healthy}"}} > 0')
    prom.wait_for(BY_NAME["FleetgaugeGpuBusy"].metrics[0], accept=lambda r: len(r) == 2)
    (fleet.healthy.workdir / "xids").write_text("0 79\n")  # GPU 0 reports XID 79
    prom.wait_for(catalogue.GPU_XID_METRIC)
    dropped = f'{catalogue.AGENT_POINTS_DROPPED.name}{{worker="{broken}",reason="spool_full"}}'
    prom.wait_for(f"{dropped} == 0")
    # ...then a model pushes more than its 1 MiB spool holds while the store is down: the
    # push is kept in memory, and with no room for samples there (the default keeps 40,000)
    # every new sample is dropped
    items = [{"metric": "score", "value": 1.0, "deployment": "d"} for _ in range(10_000)]
    status, answer = fleet.broken.post(protocol.PUSH_METRICS_PATH, {"metrics": items})
    assert status == 202, answer
    prom.wait_for(f"{dropped} > 0", timeout=30)
    prom.wait_for(BY_NAME["FleetgaugeSpoolGrowing"].expr, timeout=30)

    # Every metric a rule selects has series, labelled as the rule's alerts are.
    for alert in rules.ALERTS:
        for metric in alert.metrics:
            assert prom.query(metric), f"{alert.name}: no series called {metric}"
        for series in prom.query(alert.metrics[0]):
            assert set(_labels(series)) == set(alert.labels), (alert.name, series)

    # Every expression evaluates; what it returns is what this fleet's user should see.
    expected = {
        "FleetgaugeAgentDown": {(fleet.dead_target,)},
        "FleetgaugeAgentMissing": set(),
        "FleetgaugeAgentNotSampling": set(),
        "FleetgaugeCollectorFailing": set(),
        "FleetgaugeStoreWriteErrors": {(broken,)},
        "FleetgaugeSpoolGrowing": {(broken,)},
        "FleetgaugePointsDropped": {(broken, "spool_full")},
        "FleetgaugeNoRecentWrite": set(),
        "FleetgaugeNeverWrote": {(broken,)},
        "FleetgaugeGpuBusy": {(healthy, "0")},
        "FleetgaugeGpuMemoryFull": {(healthy, "0")},
        "FleetgaugeGpuXidError": {(healthy, "0")},
        "FleetgaugeGpuUncorrectableEcc": set(),
        "FleetgaugeGpuRowRemapPending": {(healthy, "0")},
        "FleetgaugeGpuThermalThrottling": set(),
        "FleetgaugeGpuPowerThrottling": {(healthy, "0")},
        "FleetgaugeGpuMissing": set(),
        "FleetgaugeGpuIdleButAllocated": {(healthy, "1")},  # held at 3 %
    }  # CPU, memory and disk depend on the machine running the tests: only evaluated
    assert set(expected) | {
        "FleetgaugeCpuBusy",
        "FleetgaugeMemoryFull",
        "FleetgaugeDiskFull",
    } == set(BY_NAME)
    for alert in rules.ALERTS:
        result = prom.query(alert.expr)
        for series in result:
            assert set(_labels(series)) == set(alert.labels), (alert.name, series)
        if alert.name in expected:
            assert {_who(_labels(s)) for s in result} == expected[alert.name], (alert.name, result)

    # Prometheus evaluates every loaded rule without error...
    loaded = _wait_for_rules(prom)
    assert sorted(r["name"] for r in loaded) == sorted(BY_NAME)  # (groups come by name)
    # ...and holds the alerts with their severity and annotations filled in from real labels.
    pending = _wait_for_alerts(prom, {(n, w) for n, ws in expected.items() for w in ws})
    for alert_json in pending:
        labels, alert = alert_json["labels"], BY_NAME[alert_json["labels"]["alertname"]]
        assert labels["severity"] == alert.severity
        for key, template in (("summary", alert.summary), ("description", alert.description)):
            text = alert_json["annotations"][key]
            assert "{{" not in text and "<no value>" not in text, text
            for label in LABEL_REF.findall(template):
                assert labels[label] in text, (alert.name, key, text)
    assert any(
        a["annotations"]["summary"] == f"spool of {broken} ({ENVIRONMENT}) is growing"
        for a in pending
    ), pending

    # When the broken agent's target leaves the configuration (no failing scrape to see),
    # the worker it reported is missing, and it is not "down".
    prom.scrape_targets.remove(broken_target)
    prom.reload()
    missing = prom.wait_for(BY_NAME["FleetgaugeAgentMissing"].expr, timeout=30)
    assert [_labels(s) for s in missing] == [
        {"worker": broken, "environment": ENVIRONMENT, "instance": broken_target, "job": rules.JOB}
    ]
    assert {_who(_labels(s)) for s in prom.query(BY_NAME["FleetgaugeAgentDown"].expr)} == {
        (fleet.dead_target,)
    }


def _wait_for_rules(prom: PrometheusServer, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The loaded rules once each was evaluated; fails naming any rule in error."""
    result: list[dict[str, Any]] = []

    def evaluated(_: object) -> bool:
        result[:] = [rule for group in prom.rules() for rule in group["rules"]]
        errors = {r["name"]: r.get("lastError") for r in result if r["health"] == "err"}
        assert not errors, errors
        return bool(result) and all(r["health"] == "ok" for r in result)

    prom.wait_for("vector(1)", timeout=timeout, accept=evaluated)
    return result


def _wait_for_alerts(
    prom: PrometheusServer, expected: set[tuple[str, tuple[str, ...]]], timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Active alerts (pending or firing) once every (alertname, who) expected is among them."""
    alerts: list[dict[str, Any]] = []

    def present(_: object) -> bool:
        alerts[:] = prom.api("alerts")["alerts"]
        seen = {(a["labels"]["alertname"], _who(a["labels"])) for a in alerts}
        return expected <= seen

    try:
        prom.wait_for("vector(1)", timeout=timeout, accept=present)
    except TimeoutError:
        raise AssertionError(json.dumps(alerts, indent=1)) from None
    return alerts
