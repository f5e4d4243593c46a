"""The held seed workflow end to end, on SQLite and InfluxDB: nine runs recorded through the
SDK with their logs, searched with a filter, the best found by sorting, and its page read in
headless Chromium (inputs, outputs, metrics, charts and logs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from agent_process import AgentProcess
from conftest import make_store
from dashboard_site import DashboardProcess, no_traceback
from seed_workflow import EPOCHS, PIPELINE, Run, record_workflow
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from test_executions_page import sort_descending, table_rows
from test_site import GRAPHS_JS, settle, wait_for_url

from fleetgauge.read.query import get_execution_logs, search_executions
from fleetgauge.sdk import MetricsClient


@dataclass
class Workflow:
    store: str
    site: str
    runs: list[Run]

    @property
    def best(self) -> Run:
        return max(self.runs, key=lambda r: r.accuracy[-1])


@pytest.fixture(scope="module", params=["sqlite", "influxdb"])
def workflow(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Workflow]:
    tmp = tmp_path_factory.mktemp(f"workflow-{request.param}")
    store = make_store(request.param, request, tmp)
    url = store.url
    store.close()
    runs = record_workflow(url, tmp / "agent")
    process = DashboardProcess(url, tmp / "dashboard.log")
    process.wait_ready()
    yield Workflow(url, process.url, runs)
    assert process.stop() == 0, process.log()
    assert no_traceback(process.log()), process.log()


def test_the_grid_is_searched_by_filter_and_the_best_run_found_by_sorting(
    workflow: Workflow,
) -> None:
    found = search_executions(
        filter="input.batch_size = 128 and metric.accuracy > 0.9", store=workflow.store
    )
    expected = {r.execution_id for r in workflow.runs if r.batch == 128 and r.accuracy[-1] > 0.9}
    assert {e["execution_id"] for e in found} == expected
    assert {(e["inputs"]["learning_rate"], e["inputs"]["batch_size"]) for e in found} == {
        (0.01, 128),
        (0.001, 128),
    }
    every = search_executions(filter=f'pipeline = "{PIPELINE}"', store=workflow.store)
    best = max(every, key=lambda e: e["metrics"]["accuracy"])
    assert best["execution_id"] == workflow.best.execution_id
    assert (workflow.best.lr, workflow.best.batch) == (0.001, 128)
    assert best["outputs"] == {"model_path": workflow.best.model_path}
    assert best["tags"] == {"grid": "lr-bs"}
    assert best["inputs"] == {
        "learning_rate": 0.001,
        "batch_size": 128,
        "epochs": EPOCHS,
        "optimizer": "adam",
    }
    assert best["input_defaults"] == ["optimizer"]  # epochs was given: its default not used
    lines = get_execution_logs(PIPELINE, best["execution_id"], order="oldest", store=workflow.store)
    assert [line["message"] for line in lines] == [
        *(
            f"epoch {e}: test-loss {workflow.best.loss[e]:.4f}"
            f" test-accuracy {workflow.best.accuracy[e]:.4f}"
            for e in range(EPOCHS)
        ),
        f"saved the model to {workflow.best.model_path}",
    ]


def open_tab(dash_duo, label: str) -> None:
    for tab in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#run-tab .tab"):
        if tab.text == label:
            tab.click()
            return
    raise AssertionError(f"no tab {label!r}")


def text_of(dash_duo, selector: str, wanted: str) -> str:
    dash_duo.wait_for_contains_text(selector, wanted, timeout=20)
    return dash_duo.find_element(selector).text


def log_rows(dash_duo, count: int) -> list[list[str]]:
    # after a navigation the renderer's store exists only once the page is drawn
    dash_duo.wait_for_element("#run-log-note", timeout=20)
    deadline = time.monotonic() + 20
    while True:
        settle(dash_duo)
        try:
            rows = [
                [td.text for td in tr.find_elements(By.CSS_SELECTOR, "td")]
                for tr in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#run-log-table tbody tr")
            ]
        except StaleElementReferenceException:  # the table was drawn anew (auto-refresh)
            rows = []
        if len(rows) == count:
            return rows
        assert time.monotonic() < deadline, f"{count} log lines not shown: {rows}"
        time.sleep(0.2)


def test_the_best_run_s_page_shows_inputs_outputs_metrics_charts_and_logs(
    dash_duo, workflow: Workflow
) -> None:
    best = workflow.best
    dash_duo.driver.get(workflow.site + "/executions?col=execution_id&col=metric.accuracy")
    table_rows(dash_duo, 9)
    sort_descending(dash_duo, "metric.accuracy")
    assert table_rows(dash_duo, 9)[0]["execution_id"] == best.execution_id
    link = dash_duo.driver.find_element(
        By.CSS_SELECTOR, '#executions-table td[data-dash-column="execution_id"] a'
    )
    assert link.text == best.execution_id
    link.click()
    wait_for_url(dash_duo, "/executions/" + quote(best.execution_id, safe=""))
    # the header
    assert text_of(dash_duo, "#run-title", best.execution_id) == best.execution_id
    assert dash_duo.find_element("#run-pipeline").text == PIPELINE
    assert dash_duo.find_element("#run-status").text == "succeeded"
    assert dash_duo.find_element("#run-worker").text == "gpu-01"
    assert dash_duo.find_element("#run-tags").text == "grid = lr-bs"
    # inputs and outputs
    io = text_of(dash_duo, "#run-io", "model_path")
    for expected in ("learning_rate", "0.001", "batch_size", "128", best.model_path, "output"):
        assert expected in io, io
    optimizer = next(line for line in io.splitlines() if "optimizer" in line)
    assert "adam" in optimizer and "a default (not given)" in optimizer, io
    # metrics: the simple ones in a table, a chart per list metric, ten epochs each
    open_tab(dash_duo, "Metrics")
    table = text_of(dash_duo, "#run-metric-table", "accuracy")
    assert str(best.accuracy[-1]) in table and str(best.loss[-1]) in table
    deadline = time.monotonic() + 20
    while True:
        graphs = dash_duo.driver.execute_script(GRAPHS_JS)
        if len(graphs) == 2 and all(g["traces"] for g in graphs):
            break
        assert time.monotonic() < deadline, graphs
        time.sleep(0.2)
    by_title = {g["title"].split("<br>")[0]: g["traces"][0] for g in graphs}
    assert by_title["test-accuracy"]["y"] == best.accuracy
    assert by_title["test-loss"]["x"] == list(range(EPOCHS))
    # logs: newest first, then filtered by level and by text; all of it in the URL
    open_tab(dash_duo, "Logs")
    wait_for_url(dash_duo, "tab=logs")
    rows = log_rows(dash_duo, EPOCHS + 1)
    assert rows[0][1:3] == ["WARNING", "trainer"] and best.model_path in rows[0][3]
    first = f"epoch 0: test-loss {best.loss[0]:.4f} test-accuracy {best.accuracy[0]:.4f}"
    assert rows[-1][3] == first
    dash_duo.select_dcc_dropdown("#run-level", value="WARNING and graver")
    wait_for_url(dash_duo, "level=WARNING")
    assert [r[1] for r in log_rows(dash_duo, 1)] == ["WARNING"]
    dash_duo.driver.get(
        workflow.site + "/executions/" + quote(best.execution_id, safe="") + "?tab=logs&q=EPOCH+3"
    )
    (only,) = log_rows(dash_duo, 1)
    assert only[3].startswith("epoch 3:")
    assert "1 line, newest first" in dash_duo.find_element("#run-log-note").text
    assert dash_duo.get_logs() == []


def test_an_unknown_id_says_so(dash_duo, workflow: Workflow) -> None:
    dash_duo.driver.get(workflow.site + "/executions/" + quote("no such/run?", safe=""))
    assert text_of(dash_duo, "#run-title", "no such/run?") == "no such/run?"
    assert "No execution of this id was recorded" in dash_duo.find_element("#run-missing").text
    assert dash_duo.get_logs() == []


def test_the_logs_of_a_running_execution_refresh_themselves(dash_duo, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    (tmp_path / "agent").mkdir()
    agent = AgentProcess(
        tmp_path / "agent",
        *("--store", url, "--interval", "60", "--flush-interval", "0.2", "--collectors", "cpu"),
    )
    with agent:
        client = MetricsClient(url=f"http://127.0.0.1:{agent.push_port}", flush_interval=0.05)
        run = client.start_execution("train", execution_id="live-run")
        run.record_log("first line")
        assert client.flush(10)
        time.sleep(1)  # the agent's flush interval, and then some
        process = DashboardProcess(url, tmp_path / "dashboard.log")
        process.wait_ready()
        try:
            dash_duo.driver.get(process.url + "/executions/live-run?tab=logs")
            assert text_of(dash_duo, "#run-status", "running") == "running"
            assert [r[3] for r in log_rows(dash_duo, 1)] == ["first line"]
            run.record_log("second line", "ERROR")
            assert client.flush(10)
            # no reload: the page reads the lines again every 5 s while the run runs
            rows = log_rows(dash_duo, 2)  # (waits up to 20 s)
            assert [r[3] for r in rows] == ["second line", "first line"]
            assert dash_duo.get_logs() == []
        finally:
            run.finish()
            client.close()
            assert process.stop() == 0, process.log()
        assert agent.stop()[0] == 0
