"""The Executions page in headless Chromium over the 9-execution grid, on SQLite and InfluxDB.

The grid (``executions_grid``) was recorded through a real agent's push
endpoint; the user sees its nine executions, sorts them by final accuracy,
ticks three, presses Compare and reads their curves; the CSV link gives the
table's rows.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dashboard_site import DashboardProcess, dashboard_over, fetch, no_traceback
from executions_grid import BEST, CHECKPOINT_EPOCH, FAILED, Grid
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from test_site import GRAPHS_JS, settle, wait_for_url

from fleetgauge.catalogue import Point
from fleetgauge.dashboard.components import sorted_rows
from fleetgauge.stores import Store
from fleetgauge.timeutil import format_duration

S = 1_000_000_000


@dataclass
class Site:
    url: str
    grid: Grid


@pytest.fixture(scope="module")
def site(grid, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    url, g = grid
    process = DashboardProcess(url, tmp_path_factory.mktemp("exec-site") / "dashboard.log")
    process.wait_ready()
    yield Site(process.url, g)
    assert process.stop() == 0, process.log()
    assert no_traceback(process.log()), process.log()


def table_rows(dash_duo, count: int | None = None) -> list[dict[str, str]]:
    """The table's rows as shown (column id -> text), once ``count`` rows are drawn."""
    deadline = time.monotonic() + 20
    while True:
        settle(dash_duo)
        rows = []
        for tr in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#executions-table tbody tr"):
            cells = tr.find_elements(By.CSS_SELECTOR, "td.dash-cell")
            if cells:
                rows.append({td.get_attribute("data-dash-column"): td.text for td in cells})
        if (count is None and rows) or len(rows) == count:
            return rows
        assert time.monotonic() < deadline, f"{count} rows not drawn: {rows}"
        time.sleep(0.2)


def sort_descending(dash_duo, column: str) -> None:
    """Click a column's sort arrow twice: ascending, then descending (DataTable's cycle)."""
    selector = f'#executions-table th[data-dash-column="{column}"] .column-header--sort'
    for _ in range(2):
        dash_duo.find_element(selector).click()
        time.sleep(0.2)


def tick(dash_duo, execution_ids: list[str]) -> None:
    for tr in dash_duo.driver.find_elements(By.CSS_SELECTOR, "#executions-table tbody tr"):
        cells = tr.find_elements(By.CSS_SELECTOR, 'td[data-dash-column="execution_id"]')
        if cells and cells[0].text in execution_ids:
            tr.find_element(By.CSS_SELECTOR, "td.dash-select-cell input").click()


def compare_graphs(dash_duo, count: int) -> dict[str, dict]:
    deadline = time.monotonic() + 20
    while True:
        found = dash_duo.driver.execute_script(GRAPHS_JS)
        found = [g for g in found if not g["title"].startswith("Inputs against")]  # parcoords
        if len(found) == count and all(g["traces"] for g in found):
            return {g["title"].split("<br>")[0]: g for g in found}
        assert time.monotonic() < deadline, f"{count} charts not drawn: {found!r:.300}"
        time.sleep(0.2)


def test_the_table_lists_the_grid_and_sorts_by_final_accuracy(dash_duo, site: Site) -> None:
    dash_duo.driver.get(site.url + "/executions")
    rows = table_rows(dash_duo, 9)
    g = site.grid
    newest_first = sorted(g.runs.values(), key=lambda r: r.start_ns, reverse=True)
    assert [r["execution_id"] for r in rows] == [r.execution_id for r in newest_first]
    assert "9 executions started in this range" in dash_duo.find_element("#exec-count").text
    by_id = {r["execution_id"]: r for r in rows}
    failed = g.runs[FAILED]
    assert by_id[failed.execution_id]["status"] == "failed"
    assert by_id[failed.execution_id]["input.learning_rate"] == "0.01"
    assert by_id[failed.execution_id]["list.accuracy.last"] == f"{failed.accuracy[-1]:.4g}"
    sort_descending(dash_duo, "list.accuracy.last")
    ranked = [r["execution_id"] for r in table_rows(dash_duo, 9)]
    assert ranked == [r.execution_id for r in g.by_final_accuracy()]
    assert ranked[0] == g.runs[BEST].execution_id == "grid-lr0.001-bs64"
    assert dash_duo.get_logs() == []


