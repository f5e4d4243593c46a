"""The site in headless Chromium (dash_duo) over a seeded store, on SQLite and on InfluxDB.

Given the seed of ``dashboard_site`` (w1 at 97 % CPU, w2 at 85 %, ...), the user
sees the cards, curves, summaries and CSV rows that follow from it; the view
lives in the URL and the browser's console stays free of errors.
"""

from __future__ import annotations

import csv
import io
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BACKENDS, InfluxHarness, make_store
from dashboard_site import (
    CPU,
    EVIL_WORKER,
    GAP_AGO,
    MINUTE,
    DashboardProcess,
    S,
    Seed,
    dashboard_over,
    fetch,
    no_traceback,
    seed,
)
from influx_server import V2WriteFront
from selenium.webdriver.common.by import By

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read.export import layout
from fleetgauge.timeutil import format_time, parse_time

GRAPHS_JS = """
return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g => ({
  title: (g.layout.title && g.layout.title.text) || '',
  range: g.layout.xaxis && g.layout.xaxis.range,
  traces: g.data.map(t => ({name: t.name, y: t.y, x: t.x || null, x0: t.x0 === undefined ?
    null : t.x0, dx: t.dx === undefined ? null : t.dx, text: t.text || null,
    hover: t.hovertemplate || null, custom: t.customdata || null}))
}));
"""


@dataclass
class Site:
    """A dashboard process over a seeded store."""

    url: str
    seed: Seed
    process: DashboardProcess


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"site-{request.param}")
    store = make_store(request.param, request, tmp)
    data = seed(store, (time.time_ns() // MINUTE) * MINUTE)
    url = store.url
    store.close()
    process = DashboardProcess(url, tmp / "dashboard.log")
    process.wait_ready()
    yield Site(process.url, data, process)
    assert process.stop() == 0, process.log()
    assert no_traceback(process.log()), process.log()


def open_page(dash_duo, url: str) -> None:
    dash_duo.driver.get(url)
    dash_duo.wait_for_element("#banner", timeout=20)


def graphs(dash_duo, count: int) -> dict[str, dict]:
    """The figures drawn in the page by title, once ``count`` graphs are drawn."""
    deadline = time.monotonic() + 20
    while True:
        found = dash_duo.driver.execute_script(GRAPHS_JS)
        if len(found) >= count and all(g["traces"] or "no data" in g["title"] for g in found):
            return {g["title"].split("<br>")[0]: g for g in found}
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} graphs not drawn: {found!r:.500}")
        time.sleep(0.2)


def settled(dash_duo, quiet_s: float = 0.5) -> None:
    """Wait until no callback has run for ``quiet_s``: the graphs' own first resize
    (``autosize``, just after they draw) has happened and cannot overwrite what comes next."""
    deadline = time.monotonic() + 15
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s:
        if dash_duo.redux_state_is_loading:
            quiet_since = time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError("callbacks still running after 15 s")
        time.sleep(0.05)


def axis_ns(value: object) -> int:
    """A plotly date-axis bound (ms since the epoch or UTC date text) in ns."""
    if isinstance(value, int | float):
        return int(value * 1_000_000)
    return parse_time(str(value))


def lines(graph: dict) -> dict[str, dict]:
    """Curves by name, without the band edges."""
    return {t["name"]: t for t in graph["traces"] if not t["name"].endswith((" min", " max"))}


def values(trace: dict) -> list[float]:
    return [v for v in trace["y"] if v is not None]


def cards(dash_duo) -> dict[str, tuple[str, str]]:
    dash_duo.wait_for_element(".card .card-main", timeout=20)
    out = {}
    for card in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".card"):
        title = card.find_element(By.CSS_SELECTOR, ".card-title").text
        out[title.upper()] = (card.text, card.get_attribute("class"))
    return out


def wait_for_url(dash_duo, fragment: str) -> str:
    deadline = time.monotonic() + 15
    while fragment not in dash_duo.driver.current_url:
        if time.monotonic() > deadline:
            raise AssertionError(f"{fragment!r} not in {dash_duo.driver.current_url}")
        time.sleep(0.1)
    return dash_duo.driver.current_url


def assert_clean_console(dash_duo) -> None:
    logs = dash_duo.get_logs()
    assert logs == [], "\n".join(entry["message"] for entry in logs)


