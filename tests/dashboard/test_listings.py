"""A store with many names sends the page a capped list, and typing finds the rest (issue 20).

1,000 deployments in a real SQLite store behind a real ``fleetgauge dashboard``,
seen in Chromium: the deployments dropdown offers at most 300 and says how many
more there are; typing part of a name that is not offered finds it. A store of
300,000 series (what a client putting request ids in names leaves behind) is
read without loading the series into the dashboard's memory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from dashboard_site import MINUTE, DashboardProcess, S
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.dashboard.components import MAX_OPTIONS
from fleetgauge.stores import open_store

DEPLOYMENTS = 1000


def _serve(tmp: Path, env: str, names: list[str], *flags: str) -> DashboardProcess:
    """A SQLite store with one ``score`` value per deployment in ``names``, and its dashboard."""
    url = f"sqlite:///{tmp / 'fg.db'}"
    store = open_store(url)
    t = (time.time_ns() // MINUTE) * MINUTE - 10 * MINUTE
    for first in range(0, len(names), 10_000):
        store.write(
            [
                Point(
                    catalogue.PIPELINE_METRIC.name,
                    {
                        catalogue.ENVIRONMENT: env,
                        catalogue.DEPLOYMENT: names[i],
                        catalogue.METRIC: "score",
                    },
                    {"value": float(i)},
                    t + i * S // 1000,
                )
                for i in range(first, min(first + 10_000, len(names)))
            ]
        )
        store.forget_idle()  # as the agent does: its write caches follow the active series
        store.forget_idle()
    store.close()
    process = DashboardProcess(url, tmp / "dashboard.log", *flags)
    process.wait_ready()
    return process


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardProcess]:
    names = [f"dep-{i:04d}" for i in range(DEPLOYMENTS)]
    process = _serve(tmp_path_factory.mktemp("listings"), "many", names)
    yield process
    process.stop()


def _options(dash_duo, last: bool = False) -> list[str]:
    """The options shown in the open menu (``last``: scrolled to its end first)."""
    menu = dash_duo.wait_for_element(".dash-dropdown-options", timeout=10)
    if last:  # the menu draws only the options in view: scroll to its end
        listing = menu.find_element(By.CSS_SELECTOR, ".dash-options-list-virtualized")
        dash_duo.driver.execute_script(
            "arguments[0].scrollTop = arguments[0].scrollHeight", listing
        )
        time.sleep(0.5)
    # one script reads them all: the menu re-renders as results arrive, and elements
    # found in one WebDriver call may be gone (stale) by the next
    return dash_duo.driver.execute_script(
        "return Array.from(document.querySelectorAll("
        "'.dash-dropdown-options .dash-dropdown-option'), o => o.innerText.trim())"
    )


def test_many_deployments_are_capped_and_found_by_typing(dash_duo, site) -> None:
    dash_duo.driver.get(f"{site.url}/pipeline?env=many&metric=score&range=1h")
    dash_duo.wait_for_element(".js-plotly-plot", timeout=20)
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    dash_duo.find_element("#deployments").click()
    offered = _options(dash_duo, last=True)
    last_index = dash_duo.driver.execute_script(
        "const o = document.querySelectorAll('.dash-dropdown-option');"
        " return o[o.length - 1].dataset.optionIndex"
    )
    assert int(last_index) == MAX_OPTIONS, last_index  # 300 names (0-299), then the hint
    assert offered[-1] == f"{DEPLOYMENTS - MAX_OPTIONS:,} more: type part of a name to find it"
    assert "dep-0999" not in offered

    search = dash_duo.find_element(".dash-dropdown-content input:not([type=checkbox])")
    search.send_keys("0999")
    deadline = time.monotonic() + 15
    while "dep-0999" not in (found := _options(dash_duo)):
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    assert found == ["dep-0999"], found
    search.send_keys(Keys.ENTER)
    deadline = time.monotonic() + 15
    while "deployment=dep-0999" not in dash_duo.driver.current_url:
        assert time.monotonic() < deadline, dash_duo.driver.current_url
        time.sleep(0.2)


HUGE = 300_000


@pytest.fixture(scope="module")
def huge_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardProcess]:
    names = [f"request-{i:06d}" for i in range(HUGE)]
    process = _serve(tmp_path_factory.mktemp("huge"), "huge", names, "--workers", "1")
    yield process
    process.stop()


def test_300k_series_are_listed_and_found_without_loading_them_all(dash_duo, huge_site) -> None:
    (worker,) = psutil.Process(huge_site.proc.pid).children()
    before = worker.memory_info().rss
    dash_duo.driver.get(f"{huge_site.url}/pipeline?env=huge&metric=score&range=1h")
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=60)
    dash_duo.find_element("#deployments").click()
    offered = _options(dash_duo, last=True)
    assert offered[-1] == f"{HUGE - MAX_OPTIONS:,} more: type part of a name to find it"
    search = dash_duo.find_element(".dash-dropdown-content input:not([type=checkbox])")
    search.send_keys("299999")
    deadline = time.monotonic() + 30
    while (found := _options(dash_duo)) != ["request-299999"]:
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
    growth = worker.memory_info().rss - before
    # the series table read into memory took 261 MB for these 300,000 series
    assert growth < 100 * 2**20, f"the dashboard worker grew {growth / 2**20:.0f} MB"
    print(f"300k series: the dashboard worker grew {growth / 2**20:.0f} MB")
