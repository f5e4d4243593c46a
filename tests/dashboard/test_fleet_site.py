"""The resources page of a 40-worker fleet with three hot workers, in headless Chromium.

Both stores. The CPU graph draws the fleet's aggregate and band and exactly the top N
workers (the hot ones among them), its subtitle says so, and the page's "Top workers"
box changes N through the URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import BACKENDS, make_store
from dashboard_site import MINUTE, S, dashboard_over
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from test_site import GRAPHS_JS, assert_clean_console, cards, open_page, wait_for_url

from fleetgauge import catalogue
from fleetgauge.catalogue import Point

WORKERS = [f"node-{i:02d}" for i in range(40)]
HOT = {"node-07": 97.0, "node-19": 94.0, "node-33": 91.0}


def cpu_of(worker: str) -> float:
    """Hot workers as above; the others 10 % to 29.5 %, higher with their number."""
    return HOT.get(worker, 10.0 + WORKERS.index(worker) / 2)


@pytest.fixture(scope="module", params=BACKENDS)
def fleet_url(request, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"fleet-site-{request.param}")
    store = make_store(request.param, request, tmp)
    now = (time.time_ns() // MINUTE) * MINUTE
    points = [
        Point(
            catalogue.CPU.name,
            {catalogue.ENVIRONMENT: "fleet", catalogue.WORKER: w},
            {"usage_percent": cpu_of(w)},
            now - k * 30 * S,
        )
        for w in WORKERS
        for k in range(1, 100)
    ]
    with dashboard_over(store, points, tmp / "dashboard.log") as url:
        yield url


def cpu_graph(dash_duo) -> dict:
    """The CPU graph once drawn (the fleet sends nothing else: the other graphs stay empty)."""
    deadline = time.monotonic() + 20
    while True:
        found = dash_duo.driver.execute_script(GRAPHS_JS)
        cpu = [g for g in found if g["title"].startswith("CPU") and g["traces"]]
        if cpu:
            return cpu[0]
        assert time.monotonic() < deadline, [g["title"] for g in found]
        time.sleep(0.2)


def worker_lines(graph: dict) -> list[str]:
    return [t["name"] for t in graph["traces"] if t["name"] in WORKERS]


def test_a_fleet_graph_draws_the_band_and_the_top_workers(dash_duo, fleet_url: str) -> None:
    open_page(dash_duo, fleet_url + "/?env=fleet&range=1h")
    cpu = cpu_graph(dash_duo)
    names = [t["name"] for t in cpu["traces"]]
    assert "all 40 workers (mean)" in names
    assert "min-max of 40 workers" in names and "p10-p90 of 40 workers" in names
    busiest_others = sorted(set(WORKERS) - set(HOT), key=cpu_of)[-7:]
    assert sorted(worker_lines(cpu)) == sorted([*HOT, *busiest_others])
    assert "top 10 of 40 by sustained CPU" in cpu["title"]
    aggregate = next(t for t in cpu["traces"] if t["name"] == "all 40 workers (mean)")
    mean = sum(cpu_of(w) for w in WORKERS) / 40
    assert all(abs(v - mean) < 0.1 for v in aggregate["y"] if v is not None)
    c = cards(dash_duo)["CPU"][0]
    assert "3 of 40 over 80 %" in c and "worst: node-07 97.0 % sustained" in c

    box = dash_duo.driver.find_element(By.CSS_SELECTOR, "#resources-top")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("3", Keys.ENTER)
    wait_for_url(dash_duo, "top=3")
    deadline = time.monotonic() + 20
    while sorted(worker_lines(cpu_graph(dash_duo))) != sorted(HOT):
        assert time.monotonic() < deadline, worker_lines(cpu_graph(dash_duo))
        time.sleep(0.3)
    assert "top 3 of 40" in cpu_graph(dash_duo)["title"]
    assert_clean_console(dash_duo)


def table_workers(dash_duo) -> list[str]:
    cells = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, '#worker-table td[data-dash-column="worker"]'
    )
    return [c.text for c in cells]


def test_the_worker_table_sorts_and_a_row_click_selects_the_worker(dash_duo, fleet_url) -> None:
    open_page(dash_duo, fleet_url + "/?env=fleet&range=1h")
    cpu_graph(dash_duo)
    dash_duo.wait_for_element('#worker-table td[data-dash-column="worker"]', timeout=20)
    assert table_workers(dash_duo) == WORKERS[:15]  # by name, 15 a page
    assert "/ 3" in dash_duo.driver.find_element(By.CSS_SELECTOR, "#worker-table .page-number").text
    sort = '#worker-table th[data-dash-column="cpu_sustained"] .column-header--sort'
    for _ in range(2):  # ascending, then descending
        dash_duo.driver.find_element(By.CSS_SELECTOR, sort).click()
    deadline = time.monotonic() + 10
    while table_workers(dash_duo)[:3] != ["node-07", "node-19", "node-33"]:
        assert time.monotonic() < deadline, table_workers(dash_duo)
        time.sleep(0.2)
    rows = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#worker-table tr")
    (row,) = [r.text for r in rows if "node-19" in r.text]
    assert "reporting" in row and "94" in row
    cell = '#worker-table td[data-dash-column="cpu_sustained"]'
    dash_duo.driver.find_elements(By.CSS_SELECTOR, cell)[1].click()
    assert "worker=node-19" in wait_for_url(dash_duo, "worker=")
    assert_clean_console(dash_duo)
