"""Every query of the Grafana dashboards, run against the real servers Grafana would ask.

Grafana does not run here, so the test does what its data sources do: it
substitutes ``$timeFilter``, ``$__interval``, ``$__rate_interval``, ``$__range``
and the template variables the way Grafana formats them (multi-value variables
as ``(a|b)`` with regex metacharacters escaped, "All" as the ``allValue``
``.*``), then sends each InfluxQL query to the real ``influxd`` seeded with
known agent and pipeline data, and each PromQL expression to a real Prometheus
that scraped a running agent. It checks the series a user would see.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_process import AgentProcess
from prometheus_server import PrometheusServer, require_tool

from fleetgauge import catalogue
from fleetgauge.agent.stack import AGENT_JOB, generated_files, grafana
from fleetgauge.catalogue import Point
from fleetgauge.stores import open_store

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000
MINUTE = 60 * S
ALL = None
"""A variable set to "All"."""

# --- seeding ----------------------------------------------------------------------------
CPU = {"w1": 97.0, "w2": 85.0, "w3": 40.0, "w4": 10.0}
MEMORY = {"w1": 50.0, "w2": 90.0, "w3": 30.0, "w4": 20.0}
GPU_UTIL = {("w1", "0"): 20.0, ("w1", "1"): 99.0, ("w2", "0"): 85.0}
GPU_MEMORY = {("w1", "0"): 10.0, ("w1", "1"): 30.0, ("w2", "0"): 95.0}
DISK = {("w1", "/"): 50.0, ("w2", "/"): 50.0, ("w3", "/"): 50.0, ("w3", "/data"): 100.0}
NETWORK = {("w1", "eth0"): (1e6, 5e5), ("w1", "eth1"): (2e5, 0.0), ("w2", "eth0"): (1e6, 1e6)}
ENVIRONMENT_OF = {"w1": "prod", "w2": "prod", "w3": "prod", "w4": "dev"}
PIPELINE_VALUES = {
    ("churn-v1", "score"): lambda i: float(i % 2),
    ("churn-v2", "score"): lambda i: 0.25,
    ("churn-v1", "latency_ms"): lambda i: 12.0,
}


def _resource_points(t: int) -> Iterator[Point]:
    def p(m: catalogue.Measurement, worker: str, fields: dict, **device: str) -> Point:
        tags = {catalogue.ENVIRONMENT: ENVIRONMENT_OF[worker], catalogue.WORKER: worker, **device}
        return Point(m.name, tags, fields, t)

    for w, v in CPU.items():
        yield p(catalogue.CPU, w, {"usage_percent": v})
    for w, v in MEMORY.items():
        yield p(catalogue.MEMORY, w, {"used_percent": v})
    for (w, gpu), v in GPU_UTIL.items():
        fields = {"utilization_percent": v, "memory_used_percent": GPU_MEMORY[w, gpu]}
        hot = (w, gpu) == ("w1", "1")  # slowed for heat by the driver, all the time
        fields |= {"throttle_thermal_software": float(hot), "throttle_thermal_hardware": 0.0}
        yield p(catalogue.GPU_MEASUREMENT, w, fields, **{catalogue.GPU: gpu})
    for (w, mount), v in DISK.items():
        yield p(catalogue.DISK, w, {"used_percent": v}, **{catalogue.MOUNT: mount})
    for (w, nic), (rx, tx) in NETWORK.items():
        fields = {"receive_bytes_per_second": rx, "transmit_bytes_per_second": tx}
        yield p(catalogue.NETWORK, w, fields, **{catalogue.INTERFACE: nic})


def _pipeline_points(i: int, t: int) -> Iterator[Point]:
    for (deployment, metric), value in PIPELINE_VALUES.items():
        tags = {
            catalogue.ENVIRONMENT: "prod",
            catalogue.DEPLOYMENT: deployment,
            catalogue.METRIC: metric,
        }
        yield Point(catalogue.PIPELINE_METRIC.name, tags, {"value": value(i)}, t)


class Seeded:
    """The seeded database and the hour of data in it (one point a minute)."""

    def __init__(self, influx: Any, database: str, start_ns: int) -> None:
        self.influx, self.database = influx, database
        self.start_ns, self.end_ns = start_ns, start_ns + 60 * MINUTE

    def run(self, query: str, variables: Mapping[str, Sequence[str] | None], interval: str):
        """The query as Grafana sends it for the seeded hour; its series."""
        text = influx_text(query, variables, self.start_ns, self.end_ns - 1, interval)
        answer = self.influx.server.query(text, db=self.database)
        return [s for r in answer["results"] for s in r.get("series", [])]


@pytest.fixture(scope="module")
def seeded(influx) -> Iterator[Seeded]:
    database = influx.new_database()
    store = open_store(influx.store_url(database))
    start = (time.time_ns() // (10 * MINUTE) - 7) * 10 * MINUTE  # 10-minute aligned, past
    points: list[Point] = []
    for i in range(60):
        t = start + i * MINUTE
        points += _resource_points(t)
        points += _pipeline_points(i, t)
    event_tags = {catalogue.ENVIRONMENT: "prod", catalogue.EVENT_NAME: "model_reloaded"}
    event_tags[catalogue.DEPLOYMENT] = "churn-v1"
    points.append(Point(catalogue.EVENT.name, event_tags, {"metadata": '{"v": 2}'}, start + MINUTE))
    xid_tags = {catalogue.ENVIRONMENT: "prod", catalogue.WORKER: "w2", catalogue.GPU: "0"}
    xid_tags |= {catalogue.EVENT_NAME: catalogue.GPU_XID_EVENT, catalogue.EVENT_SOURCE: "nvml"}
    for k in range(2):  # two XID 79 on w2's GPU 0
        points.append(
            Point(
                catalogue.EVENT.name, xid_tags, {"metadata": '{"xid": 79}'}, start + 2 * MINUTE + k
            )
        )
    store.write(points)
    store.close()
    yield Seeded(influx, database, start)


# --- Grafana's substitutions --------------------------------------------------------------
_MACRO = re.compile(r"\$\{?[A-Za-z_]")
"""A variable or macro Grafana would have replaced (``$/`` is a regex anchor)."""


def _influx_escape(value: str) -> str:
    """What Grafana's InfluxDB data source does to a multi-value variable's value."""
    return re.sub(r"[\\^$*+?.()|[\]{}/]", lambda m: "\\" + m.group(0), value)


def _prom_escape(value: str) -> str:
    """What Grafana's Prometheus data source does (then doubled inside a PromQL string)."""
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def _variables(text: str, values: Mapping[str, Sequence[str] | None], escape) -> str:
    for name, chosen in values.items():
        if chosen is ALL:
            formatted = ".*"
        elif len(chosen) == 1:
            formatted = escape(chosen[0])
        else:
            formatted = "(" + "|".join(escape(v) for v in chosen) + ")"
        text = re.sub(r"\$(\{" + name + r"\}|" + name + r"\b)", lambda _, f=formatted: f, text)
    return text