def test_cards_show_the_seeded_overuse(dash_duo, site: Site) -> None:
    open_page(dash_duo, site.url + "/?env=test")
    c = cards(dash_duo)
    resources = {"CPU", "MEMORY", "GPU UTILISATION", "GPU MEMORY", "DISK", "NETWORK"}
    assert set(c) == resources | {"IDLE BUT ALLOCATED GPUS"}
    assert "no GPU held but idle (under 5 %)" in c["IDLE BUT ALLOCATED GPUS"][0]  # none held
    text, cls = c["CPU"]
    assert "2 of 4 over 80 %" in text  # w3's one spike to 100 % is not sustained
    assert "worst: w1 97.0 %" in text and "critical" in cls
    text, cls = c["MEMORY"]
    assert "1 of 4 over 80 %" in text and "w1 (container limit) 90.0 %" in text
    assert "warning" in cls
    text, cls = c["GPU UTILISATION"]
    assert "1 of 4 over 80 %" in text and "w1 (gpu 1) 99.0 %" in text and "critical" in cls
    assert "0 of 4 over 80 %" in c["GPU MEMORY"][0]
    assert "0 of 4 over 80 %" in c["DISK"][0] and "60.0 %" in c["DISK"][0]
    assert "no threshold set" in c["NETWORK"][0] and "1.5 MB/s" in c["NETWORK"][0]
    assert_clean_console(dash_duo)


def test_graphs_draw_each_worker_and_the_aggregate(dash_duo, site: Site) -> None:
    open_page(dash_duo, site.url + "/?env=test")
    drawn = graphs(dash_duo, 6)
    cpu = lines(drawn["CPU"])
    assert list(cpu) == ["w1", "w2", "w3", "w4", "all selected (mean)"]
    for worker, level in CPU.items():
        assert Counter(values(cpu[worker])).most_common(1)[0][0] == level
    assert set(values(cpu["w1"])) == {97.0}
    total = Counter(values(cpu["all selected (mean)"]))
    assert total.most_common(1)[0][0] == 58.0  # (97 + 85 + 40 + 10) / 4
    assert total[74.0] > 0  # while w4 was down: (97 + 85 + 40) / 3
    w4 = cpu["w4"]["y"]
    assert None in w4[1:-1]  # a gap, not a line to zero
    assert 0.0 not in w4
    step_ms = cpu["w4"]["dx"]
    gap_buckets = sum(1 for v in w4 if v is None)
    assert abs(gap_buckets - (GAP_AGO[0] - GAP_AGO[1]) / 1e6 / step_ms) <= 2
    assert " of " in drawn["CPU"]["title"] and "points" in drawn["CPU"]["title"]
    gpu = drawn["GPU utilisation"]
    gpu_lines = lines(gpu)
    assert set(values(gpu_lines["w1"])) == {59.5}  # the mean of its two GPUs
    band = {t["name"]: t for t in gpu["traces"]}
    assert set(values(band["w1 min"])) == {20.0} and set(values(band["w1 max"])) == {99.0}
    network = lines(drawn["Network"])
    assert set(values(network["w1"])) == {1.5e6}
    assert Counter(values(network["all selected (sum)"])).most_common(1)[0][0] == 6e6
    # hovers carry the unit, the whole name and each bucket's min and max
    assert cpu["w1"]["hover"] == (
        "%{y:.1f} % (min %{customdata[0]:.1f}, max %{customdata[1]:.1f})"
        "<extra>%{fullData.name}</extra>"
    )
    assert "bytes/s (min " in network["w1"]["hover"]
    assert {tuple(pair) for pair in gpu_lines["w1"]["custom"] if pair[0] is not None} == {
        (20.0, 99.0)  # its two GPUs: the bucket's lowest and highest
    }
    assert "min" not in cpu["all selected (mean)"]["hover"]
    assert_clean_console(dash_duo)