def test_compare_draws_one_line_per_execution_per_list_metric(dash_duo, site: Site) -> None:
    g = site.grid
    chosen = [g.runs[BEST], g.runs[FAILED], g.runs[(0.0001, 128)]]
    dash_duo.driver.get(site.url + "/executions")
    table_rows(dash_duo, 9)
    tick(dash_duo, [r.execution_id for r in chosen])
    dash_duo.find_element("#compare").click()
    wait_for_url(dash_duo, "run=")
    charts = compare_graphs(dash_duo, 6)
    resources = {"CPU", "Resident memory", "GPU memory", "GPU share (SM time)"}
    assert set(charts) == {"accuracy", "loss", *resources}
    # what each one's process used, against the minutes since it started
    for r in chosen:
        label = f"{r.execution_id}: pid {r.pid} on trainer-01"
        cpu = {t["name"]: t for t in charts["CPU"]["traces"]}[label]
        assert set(cpu["y"]) == {r.cores} and cpu["x"][0] == 0
        assert max(cpu["x"]) == pytest.approx((r.end_ns - r.start_ns) / 60e9, abs=1)
        rss = {t["name"]: t for t in charts["Resident memory"]["traces"]}[label]
        assert rss["y"][-1] == pytest.approx(r.resources["peak_rss_bytes"] / 2**30, rel=0.05)
        share = {t["name"]: t for t in charts["GPU share (SM time)"]["traces"]}
        assert set(share[f"{label}, GPU 0"]["y"]) == {r.resources["mean_gpu_utilization_percent"]}
    for metric in ("accuracy", "loss"):
        traces = charts[metric]["traces"]
        lines = {t["name"]: t for t in traces if not t["name"].endswith(" events")}
        assert set(lines) == {r.execution_id for r in chosen}
        for r in chosen:
            assert lines[r.execution_id]["x"] == list(range(len(r.accuracy)))
            assert lines[r.execution_id]["y"] == getattr(r, metric)
            marks = next(t for t in traces if t["name"] == f"{r.execution_id} events")
            assert marks["x"] == [CHECKPOINT_EPOCH] and "checkpoint_saved" in marks["text"][0]
    ticks = dash_duo.driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot .xtick text')]"
        ".map(t => t.textContent)"
    )
    assert ticks and all(t.replace(",", "").isdigit() for t in ticks), ticks  # whole steps only
    # a legend click hides one execution (and its markers)
    dash_duo.find_element(".js-plotly-plot .legend .traces .legendtoggle").click()
    deadline = time.monotonic() + 10
    while True:
        visible = dash_duo.driver.execute_script(
            "return document.querySelector('.js-plotly-plot').data"
            ".map(t => [t.name, t.visible === undefined ? true : t.visible]);"
        )
        if any(v == "legendonly" for _, v in visible):
            break
        assert time.monotonic() < deadline, visible
        time.sleep(0.2)
    first = visible[0][0]  # the first legend entry
    assert dict(visible) == {
        first: "legendonly",
        f"{first} events": "legendonly",
        **{n: True for n, _ in visible if not n.startswith(first)},
    }
    # against wall time: the same values at the epochs' times
    dash_duo.find_element("#exec-x input[value='time']").click()
    wait_for_url(dash_duo, "x=time")
    deadline = time.monotonic() + 20
    while True:
        accuracy = compare_graphs(dash_duo, 6)["accuracy"]
        best = next(t for t in accuracy["traces"] if t["name"] == g.runs[BEST].execution_id)
        if best["x"] != list(range(len(g.runs[BEST].accuracy))):
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [int(x) for x in best["x"]] == [t // 1_000_000 for t in g.runs[BEST].epoch_ns]
    assert best["y"] == g.runs[BEST].accuracy
    assert dash_duo.get_logs() == []


def test_filters_columns_and_the_csv_link(dash_duo, site: Site) -> None:
    g = site.grid
    dash_duo.driver.get(
        site.url + "/executions?status=failed&mode=max"
        "&col=execution_id&col=input.batch_size&col=list.loss.max"
    )
    rows = table_rows(dash_duo, 1)
    failed = g.runs[FAILED]
    assert rows == [
        {
            "execution_id": failed.execution_id,
            "input.batch_size": "128",
            "list.loss.max": f"{max(failed.loss):.4g}",
        }
    ]
    dash_duo.driver.get(site.url + "/executions?mode=mean&col=execution_id&col=list.accuracy.mean")
    table_rows(dash_duo, 9)
    status, headers, text = fetch(
        dash_duo.find_element("#executions-download").get_attribute("href")
    )
    assert status == 200 and "fleetgauge-executions-" in headers["Content-Disposition"]
    got = list(csv.DictReader(io.StringIO(text)))
    means = {row["execution_id"]: float(row["list.accuracy.mean"]) for row in got}
    assert means == {
        r.execution_id: pytest.approx(sum(r.accuracy) / len(r.accuracy)) for r in g.runs.values()
    }
    dash_duo.select_dcc_dropdown("#exec-status", value="succeeded")
    wait_for_url(dash_duo, "status=succeeded")
    assert len(table_rows(dash_duo, 8)) == 8
    assert dash_duo.get_logs() == []


def test_at_1000_px_the_metric_columns_are_in_view_and_text_reads_from_the_left(
    dash_duo, site: Site
) -> None:
    dash_duo.driver.set_window_size(1000, 900)
    dash_duo.driver.get(site.url + "/executions")
    table_rows(dash_duo, 9)
    width = dash_duo.driver.execute_script("return document.documentElement.clientWidth")
    header = dash_duo.driver.find_element(
        By.CSS_SELECTOR, 'th[data-dash-column="list.accuracy.last"]'
    )
    box = dash_duo.driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right]", header
    )
    assert 0 <= box[0] and box[1] <= width, (box, width)  # no scrolling needed to see it
    status = dash_duo.driver.find_element(By.CSS_SELECTOR, 'td[data-dash-column="status"]')
    assert status.value_of_css_property("text-align") == "left"
    # durations read as durations; the id stays in view while the table scrolls sideways
    shown = {r["execution_id"]: r["duration_s"] for r in table_rows(dash_duo, 9)}
    assert shown == {
        r.execution_id: format_duration((r.end_ns - r.start_ns) / 1e9)
        for r in site.grid.runs.values()
    }
    assert set(shown.values()) == {"7 min", "5 min"}, shown  # 6 epochs; the failed run: 4
    pinned = 'th[data-dash-column="execution_id"]'
    before = dash_duo.driver.execute_script(LEFT_JS, pinned)
    scrolled = dash_duo.driver.execute_script(
        "const box = document.querySelector('#executions-table .dash-spreadsheet-container');"
        "box.scrollLeft = 5000; return box.scrollLeft"
    )
    assert scrolled > 100, "the table did not scroll: the test would prove nothing"
    assert dash_duo.driver.execute_script(LEFT_JS, pinned) == pytest.approx(before, abs=2)
    assert dash_duo.get_logs() == []


