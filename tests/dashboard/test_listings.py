"""A store with many names sends the page a capped list, and typing finds the rest (issue 20).

1,000 deployments in a real SQLite store behind a real ``fleetgauge dashboard``,
seen in Chromium: the deployments dropdown offers at most 300 and says how many
more there are; typing part of a name that is not offered finds it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dashboard_site import MINUTE, DashboardProcess, S
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.dashboard.components import MAX_OPTIONS
from fleetgauge.stores import open_store

DEPLOYMENTS = 1000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardProcess]:
    tmp = tmp_path_factory.mktemp("listings")
    url = f"sqlite:///{tmp / 'fg.db'}"
    store = open_store(url)
    t = (time.time_ns() // MINUTE) * MINUTE - 10 * MINUTE
    store.write(
        [
            Point(
                catalogue.PIPELINE_METRIC.name,
                {
                    catalogue.ENVIRONMENT: "many",
                    catalogue.DEPLOYMENT: f"dep-{i:04d}",
                    catalogue.METRIC: "score",
                },
                {"value": float(i)},
                t + i * S // 100,
            )
            for i in range(DEPLOYMENTS)
        ]
    )
    store.close()
    process = DashboardProcess(url, tmp / "dashboard.log")
    process.wait_ready()
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