def test_range_and_worker_selection_change_the_data(dash_duo, site: Site) -> None:
    open_page(dash_duo, site.url + "/?env=test")
    day = graphs(dash_duo, 6)["CPU"]
    assert "buckets" in day["title"]
    dash_duo.driver.find_element(By.CSS_SELECTOR, "#range input[value='1h']").click()
    wait_for_url(dash_duo, "range=1h")
    deadline = time.monotonic() + 20
    while "every sample" not in (hour := graphs(dash_duo, 6)["CPU"])["title"]:
        assert time.monotonic() < deadline, hour["title"]
        time.sleep(0.2)
    span_s = (axis_ns(hour["range"][1]) - axis_ns(hour["range"][0])) / 1e9
    assert abs(span_s - 3600) < 5
    lo, hi = axis_ns(hour["range"][0]), axis_ns(hour["range"][1])
    seeded = [
        p
        for p in site.seed.points
        if p.measurement == "cpu" and p.tags["worker"] == "w1" and lo <= p.time_ns < hi
    ]
    assert abs(len(values(lines(hour)["w1"])) - len(seeded)) <= 1  # every sample, ms bounds
    c = cards(dash_duo)
    dash_duo.driver.find_element(By.CSS_SELECTOR, ".card.critical").click()  # CPU: w1 and w2
    url = wait_for_url(dash_duo, "worker=w1")
    assert parse_qs(urlsplit(url).query)["worker"] == ["w1", "w2"]
    deadline = time.monotonic() + 20
    while list(cpu := lines(graphs(dash_duo, 6)["CPU"])) != ["w1", "w2", "all selected (mean)"]:
        assert time.monotonic() < deadline, list(cpu)
        time.sleep(0.2)
    assert set(values(cpu["all selected (mean)"])) == {91.0}
    assert "CPU" in c
    assert_clean_console(dash_duo)


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _expected(seed: Seed, start: int, end: int, keep) -> list[tuple]:
    rows = []
    for p in seed.points:
        if start <= p.time_ns < end and keep(p):
            rows.append((p.time_ns, p.measurement, tuple(sorted(p.tags.items())), p.fields))
    return sorted(rows, key=repr)


def _actual(rows: list[dict[str, str]], tag_keys, field_keys) -> list[tuple]:
    out = []
    for r in rows:
        tags = tuple(sorted((k, r[k]) for k in tag_keys if r.get(k)))
        fields = {k: float(r[k]) for k in field_keys if r.get(k)}
        out.append((parse_time(r["time"]), r["measurement"], tags, fields))
    return sorted(out, key=repr)


def test_csv_download_is_the_selected_raw_rows(dash_duo, site: Site) -> None:
    open_page(dash_duo, site.url + "/?env=test&range=1h&worker=w1&worker=w2")
    graphs(dash_duo, 6)
    href = dash_duo.find_element("#resources-download").get_attribute("href")
    status, headers, text = fetch(href)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "fleetgauge-resources-test-" in headers["Content-Disposition"]
    query = parse_qs(urlsplit(href).query)
    start, end = parse_time(query["start"][0]), parse_time(query["end"][0])
    rows = _csv_rows(text)
    header = list(rows[0])
    tags = [k for k in header if k in layout("resources").tag_columns]
    fields = [k for k in header if k not in tags and k not in ("time", "measurement", "other_tags")]

    def selected(p) -> bool:
        resource = catalogue.MEASUREMENTS[p.measurement].family is catalogue.Family.RESOURCE
        return (
            resource
            and p.tags.get("environment") == "test"
            and p.tags.get("worker")
            in (
                "w1",
                "w2",
            )
        )

    expected = _expected(site.seed, start, end, selected)
    assert len(expected) > 400  # an hour of 2 workers x 7 points a minute
    assert _actual(rows, tags, fields) == expected
    status, _, evil = fetch(
        f"{site.url}/download/resources.csv?environment=evil&start={query['start'][0]}"
        f"&end={query['end'][0]}"
    )
    workers = {r["worker"] for r in _csv_rows(evil)}
    assert status == 200 and workers == {"'" + EVIL_WORKER}
    # the same rows as one CSV per measurement, each with its own columns only
    zip_href = dash_duo.find_element("#resources-download-zip").get_attribute("href")
    assert parse_qs(urlsplit(zip_href).query) == query
    with urllib.request.urlopen(zip_href, timeout=30) as r:
        assert r.headers["Content-Type"] == "application/zip"
        assert r.headers["Content-Disposition"].endswith('.zip"')
        archive = zipfile.ZipFile(io.BytesIO(r.read()))
    per_measurement = []
    for name in archive.namelist():
        member = _csv_rows(archive.read(name).decode())
        assert {r["measurement"] for r in member} <= {name.removesuffix(".csv")}
        if member:
            own = list(member[0])
            tags = [k for k in own if k in layout("resources").tag_columns]
            fields = [k for k in own if k not in tags and k not in ("time", "measurement")]
            assert set(fields) - {"other_tags"} <= set(
                layout("resources", [name.removesuffix(".csv")]).field_columns
            )
            per_measurement += _actual(member, tags, [f for f in fields if f != "other_tags"])
    assert sorted(per_measurement, key=repr) == expected
    assert_clean_console(dash_duo)