def influx_text(
    query: str, values: Mapping[str, Sequence[str] | None], from_ns: int, to_ns: int, interval: str
) -> str:
    text = query.replace(
        "$timeFilter", f"time >= {from_ns // 1_000_000}ms and time <= {to_ns // 1_000_000}ms"
    )
    text = text.replace("$__interval", interval)
    text = _variables(text, values, _influx_escape)
    assert not _MACRO.search(text), f"unsubstituted macro in {text}"
    return text


def prom_text(expr: str, values: Mapping[str, Sequence[str] | None]) -> str:
    text = expr.replace("$__rate_interval", "10s").replace("$__range", "1m")
    text = _variables(text, values, _prom_escape)
    assert not _MACRO.search(text), f"unsubstituted macro in {text}"
    return text


# --- the dashboards as committed --------------------------------------------------------
def _board(name: str) -> dict[str, Any]:
    return json.loads((REPO / "grafana" / "dashboards" / name).read_text())


RESOURCES_BOARD = "fleetgauge-resources.json"
PIPELINE_BOARD = "fleetgauge-pipeline.json"
HEALTH_BOARD = "fleetgauge-agent-health.json"


def _targets(board: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Panel title -> its targets."""
    return {p["title"]: p["targets"] for p in board["panels"]}


def _variable_queries(board: dict[str, Any]) -> dict[str, str]:
    out = {}
    for v in board["templating"]["list"]:
        q = v["query"]
        out[v["name"]] = q["query"] if isinstance(q, dict) else q
    return out


def _tag_of(series: dict, key: str) -> str:
    return series["tags"][key]


def _column(series: dict, name: str = "v") -> list[float]:
    index = series["columns"].index(name) if name in series["columns"] else 1
    return [row[index] for row in series["values"]]


def test_committed_grafana_files_are_what_the_data_model_generates():
    for path, text in generated_files().items():
        if path.startswith("grafana/"):
            assert (REPO / path).read_text() == text, (
                f"{path}: run python -m fleetgauge.agent.stack"
            )


def test_provisioning_points_at_the_dashboards_and_keeps_the_token_out():
    datasources = yaml.safe_load((REPO / "grafana/provisioning/datasources/fleetgauge.yml").open())
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    influx = by_uid[grafana.INFLUX_UID]
    assert influx["type"] == "influxdb" and influx["jsonData"]["dbName"] == grafana.BUCKET
    assert influx["secureJsonData"]["httpHeaderValue1"] == f"Token ${{{grafana.TOKEN_VARIABLE}}}"
    assert by_uid[grafana.PROMETHEUS_UID]["type"] == "prometheus"
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/fleetgauge.yml").open())
    assert provider["providers"][0]["options"]["path"] == grafana.DASHBOARDS_DIR
    used = set()
    for name in (RESOURCES_BOARD, PIPELINE_BOARD, HEALTH_BOARD):
        board = _board(name)
        for panel in board["panels"]:
            used.add(panel["datasource"]["uid"])
            assert all(
                t["datasource"]["uid"] == panel["datasource"]["uid"] for t in panel["targets"]
            )
        used.update(v["datasource"]["uid"] for v in board["templating"]["list"])
    assert used == set(by_uid)


def test_resource_variables_list_environments_and_the_workers_of_one(seeded):
    queries = _variable_queries(_board(RESOURCES_BOARD))
    environments = seeded.run(queries["environment"], {}, "1m")
    assert sorted(row[1] for row in environments[0]["values"]) == ["dev", "prod"]
    workers = seeded.run(queries["worker"], {"environment": ["prod"]}, "1m")
    assert sorted(row[1] for row in workers[0]["values"]) == ["w1", "w2", "w3"]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("CPU", {"w1": 97.0, "w2": 85.0, "w3": 40.0}),
        ("Memory", {"w1": 50.0, "w2": 90.0, "w3": 30.0}),
        ("GPU utilisation", {"w1": 59.5, "w2": 85.0}),
        ("GPU memory", {"w1": 20.0, "w2": 95.0}),
        ("Disk", {"w1": 50.0, "w2": 50.0, "w3": 75.0}),
        ("Network", {"w1": 1.7e6, "w2": 2e6}),
    ],
)
def test_resource_graphs_show_each_worker_and_the_aggregate(seeded, title, expected):
    per_worker, aggregate = _targets(_board(RESOURCES_BOARD))[title]
    values = {"environment": ["prod"], "worker": ALL}
    series = seeded.run(per_worker["query"], values, "10m")
    assert {_tag_of(s, catalogue.WORKER) for s in series} == set(expected)
    for s in series:
        curve = _column(s)
        assert len(curve) == 6  # one value per 10 minutes over the hour
        assert curve == pytest.approx([expected[_tag_of(s, catalogue.WORKER)]] * 6)
    (total,) = seeded.run(aggregate["query"], values, "10m")
    combined = sum(expected.values())
    if title != "Network":  # percentages: the mean of the workers' curves
        combined /= len(expected)
    assert _column(total) == pytest.approx([combined] * 6)


def test_choosing_workers_narrows_the_curves_and_the_aggregate(seeded):
    per_worker, aggregate = _targets(_board(RESOURCES_BOARD))["CPU"]
    values = {"environment": ALL, "worker": ["w1", "w3"]}
    series = seeded.run(per_worker["query"], values, "1m")
    assert {_tag_of(s, catalogue.WORKER): set(_column(s)) for s in series} == {
        "w1": {97.0},
        "w3": {40.0},
    }
    (total,) = seeded.run(aggregate["query"], values, "1m")
    assert len(_column(total)) == 60 and set(_column(total)) == {68.5}


@pytest.mark.parametrize(
    ("title", "environment", "over"),
    [
        ("CPU: workers over 80 %", ["prod"], 2),
        ("CPU: workers over 80 %", ["dev"], 0),
        ("CPU: workers over 80 %", ALL, 2),
        ("Memory: workers over 80 %", ["prod"], 1),
        ("GPU utilisation: workers over 80 %", ["prod"], 1),
        ("GPU memory: workers over 80 %", ["prod"], 1),
        ("Disk: workers over 80 %", ["prod"], 0),
    ],
)
def test_over_use_stats_count_the_workers_over_the_warning_level(seeded, title, environment, over):
    (target,) = _targets(_board(RESOURCES_BOARD))[title]
    series = seeded.run(target["query"], {"environment": environment, "worker": ALL}, "1m")
    shown = series[0]["values"][0][1] if series else 0  # no series: the stat's noValue, 0
    assert shown == over


def test_gpu_health_panels_show_the_throttled_gpu_and_the_xid_errors(seeded):
    targets = _targets(_board(RESOURCES_BOARD))
    everyone = {"environment": ALL, "worker": ALL}
    (heat,) = targets["GPU slowed for heat"]
    series = seeded.run(heat["query"], everyone, "10m")
    shares = {(s["tags"]["worker"], s["tags"]["gpu"]): {v for _, v in s["values"]} for s in series}
    assert shares == {("w1", "0"): {0.0}, ("w1", "1"): {100.0}, ("w2", "0"): {0.0}}
    (xids,) = targets["GPU XID errors (range)"]
    series = seeded.run(xids["query"], everyone, "10m")
    assert {(s["tags"]["worker"], s["tags"]["gpu"]): s["values"][0][1] for s in series} == {
        ("w2", "0"): 2
    }


def test_pipeline_variables_follow_environment_and_deployment(seeded):
    queries = _variable_queries(_board(PIPELINE_BOARD))
    (deployments,) = seeded.run(queries["deployment"], {"environment": ["prod"]}, "1m")
    assert sorted(r[1] for r in deployments["values"]) == ["churn-v1", "churn-v2"]
    (metrics,) = seeded.run(
        queries["metric"], {"environment": ALL, "deployment": ["churn-v1"]}, "1m"
    )
    assert sorted(r[1] for r in metrics["values"]) == ["latency_ms", "score"]


def test_pipeline_history_and_summary_show_the_recorded_values(seeded):
    targets = _targets(_board(PIPELINE_BOARD))
    (history,) = targets["$metric"]
    values = {"environment": ["prod"], "deployment": ALL, "metric": ["score"]}
    series = seeded.run(history["query"], values, "10m")
    means = {_tag_of(s, catalogue.DEPLOYMENT): _column(s, "mean") for s in series}
    assert means == {"churn-v1": [0.5] * 6, "churn-v2": [0.25] * 6}

    (summary,) = targets["Summary of the time range"]
    assert summary["resultFormat"] == "table"
    rows = {}
    for s in seeded.run(summary["query"], {**values, "metric": ALL}, "1m"):
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        key = (_tag_of(s, catalogue.DEPLOYMENT), _tag_of(s, catalogue.METRIC))
        rows[key] = [row[c] for c in ("count", "mean", "min", "max", "last")]
    assert rows == {
        ("churn-v1", "score"): [60, 0.5, 0.0, 1.0, 1.0],
        ("churn-v2", "score"): [60, 0.25, 0.25, 0.25, 0.25],
        ("churn-v1", "latency_ms"): [60, 12.0, 12.0, 12.0, 12.0],
    }


def test_events_annotation_returns_the_seeded_event(seeded):
    (events,) = _board(PIPELINE_BOARD)["annotations"]["list"]
    (series,) = seeded.run(events["query"], {"environment": ["prod"]}, "1m")
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert row[events["tagsColumn"]] == "model_reloaded"
    assert row[events["textColumn"]] == '{"v": 2}'
    assert row["time"] == seeded.start_ns + MINUTE


def test_every_influxql_query_of_every_dashboard_runs(seeded):
    """No query is left out of the checks above: each one runs without error here."""
    ran = 0
    for name in (RESOURCES_BOARD, PIPELINE_BOARD):
        board = _board(name)
        names = [v["name"] for v in board["templating"]["list"]]
        queries = list(_variable_queries(board).values())
        queries += [t["query"] for p in board["panels"] for t in p["targets"]]
        queries += [a["query"] for a in board["annotations"]["list"]]
        for query in queries:
            seeded.run(query, {n: ALL for n in names}, "5m")  # raises on an InfluxQL error
            ran += 1
    assert ran >= 20


# --- PromQL against a real Prometheus scraping a real agent -----------------------------
@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> Iterator[tuple[PrometheusServer, str]]:
    binary = require_tool()
    tmp = tmp_path_factory.mktemp("grafana-prom")
    worker = f"graf-{uuid.uuid4().hex[:8]}"
    (tmp / "agent").mkdir()
    store = f"sqlite:///{tmp / 'agent.db'}"
    args = ("--store", store, "--interval", "0.5", "--flush-interval", "1", "--worker", worker)
    with AgentProcess(tmp / "agent", *args, "--environment", "graf-env") as agent:
        target = f"127.0.0.1:{agent.metrics_port}"
        with PrometheusServer(tmp / "prom", [target], job=AGENT_JOB, binary=binary) as prom:
            # rate(...[10s]) is only steady once 10 s of scrapes (every second) are in.
            scrapes = f'count_over_time({catalogue.AGENT_SAMPLES.name}{{worker="{worker}"}}[10s])'
            prom.wait_for(
                scrapes, timeout=40, accept=lambda r: bool(r) and int(r[0]["value"][1]) >= 9
            )
            yield prom, worker


def test_agent_health_variables_find_the_agent(scraped):
    prom, worker = scraped
    queries = _variable_queries(_board(HEALTH_BOARD))
    for name, expected in (("environment", "graf-env"), ("worker", worker)):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", queries[name])
        assert match and match.group(2) == name
        selector = prom_text(match.group(1), {"environment": ["graf-env"]})
        answer = prom.api(f"label/{name}/values", {"match[]": selector})
        assert expected in answer


def test_every_agent_health_panel_shows_the_agent(scraped):
    prom, worker = scraped
    values = {"environment": ["graf-env"], "worker": [worker]}
    shown: dict[str, list[dict]] = {}
    for panel in _board(HEALTH_BOARD)["panels"]:
        (target,) = panel["targets"]
        result = prom.query(prom_text(target["expr"], values))
        assert result, f"{panel['title']}: no series for {target['expr']}"
        shown[panel["title"]] = result
    by_worker = [t for t, _, _, _ in grafana.health_panels()]
    for title in by_worker:
        assert {s["metric"].get(catalogue.WORKER) for s in shown[title]} == {worker}, title

    def value(title: str) -> list[float]:
        return [float(s["value"][1]) for s in shown[title]]

    assert 1.0 <= value("Samples per second")[0] <= 3.0  # sampling every 0.5 s
    assert value("Points written per second")[0] > 0
    assert value("Store write errors per second") == [0.0]
    reasons = {s["metric"][catalogue.DROP_REASON] for s in shown["Points dropped per second"]}
    assert reasons and value("Points dropped per second") == [0.0] * len(reasons)
    assert 0 <= value("Time since the last successful write")[0] < 10
    assert value("Points waiting in the spool") == [0.0]
    assert value("Agents up") == [1.0] and value("Agents down") == [0.0]
    assert value("Points dropped (range)") == [0.0]
