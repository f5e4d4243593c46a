"""The Pipeline page's footprint and cost table, in headless Chromium, on both stores.

The store holds the two hours of ``test_usage`` (two deployments sharing GPU 0 of
gpu-01); the dashboard runs with 2.00 per GPU-hour and 0.10 per core-hour. The table
shows the hand-computed figures of that module's docstring.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import BACKENDS, make_store
from dashboard_site import DashboardProcess, no_traceback
from selenium.webdriver.common.by import By
from test_site import assert_clean_console, open_page
from test_usage import END, START, seed


@pytest.fixture(scope="module", params=BACKENDS)
def priced_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"footprint-{request.param}")
    store = make_store(request.param, request, tmp)
    seed(store)
    url = store.url
    store.close()
    process = DashboardProcess(
        url, tmp / "dashboard.log", "--price", "gpu-hour=2", "--price", "cpu-core-hour=0.1"
    )
    process.wait_ready()
    yield process.url
    assert process.stop() == 0, process.log()
    assert no_traceback(process.log()), process.log()


def footprint(dash_duo) -> dict[str, list[str]]:
    deadline = time.monotonic() + 20
    while True:
        rows = {}
        for tr in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".footprint-row"):
            cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            rows[cells[0]] = cells[1:]
        if len(rows) == 2:
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)


def test_the_footprint_table_shows_each_deployments_use_and_cost(dash_duo, priced_site) -> None:
    open_page(
        dash_duo,
        f"{priced_site}/pipeline?env=prod&range=custom&start={START}&end={END}"
        "&deployment=fraud-v2&deployment=ranker-v1&metric=score",
    )
    rows = footprint(dash_duo)
    # predictions, per second, CPU core-hours, GPU-hours, peak GPU memory, cost, per 1,000
    assert rows["fraud-v2"] == [
        "7,200",
        "1",
        "0.999",
        "1.02",
        "30.0 GiB of 80",
        "2.144",
        "0.2978",
    ]
    assert rows["ranker-v1"] == [
        "3,600",
        "0.5",
        "3.99",
        "0.867",
        "30.0 GiB of 80",
        "2.133",
        "0.5924",
    ]
    assert "Cost from the site's prices" in dash_duo.find_element("#footprint").text
    assert_clean_console(dash_duo)