def test_pipeline_page_shows_values_summary_and_events(dash_duo, site: Site) -> None:
    open_page(
        dash_duo,
        site.url + "/pipeline?env=test&deployment=model-a&deployment=model-b&metric=score",
    )
    dash_duo.wait_for_element(".summary-row", timeout=20)
    rows = _summary(dash_duo)
    assert rows["model-a"] == ["120", "0.5", "0", "1", "1"]  # 0, 1, 0, ..., 1: last is 1
    assert rows["model-b"] == ["60", "0.5", "0.5", "0.5", "0.5"]
    chart = graphs(dash_duo, 1)["score"]
    drawn = {t["name"]: t for t in chart["traces"]}
    assert drawn["model-a values"]["y"] == [float(i % 2) for i in range(120)]
    assert drawn["model-b values"]["y"] == [0.5] * 60
    assert "model-a rolling mean" in drawn
    assert len(drawn["events"]["y"]) == 1 and "model_reloaded" in drawn["events"]["text"][0]
    href = dash_duo.find_element("#pipeline-download").get_attribute("href")
    status, _, text = fetch(href)
    csv_rows = _csv_rows(text)
    assert status == 200 and len(csv_rows) == 180
    assert (
        sorted(float(r["value"]) for r in csv_rows if r["deployment"] == "model-a")
        == [0.0] * 60 + [1.0] * 60
    )
    zoom_to = (
        (site.seed.end_ns - 30 * MINUTE) // 1_000_000,
        (site.seed.end_ns + MINUTE) // 1_000_000,
    )
    deadline = time.monotonic() + 30
    while _summary(dash_duo).get("model-a", [""])[0] != "30":
        assert time.monotonic() < deadline, _summary(dash_duo)
        settle(dash_duo)  # a zoom sent while the first load is in flight can be overtaken by it
        dash_duo.driver.execute_script(
            "Plotly.relayout(document.querySelector('.js-plotly-plot'),"
            " {'xaxis.range': [arguments[0], arguments[1]]});",
            *zoom_to,
        )
        time.sleep(1)
        settle(dash_duo)
    assert _summary(dash_duo)["model-b"][0] == "30"
    # the zoom is the view's custom range: a reload shows the same window
    zoomed = wait_for_url(dash_duo, "range=custom")
    query = parse_qs(urlsplit(zoomed).query)
    assert (
        parse_time(query["start"][0]) <= zoom_to[0] * 1_000_000 < parse_time(query["start"][0]) + S
    )
    dash_duo.driver.refresh()
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    deadline = time.monotonic() + 20
    while _summary(dash_duo).get("model-a", [""])[0] != "30":
        assert time.monotonic() < deadline, _summary(dash_duo)
        time.sleep(0.3)
    assert_clean_console(dash_duo)


def test_choosing_workers_splits_a_deployment_by_the_worker_that_served_it(
    dash_duo, site: Site
) -> None:
    """model-a's 0s came through w1's agent and its 1s through w2's: one line each."""
    open_page(
        dash_duo,
        site.url + "/pipeline?env=test&deployment=model-a&metric=score&worker=w1&worker=w2",
    )
    dash_duo.wait_for_element(".summary-row", timeout=20)
    deadline = time.monotonic() + 20
    while len(rows := _summary(dash_duo)) != 2:
        assert time.monotonic() < deadline, rows
        time.sleep(0.3)
    assert rows == {
        "model-a on w1": ["60", "0", "0", "0", "0"],
        "model-a on w2": ["60", "1", "1", "1", "1"],
    }
    assert "deployment (on worker)" in dash_duo.find_element(".summary").text
    [chart] = graphs(dash_duo, 1).values()  # all 0/1: the share-of-1s chart
    names = {t["name"] for t in chart["traces"]}
    assert {"model-a on w1 share of 1s", "model-a on w2 share of 1s"} <= names, names
    href = dash_duo.find_element("#pipeline-download").get_attribute("href")
    status, _, text = fetch(href)
    assert status == 200
    assert sorted({r["worker"] for r in _csv_rows(text)}) == ["w1", "w2"]
    assert len(_csv_rows(text)) == 120
    # one worker: only what its agent took
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a&metric=score&worker=w2")
    deadline = time.monotonic() + 20
    while _summary(dash_duo) != {"model-a on w2": ["60", "1", "1", "1", "1"]}:
        assert time.monotonic() < deadline, _summary(dash_duo)
        time.sleep(0.3)
    assert_clean_console(dash_duo)