LEFT_JS = "return document.querySelector(arguments[0]).getBoundingClientRect().left"


def test_a_sort_on_durations_is_by_their_length_not_their_text() -> None:
    rows = [
        {"id": str(s), "duration_s": format_duration(s), "duration_s:sort": s}
        for s in (540.0, 600.0, 0.00005, 7200.0)
    ]
    rows.append({"id": "running", "duration_s": None})
    order = sorted_rows(rows, [{"column_id": "duration_s", "direction": "desc"}])
    assert [r["duration_s"] for r in order] == ["2 h", "10 min", "9 min", "50 µs", None]
    order = sorted_rows(rows, [{"column_id": "duration_s", "direction": "asc"}])
    assert [r["duration_s"] for r in order] == ["50 µs", "9 min", "10 min", "2 h", None]


def type_filter(dash_duo, text: str) -> None:
    """Type ``text`` into the filter box and press Enter (again if the page redrew the box
    meanwhile: every change of the URL draws the page anew)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            box = dash_duo.find_element("#exec-filter")
            box.clear()
            box.send_keys(text + "\n")
            return
        except StaleElementReferenceException:
            assert time.monotonic() < deadline, "the filter box kept being redrawn"
            time.sleep(0.2)


def test_the_filter_box_narrows_the_table_the_url_and_the_csv(dash_duo, site: Site) -> None:
    g = site.grid
    dash_duo.driver.get(site.url + "/executions")
    table_rows(dash_duo, 9)
    type_filter(dash_duo, "input.batch_size = 64 and list.accuracy.last > 0.8")
    wait_for_url(dash_duo, "filter=")
    expected = sorted(
        (r.execution_id for r in g.runs.values() if r.batch == 64 and r.accuracy[-1] > 0.8),
        reverse=True,
    )
    assert len(expected) == 2  # lr 0.01 and 0.001; 0.0001 tops out lower
    rows = table_rows(dash_duo, 2)
    assert sorted((r["execution_id"] for r in rows), reverse=True) == expected
    assert "2 executions passing the filter" in dash_duo.find_element("#exec-count").text
    status, _, text = fetch(dash_duo.find_element("#executions-download").get_attribute("href"))
    assert status == 200
    assert sorted(row["execution_id"] for row in csv.DictReader(io.StringIO(text))) == sorted(
        expected
    )
    # the URL alone gives the same view; a tag filter works the same way
    dash_duo.driver.get(site.url + "/executions?filter=tag.best+%3D+%22yes%22")
    assert [r["execution_id"] for r in table_rows(dash_duo, 1)] == [g.best.execution_id]
    # a filter that does not parse: the error, with a caret under the spot, and no rows
    dash_duo.wait_for_element_by_css_selector("#exec-filter")
    assert dash_duo.find_element("#exec-filter").get_attribute("value") == 'tag.best = "yes"'
    type_filter(dash_duo, "input.batch_size >> 64")
    dash_duo.wait_for_contains_text("#exec-filter-error", "bad filter at column 19", timeout=20)
    error = dash_duo.find_element("#exec-filter-error").text.splitlines()
    assert error[1].strip() == "input.batch_size >> 64"
    assert error[2].index("^") - error[1].index("i") == 18
    assert table_rows(dash_duo, 0) == []
    assert "the filter does not parse" in dash_duo.find_element("#exec-count").text
    assert dash_duo.get_logs() == []


PARCOORDS_JS = """
const gd = document.querySelector('#exec-parallel .js-plotly-plot');
if (!gd || !gd.data || !gd.data.length) { return null; }
const t = gd.data[0];
return {ids: t.meta.ids, labels: t.dimensions.map(d => d.label),
        values: t.dimensions.map(d => Array.from(d.values)),
        ticks: t.dimensions.map(d => d.ticktext || null)};
