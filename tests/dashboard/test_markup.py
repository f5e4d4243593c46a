"""Names are text, never markup (issue 20, point 6), seen in real Chromium.

Plotly reads tags in trace names, titles and hover text as markup: a
deployment named ``<a href="https://evil.example/phish">Open runbook</a>``
became a clickable link in the pipeline page's legend. Here such names are
stored as a client would push them, and the pages must show them literally,
with no link and no bold anywhere in the graphs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from dashboard_site import MINUTE, DashboardProcess, S, _resources

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.validation import validate_point

PHISH = '<a href="https://evil.example/phish">Open runbook</a>'
BOLD_WORKER = "<b>bold</b>&amp;"
METRIC = "<i>score</i>"
EVENT = "<br>reloaded"

GRAPH_TEXT_JS = """
const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
const all = (css) => plots.flatMap(p => Array.from(p.querySelectorAll(css)));
return {
  legend: all('.legendtext').map(t => t.textContent),
  titles: all('.gtitle, .ytitle').map(t => t.textContent),
  links: all('a').length,
  bold: all('tspan[style*="bold"]').length,
  italic: all('tspan[style*="italic"]').length,
};
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardProcess]:
    from fleetgauge.stores import open_store

    tmp = tmp_path_factory.mktemp("markup")
    url = f"sqlite:///{tmp / 'fg.db'}"
    store = open_store(url)
    end = (time.time_ns() // MINUTE) * MINUTE
    points = []
    for i in range(30):
        t = end - (30 - i) * MINUTE
        points += _resources("markup", BOLD_WORKER, t, end)
        points += _resources("markup", "plain", t, end)  # two curves: Plotly shows a legend
        tags = {
            catalogue.ENVIRONMENT: "markup",
            catalogue.DEPLOYMENT: PHISH,
            catalogue.METRIC: METRIC,
        }
        points.append(Point(catalogue.PIPELINE_METRIC.name, tags, {"value": float(i)}, t + S))
    event_tags = {
        catalogue.ENVIRONMENT: "markup",
        catalogue.EVENT_NAME: EVENT,
        catalogue.EVENT_SOURCE: "test",
        catalogue.DEPLOYMENT: PHISH,
    }
    points.append(Point(catalogue.EVENT.name, event_tags, {"metadata": "{}"}, end - 5 * MINUTE))
    for p in points:
        validate_point(p)  # names a client may push
    store.write(points)
    store.close()
    process = DashboardProcess(url, tmp / "dashboard.log")
    process.wait_ready()
    yield process
    process.stop()


def _drawn(dash_duo, want: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        found = dash_duo.driver.execute_script(GRAPH_TEXT_JS)
        if any(want in legend for legend in found["legend"]):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.3)


def test_a_deployment_named_like_a_link_shows_as_text_not_a_link(dash_duo, site) -> None:
    query = urlencode({"env": "markup", "deployment": PHISH, "metric": METRIC, "range": "6h"})
    dash_duo.driver.get(f"{site.url}/pipeline?{query}")
    found = _drawn(dash_duo, PHISH)
    assert f"{PHISH} values" in found["legend"], found
    assert METRIC in found["titles"], found
    assert found["links"] == 0 and found["italic"] == 0, found  # no <a>, no <i> rendered


def test_a_worker_named_with_tags_shows_as_text_on_the_resources_page(dash_duo, site) -> None:
    dash_duo.driver.get(f"{site.url}/?env=markup&range=6h")
    found = _drawn(dash_duo, BOLD_WORKER)
    assert BOLD_WORKER in found["legend"], found  # "&amp;" stays five characters
    assert found["bold"] == 0 and found["links"] == 0, found