def settle(dash_duo, timeout: float = 20) -> None:
    """Wait until the page has no callback in flight."""
    deadline = time.monotonic() + timeout
    while dash_duo.redux_state_rqs:
        assert time.monotonic() < deadline, "callbacks still pending"
        time.sleep(0.1)


def _summary(dash_duo) -> dict[str, list[str]]:
    out = {}
    for row in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".summary-row"):
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        out[cells[0]] = cells[1:6]
    return out


def test_the_url_round_trips_the_view(dash_duo, site: Site) -> None:
    open_page(dash_duo, site.url + "/?env=test&range=6h&refresh=10s&worker=w2&worker=w3")
    assert list(lines(graphs(dash_duo, 6)["CPU"])) == ["w2", "w3", "all selected (mean)"]
    driver = dash_duo.driver
    assert driver.find_element(By.CSS_SELECTOR, "#range input[value='6h']").is_selected()
    assert driver.find_element(By.CSS_SELECTOR, "#auto-refresh input[value='10s']").is_selected()
    assert "test" in driver.find_element(By.CSS_SELECTOR, ".control.env").text
    driver.find_element(By.CSS_SELECTOR, "#range input[value='1h']").click()
    wait_for_url(dash_duo, "range=1h")
    driver.back()
    wait_for_url(dash_duo, "range=6h")
    dash_duo.wait_for_element("#range input[value='6h']:checked", timeout=10)
    assert list(lines(graphs(dash_duo, 6)["CPU"])) == ["w2", "w3", "all selected (mean)"]
    driver.find_element(By.ID, "nav-pipeline").click()
    url = wait_for_url(dash_duo, "/pipeline")
    query = parse_qs(urlsplit(url).query)
    assert query.pop("metric", ["score"]) == ["score"]  # the metric shown joins the URL
    assert query == {"env": ["test"], "range": ["6h"], "refresh": ["10s"]}
    assert_clean_console(dash_duo)


def test_a_store_that_goes_down_shows_a_banner_and_the_page_stays(
    dash_duo, tmp_path, influx: InfluxHarness
) -> None:
    # the real influxd behind a front of its own: closing the front takes the store away
    front = V2WriteFront(influx.server.url)
    front.start()
    database = influx.new_database()
    url = f"influxdb+{front.url}/{database}?org=o&timeout=2"
    process = DashboardProcess(url, tmp_path / "dashboard.log")
    try:
        process.wait_ready()  # it checked the store at start-up: up
        front.stop()
        open_page(dash_duo, process.url + "/")
        dash_duo.wait_for_contains_text("#banner", "could not be read", timeout=20)
        assert dash_duo.find_element("#banner").is_displayed()
        assert "Traceback" not in dash_duo.driver.page_source
        dash_duo.driver.find_element(By.CSS_SELECTOR, "#range input[value='1h']").click()
        wait_for_url(dash_duo, "range=1h")
        dash_duo.wait_for_contains_text("#banner", "could not be read", timeout=20)
        status, _, body = fetch(process.url + "/download/resources.csv?start=0&end=100")
        assert status == 503 and "could not be read" in body
        assert_clean_console(dash_duo)
    finally:
        assert process.stop() == 0
    assert no_traceback(process.log()), process.log()


def test_a_custom_range_past_the_stores_limits_gets_a_readable_banner(dash_duo, site: Site) -> None:
    far = "range=custom&start=0001-01-01T00%3A00%3A00Z&end=9999-12-31T23%3A59%3A59Z"
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a&metric=score&" + far)
    dash_duo.wait_for_contains_text("#banner", "outside the times a store can hold", timeout=20)
    (chart,) = graphs(dash_duo, 1).values()
    assert chart["traces"]  # the default range, drawn

    end = format_time(site.seed.end_ns + MINUTE).replace(":", "%3A")
    open_page(dash_duo, site.url + f"/?env=test&range=custom&start=1677-09-22&end={end}")
    dash_duo.wait_for_contains_text("#banner", "custom range clamped to 1970-01-01", timeout=20)
    drawn = graphs(dash_duo, 6)
    assert values(lines(drawn["CPU"])["w1"]), drawn["CPU"]  # the whole history, from 1970 on
    assert "could not be drawn" not in dash_duo.find_element("#banner").text
    assert_clean_console(dash_duo)