"""


def parcoords(dash_duo, labels: list[str]) -> dict:
    deadline = time.monotonic() + 20
    while True:
        found = dash_duo.driver.execute_script(PARCOORDS_JS)
        if found and found["labels"] == labels:
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.2)


def test_parallel_coordinates_draw_the_grid_and_a_brushed_range_filters_the_table(
    dash_duo, site: Site
) -> None:
    g = site.grid
    dash_duo.driver.get(site.url + "/executions")
    table_rows(dash_duo, 9)
    chart = parcoords(
        dash_duo, ["learning_rate", "batch_size", "optimizer", "metric.test_accuracy"]
    )
    runs = {r.execution_id: r for r in g.runs.values()}
    assert set(chart["ids"]) == set(runs)
    for i, execution_id in enumerate(chart["ids"]):
        r = runs[execution_id]
        assert chart["values"][0][i] == r.lr and chart["values"][1][i] == r.batch
        if r.test_accuracy is not None:
            assert chart["values"][3][i] == r.test_accuracy
    assert chart["ticks"][2] == ["adam"]  # a text input: an axis of its values
    assert chart["ticks"][3][0] == "(none)"  # the failed run has no test accuracy
    # a range dragged along the batch-size axis (what a mouse brush emits)
    dash_duo.driver.execute_script(
        "Plotly.restyle(document.querySelector('#exec-parallel .js-plotly-plot'),"
        " {'dimensions[1].constraintrange': [[60, 130]]});"
    )
    rows = table_rows(dash_duo, 6)
    assert {r["execution_id"] for r in rows} == {
        r.execution_id for r in g.runs.values() if r.batch >= 64
    }
    note = dash_duo.find_element("#exec-brush-note").text
    assert "6 of 9 executions drawn within the ranges" in note
    dash_duo.driver.execute_script(
        "Plotly.restyle(document.querySelector('#exec-parallel .js-plotly-plot'),"
        " {'dimensions[1].constraintrange': null});"
    )
    assert len(table_rows(dash_duo, 9)) == 9
    # the axes and the metric are in the URL
    dash_duo.driver.get(
        site.url + "/executions?axis=input.batch_size&by=list.accuracy.max&mode=max"
    )
    chart = parcoords(dash_duo, ["batch_size", "list.accuracy.max"])
    assert sorted(chart["values"][1]) == sorted(max(r.accuracy) for r in g.runs.values())
    assert dash_duo.get_logs() == []


def loss_of(k: int) -> float:
    """The last loss of paged execution ``k``: an order unlike the start times'."""
    return (k * 37 % 60) / 10


