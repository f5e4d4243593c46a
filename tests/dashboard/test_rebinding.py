"""A web page cannot reach the dashboard or the agent on loopback: real Chromium, real servers.

The attack: a page on a name the attacker controls (here ``evil.example``, mapped to
127.0.0.1 inside Chromium as DNS rebinding would) loads the dashboard under that
name, and posts values to the agent's push endpoint with ``fetch(..., {mode:
'no-cors', body: new Blob([json])})``, which needs no CORS approval. Both listeners
listen on loopback without credentials, as by default. Every attempt must fail:
the dashboard answers 403 to the foreign ``Host``, the push endpoint refuses the
foreign ``Host`` (403) and a body without ``application/json`` (415), and nothing
reaches the store.
"""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess
from browser import CHROMIUM, CHROMIUM_FLAGS
from dashboard_site import DashboardProcess
from influx_server import free_port

from fleetgauge import catalogue
from fleetgauge.stores import open_store

ATTACK = """<!doctype html><title>running</title><script>
const body = JSON.stringify({metrics: [{metric: "stolen", value: 1, deployment: "d"}]});
Promise.allSettled([
  fetch("http://127.0.0.1:%(push)d/v1/metrics",
        {method: "POST", mode: "no-cors", body: new Blob([body])}),
  fetch("http://evil.example:%(push)d/v1/metrics",
        {method: "POST", mode: "no-cors", body: new Blob([body])}),
  fetch("http://evil.example:%(push)d/v1/metrics",
        {method: "POST", mode: "no-cors", body: body, headers: {"Content-Type": "text/plain"}}),
]).then(() => { document.title = "done"; });
</script>"""


@pytest.fixture
def browser() -> Iterator[object]:
    if shutil.which("chromedriver") is None:
        pytest.fail("chromedriver not found: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def attacker_site(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A plain web server for the attacker's page, on its own port."""
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()

    def handler(*args: object) -> http.server.SimpleHTTPRequestHandler:
        return http.server.SimpleHTTPRequestHandler(*args, directory=str(site))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield site, port
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_name_reaches_neither_the_dashboard_nor_the_agent(
    tmp_path: Path, browser: object, attacker_site: tuple[Path, int]
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--flush-interval", "0.2", "--collectors", "cpu")
    with agent:
        dashboard = DashboardProcess(url, tmp_path / "dashboard.log")
        try:
            dashboard.wait_ready()
            browser.get(f"http://evil.example:{dashboard.port}/")  # type: ignore[attr-defined]
            text = browser.find_element("tag name", "body").text  # type: ignore[attr-defined]
            assert "is not a name this server answers to" in text, text
            assert "fleetgauge" not in browser.title  # type: ignore[attr-defined]
            browser.get(f"http://127.0.0.1:{dashboard.port}/")  # type: ignore[attr-defined]
            deadline = time.monotonic() + 20
            while "fleetgauge" not in browser.title and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.2)
            assert "fleetgauge" in browser.title  # type: ignore[attr-defined]  # its own name works
        finally:
            dashboard.stop()
        site, port = attacker_site
        (site / "attack.html").write_text(ATTACK % {"push": agent.push_port})
        # the rebinding page, then the same page from another local origin (a local app's)
        for page in (f"http://evil.example:{port}", f"http://127.0.0.1:{port}"):
            browser.get(f"{page}/attack.html")  # type: ignore[attr-defined]
            deadline = time.monotonic() + 20
            while browser.title != "done" and time.monotonic() < deadline:  # type: ignore[attr-defined]
                time.sleep(0.2)
            assert browser.title == "done", page  # type: ignore[attr-defined]
        requests = "fleetgauge_agent_push_requests_total"
        assert agent.value(requests, code="403") >= 3  # evil.example as Host or Origin
        assert agent.value(requests, code="415") >= 1  # a local page's no-cors blob
        assert agent.value(requests, code="202") == 0
        time.sleep(0.5)  # a flush interval and more: anything accepted would be stored
    store = open_store(url, create=False)
    try:
        assert list(store.stream_points(catalogue.PIPELINE_METRIC.name, 0, 2**62)) == []
    finally:
        store.close()