def test_names_in_the_link_with_no_data_get_a_banner_not_just_an_empty_page(
    dash_duo, site: Site
) -> None:
    open_page(dash_duo, site.url + "/?env=nope")
    dash_duo.wait_for_contains_text("#banner", "No data from the environment 'nope'", timeout=20)
    open_page(dash_duo, site.url + "/?env=test&worker=w1&worker=ghost")
    dash_duo.wait_for_contains_text("#banner", "No data from the worker 'ghost'", timeout=20)
    assert "'w1'" not in dash_duo.find_element("#banner").text
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=modle-a&deployment=x")
    dash_duo.wait_for_contains_text(
        "#banner", "No data from the deployments 'modle-a', 'x' in this range", timeout=20
    )
    open_page(dash_duo, site.url + "/executions?env=nope")
    dash_duo.wait_for_contains_text("#banner", "No data from the environment 'nope'", timeout=20)
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a")
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    assert not dash_duo.find_element("#banner").is_displayed()
    assert_clean_console(dash_duo)


def test_a_zoom_on_the_resources_page_is_in_the_url_and_survives_a_reload(
    dash_duo, site: Site
) -> None:
    open_page(dash_duo, site.url + "/?env=test&range=6h")
    graphs(dash_duo, 6)
    settled(dash_duo)  # a zoom in the instant the graphs first resize is overwritten by it
    start_ms = (site.seed.end_ns - 40 * MINUTE) // 1_000_000
    end_ms = (site.seed.end_ns - 10 * MINUTE) // 1_000_000
    dash_duo.driver.execute_script(
        "Plotly.relayout(document.querySelector('.js-plotly-plot'),"
        " {'xaxis.range': [arguments[0], arguments[1]]});",
        start_ms,
        end_ms,
    )
    url = wait_for_url(dash_duo, "range=custom")
    query = parse_qs(urlsplit(url).query)
    assert (
        parse_time(query["start"][0]) // 1_000_000
        <= start_ms
        < parse_time(query["end"][0]) // 1_000_000
    )
    dash_duo.driver.refresh()
    graphs(dash_duo, 6)
    shown = dash_duo.driver.execute_script(
        "return document.querySelector('.js-plotly-plot').layout.xaxis.range"
    )
    slack = (end_ms - start_ms) / 100  # the window is drawn on whole buckets
    assert abs(shown[0] - start_ms) < slack and abs(shown[1] - end_ms) < slack, shown
    assert_clean_console(dash_duo)


OVERFLOW_JS = """
const root = document.documentElement;
const clipped = [...document.querySelectorAll('.card, .card *')]
  .filter(e => e.scrollWidth > e.clientWidth + 1
    || e.getBoundingClientRect().right > root.clientWidth)
  .map(e => e.className + ': ' + e.textContent.slice(0, 60));
const wide = [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
  .map(e => e.tagName + '.' + e.className + ' in ' + (e.closest('.control') || {}).className
    + ' right ' + Math.round(e.getBoundingClientRect().right)).slice(-6);
return {scroll: root.scrollWidth, client: root.clientWidth,
  cards: document.querySelectorAll('.card').length, clipped, wide};
"""


@pytest.mark.parametrize("width", [1000, 1400])
def test_the_pages_fit_the_window_with_no_horizontal_scrollbar_and_no_clipped_card(
    dash_duo, site: Site, width: int
) -> None:
    dash_duo.driver.set_window_size(width, 1000)
    for path, ready in (
        ("/?env=test", ".card .card-main"),
        ("/pipeline?env=test&deployment=model-a", "#metric-graph .gtitle"),
        ("/executions?env=test", "#banner"),
    ):
        open_page(dash_duo, site.url + path)
        dash_duo.wait_for_element(ready, timeout=20)
        time.sleep(0.5)  # late layout: the graphs size themselves after they draw
        got = dash_duo.driver.execute_script(OVERFLOW_JS)
        assert got["scroll"] <= got["client"], (path, width, got["wide"], got["scroll"])
        assert not got["clipped"], (path, width, got)
        if path.startswith("/?"):
            assert got["cards"] >= 5, got
    assert_clean_console(dash_duo)