def paged_points(now_ns: int, count: int = 60) -> list[Point]:
    """``count`` executions a minute apart in the last hours, each with a list metric."""
    points = []
    for k in range(count):
        t = now_ns - (count - k) * 60 * S
        tags = {"environment": "prod", "pipeline": "train", "execution_id": f"page-{k:03d}"}
        points.append(Point("execution", tags, {"inputs": json.dumps({"lr": k / 100})}, t))
        series = {**tags, "metric": "loss"}
        for step in range(3):
            value = loss_of(k) + 2 - step
            points.append(Point("list_metric", series, {"value": value, "step": step}, t + step))
        points.append(Point("execution_end", tags, {"status": "succeeded"}, t + 10 * S))
    return points


def count_note(dash_duo, text: str) -> str:
    deadline = time.monotonic() + 20
    while text not in (note := dash_duo.find_element("#exec-count").text):
        assert time.monotonic() < deadline, note
        time.sleep(0.2)
    return note


def test_the_table_is_paged_on_the_server_sorted_over_every_page_and_ticks_stay(
    dash_duo, store: Store, tmp_path
) -> None:
    """60 executions: pages of 25 come from the server, newest first; a sort by a list
    metric orders all 60, not the page; rows ticked on two pages are compared together."""
    with dashboard_over(store, paged_points(time.time_ns()), tmp_path / "d.log") as url:
        dash_duo.driver.get(url + "/executions")
        count_note(dash_duo, "60 executions started in this range, newest first; page 1 of 3")
        ids = [r["execution_id"] for r in table_rows(dash_duo, 25)]
        assert ids == [f"page-{k:03d}" for k in range(59, 34, -1)]
        tick(dash_duo, ["page-050"])
        dash_duo.find_element("#executions-table button.next-page").click()
        count_note(dash_duo, "page 2 of 3")
        deadline = time.monotonic() + 20
        while (ids := [r["execution_id"] for r in table_rows(dash_duo, 25)])[0] != "page-034":
            assert time.monotonic() < deadline, ids
            time.sleep(0.2)
        assert ids == [f"page-{k:03d}" for k in range(34, 9, -1)]
        tick(dash_duo, ["page-020"])
        dash_duo.find_element("#compare").click()
        compared = wait_for_url(dash_duo, "run=")
        assert "page-050" in compared and "page-020" in compared
        # a sort by the list metric: the 25 highest of all 60, on the first page
        dash_duo.driver.get(url + "/executions")
        count_note(dash_duo, "page 1 of 3")
        sort_descending(dash_duo, "list.loss.last")
        best = sorted(range(60), key=loss_of, reverse=True)[:25]
        deadline = time.monotonic() + 20
        while True:
            rows = table_rows(dash_duo, 25)
            shown = [float(r["list.loss.last"]) for r in rows]
            if shown == [loss_of(k) for k in best]:
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.2)
        assert {r["execution_id"] for r in rows} == {f"page-{k:03d}" for k in best}
        assert dash_duo.get_logs() == []
