"""Attribution in headless Chromium, on both stores: the Pipeline page's footprint and cost
table and the Resources page's card of GPUs held but idle.

The store holds the two hours of ``test_usage`` (two deployments sharing GPU 0 of
gpu-01), plus GPU 3 of gpu-01 at 1 % while a process that never registered holds 4 GiB
on it; the dashboard runs with 2.00 per GPU-hour and 0.10 per core-hour. The table
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
from test_usage import END, GIB, START, T0, WORKER, seed

from fleetgauge.catalogue import Point

S = 1_000_000_000


def idle_gpu() -> list[Point]:
    """GPU 3 of gpu-01 at 1 % for the two hours, held by an unregistered process."""
    points = []
    for minute in range(120):
        t = T0 + minute * 60 * S
        tags = {"environment": "prod", "worker": WORKER, "gpu": "3"}
        fields = {"memory_total_bytes": 80.0 * GIB, "utilization_percent": 1.0}
        points.append(Point("gpu", tags, fields, t))
        held = {**tags, "pid": "777", "process": "notebook"}
        points.append(Point("gpu_process", held, {"memory_used_bytes": 4.0 * GIB}, t))
    return points


@pytest.fixture(scope="module", params=BACKENDS)
def priced_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp(f"footprint-{request.param}")
    store = make_store(request.param, request, tmp)
    seed(store)
    store.write(idle_gpu())
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


def test_the_idle_card_names_the_gpu_held_but_idle(dash_duo, priced_site) -> None:
    open_page(dash_duo, f"{priced_site}/?env=prod&range=custom&start={START}&end={END}")
    deadline = time.monotonic() + 20
    while True:  # (titles are shown in capitals)
        cards = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#cards .card")
        idle = [c for c in cards if "idle but allocated" in c.text.lower()]
        if idle:
            break
        assert time.monotonic() < deadline, [c.text for c in cards]
        time.sleep(0.3)
    card = idle[0]
    assert "1 of 4 GPUs held but idle" in card.text, card.text
    assert "gpu-01 (gpu 3)" in card.text, card.text
    assert "idle 100% of the time it was held, by an unregistered process (4.0 GiB)" in card.text
    assert "warning" in card.get_attribute("class")
    assert_clean_console(dash_duo)