@pytest.fixture(scope="module")
def one_second_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    """Two workers sampling every second for the last 15 minutes; ``gappy`` sent nothing
    from 8 to 7 minutes before the end (its agent down for a minute)."""
    tmp = tmp_path_factory.mktemp("one-second")
    store = make_store("sqlite", request, tmp)
    end = time.time_ns() // S * S
    down = (end - 8 * MINUTE, end - 7 * MINUTE)
    store.write(
        [
            Point(
                catalogue.CPU.name,
                {catalogue.ENVIRONMENT: "fine", catalogue.WORKER: worker},
                {"usage_percent": 40.0 if worker == "steady" else 60.0},
                t,
            )
            for t in range(end - 15 * MINUTE, end, S)
            for worker in ("steady", "gappy")
            if worker == "steady" or not down[0] <= t < down[1]
        ]
    )
    url = store.url
    store.close()
    process = DashboardProcess(url, tmp / "dashboard.log")
    process.wait_ready()
    yield process.url, end
    assert process.stop() == 0, process.log()


def segments(trace: dict) -> list[tuple[int, int, set[float]]]:
    """The unbroken pieces of a curve, whether drawn with x or with x0 and dx: (first
    time ns, last time ns, the values on it); a null x or y breaks the line."""
    y = trace["y"]
    if trace["x"]:
        times = [axis_ns(x) if x is not None else None for x in trace["x"]]
    else:
        times = [axis_ns(trace["x0"]) + int(i * trace["dx"] * 1_000_000) for i in range(len(y))]
    pieces: list[tuple[int, int, set[float]]] = []
    current: list[tuple[int, float]] = []
    for t, v in [*zip(times, y, strict=True), (None, None)]:
        if t is None or v is None:
            if current:
                pieces.append((current[0][0], current[-1][0], {v for _, v in current}))
            current = []
        else:
            current.append((t, v))
    return pieces


def test_a_one_second_worker_is_one_line_and_a_minute_without_samples_is_a_gap(
    dash_duo, one_second_site: tuple[str, int]
) -> None:
    url, end = one_second_site
    open_page(dash_duo, url + "/?env=fine&range=15m")
    dash_duo.wait_for_contains_text("#graphs .gtitle", "points", timeout=20)
    drawn = {g["title"].split("<br>")[0]: g for g in dash_duo.driver.execute_script(GRAPHS_JS)}
    cpu = lines(drawn["CPU"])
    steady = segments(cpu["steady"])
    assert len(steady) == 1 and steady[0][2] == {40.0}, steady  # one unbroken line
    assert steady[0][1] - steady[0][0] > 14 * MINUTE, steady
    gappy = segments(cpu["gappy"])
    assert len(gappy) == 2, gappy  # broken once, where it sent nothing
    (_, before, _), (after, _, _) = gappy
    assert abs(before - (end - 8 * MINUTE)) <= 2 * S, (before, end)  # within a bucket or two
    assert abs(after - (end - 7 * MINUTE)) <= 2 * S, (after, end)
    assert_clean_console(dash_duo)


def test_the_metric_shown_is_held_in_the_url_in_place_and_an_unknown_one_is_named(
    dash_duo, site: Site
) -> None:
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a")
    entries = dash_duo.driver.execute_script("return window.history.length")
    url = wait_for_url(dash_duo, "metric=score")
    assert parse_qs(urlsplit(url).query)["deployment"] == ["model-a"]
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    assert dash_duo.driver.execute_script("return window.history.length") == entries  # replaced
    assert dash_duo.find_element("#metric").text.startswith("score")
    dash_duo.driver.refresh()
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    assert "metric=score" in dash_duo.driver.current_url
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a&metric=scroe")
    dash_duo.wait_for_contains_text("#banner", "'scroe'", timeout=20)
    assert "metric=scroe" in dash_duo.driver.current_url  # not switched to another metric
    assert_clean_console(dash_duo)


def test_a_zero_one_metric_is_drawn_as_a_rate_over_a_window_the_user_sets(
    dash_duo, site: Site
) -> None:
    # model-a's score: 120 values a minute apart alternating 0 and 1, ending with 1
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-a&metric=score&range=6h")
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "share of 1s", timeout=20)
    chart = graphs(dash_duo, 1)
    (title,) = chart
    assert title == "score: share of 1s over a rolling 15 min"  # auto: 6 h / 40, rounded up
    (rate,) = [t for t in chart[title]["traces"] if t["name"] == "model-a share of 1s"]
    assert len(rate["y"]) == 120
    # a full window holds 15 values alternating 0 and 1: 7 or 8 of them are 1s
    assert {round(v, 1) for v in rate["y"][15:]} == {46.7, 53.3}, rate["y"][15:]
    assert "of %{customdata:,} values in the 15 min before" in rate["hover"]
    dash_duo.select_dcc_dropdown("#rate-window", value="1 h")
    wait_for_url(dash_duo, "window=1h")
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "rolling 1 h", timeout=20)
    (rate,) = [
        t
        for t in graphs(dash_duo, 1)["score: share of 1s over a rolling 1 h"]["traces"]
        if t["name"].endswith("share of 1s")
    ]
    assert {round(v, 1) for v in rate["y"][60:]} == {50.0}  # 60 values: 30 ones
    # a metric that is not 0/1 keeps its values and rolling mean
    open_page(dash_duo, site.url + "/pipeline?env=test&deployment=model-b&metric=score&range=6h")
    dash_duo.wait_for_contains_text("#metric-graph .gtitle", "points", timeout=20)
    assert "share of 1s" not in dash_duo.find_element("#metric-graph .gtitle").text
    assert_clean_console(dash_duo)


@pytest.fixture(scope="module")
def gpu_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Three workers' GPUs over the last hour: g1's slowed for heat half the time, g2's
    with an XID 79 ten minutes ago, g3's healthy."""
    tmp = tmp_path_factory.mktemp("gpu-health")
    store = make_store("sqlite", request, tmp)
    end = time.time_ns() // S * S
    points = []
    for i, t in enumerate(range(end - 60 * MINUTE, end, MINUTE)):
        for worker in ("g1", "g2", "g3"):
            hot = worker == "g1" and i % 2 == 0
            fields = {
                "utilization_percent": 90.0,
                "throttle_thermal_software": 1.0 if hot else 0.0,
                "throttle_power_cap": 0.0,
                "ecc_uncorrected_volatile_errors": 0.0,
            }
            tags = {catalogue.ENVIRONMENT: "gpus", catalogue.WORKER: worker, catalogue.GPU: "0"}
            points.append(Point(catalogue.GPU_MEASUREMENT.name, tags, fields, t))
    xid_tags = {
        catalogue.ENVIRONMENT: "gpus",
        catalogue.WORKER: "g2",
        catalogue.EVENT_NAME: "gpu_xid",
        catalogue.EVENT_SOURCE: "nvml",
        catalogue.GPU: "0",
    }
    metadata = '{"gpu": 0, "xid": 79, "meaning": "GPU has fallen off the bus"}'
    points.append(Point(catalogue.EVENT.name, xid_tags, {"metadata": metadata}, end - 10 * MINUTE))
    with dashboard_over(store, points, tmp / "dashboard.log") as url:
        yield url


def test_the_gpu_health_card_names_the_worst_gpu_and_filters_to_the_troubled(
    dash_duo, gpu_site: str
) -> None:
    open_page(dash_duo, gpu_site + "/?env=gpus&range=1h")
    got = cards(dash_duo)
    text, classes = got["GPU HEALTH"]
    assert "2 of 3 GPUs with trouble" in text
    assert "worst: g2 (gpu 0) XID 79" in text
    assert "critical" in classes.split()
    dash_duo.wait_for_contains_text("#graphs", "GPU utilisation", timeout=20)
    shapes = dash_duo.driver.execute_script(
        "const g = [...document.querySelectorAll('#graphs .js-plotly-plot')]"
        ".find(p => p.layout.title.text.startsWith('GPU utilisation'));"
        "return g.layout.shapes.filter(s => s.type === 'rect')"
        ".map(s => [s.x0, s.x1, s.name]);"
    )
    # g1 was slowed for heat every other minute for an hour: about 30 shaded spans
    assert 20 <= len(shapes) <= 40, shapes
    assert {name for _, _, name in shapes} == {"GPU slowed for heat"}
    assert all(x1 > x0 for x0, x1, _ in shapes)
    button = [
        b
        for b in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".card")
        if b.find_element(By.CSS_SELECTOR, ".card-title").text.upper() == "GPU HEALTH"
    ][0]
    button.click()
    url = wait_for_url(dash_duo, "worker=")
    assert parse_qs(urlsplit(url).query)["worker"] == ["g1", "g2"]
    assert_clean_console(dash_duo)
