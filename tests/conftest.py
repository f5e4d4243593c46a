"""Shared fixtures: a real influxd for the session, and one fresh store per test per backend.

The InfluxDB tests never skip silently on CI: when ``influxd`` is missing and
``CI`` is set they fail with the command that installs it.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from browser import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402
from influx_server import InfluxServer, V2WriteFront  # noqa: E402

from fleetgauge.stores import Store, open_store  # noqa: E402

BACKENDS = ("sqlite", "influxdb")
INSTALL_HINT = "influxd not found: install it with `apt-get update && apt-get install -y influxdb`"


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += seconds``)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class InfluxHarness:
    """A running influxd plus its v2 write front; hands out one database per test."""

    def __init__(self, server: InfluxServer, front: V2WriteFront) -> None:
        self.server = server
        self.front = front

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.server.create_database(name)
        return name

    def store_url(self, database: str) -> str:
        return f"influxdb+{self.front.url}/{database}?org=tests"


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxHarness]:
    """A real influxd 1.x (Debian package) on free loopback ports, with the v2 write front."""
    if shutil.which("influxd") is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    server = InfluxServer(tmp_path_factory.mktemp("influxd"))
    server.start()
    front = V2WriteFront(server.url)
    front.start()
    try:
        yield InfluxHarness(server, front)
    finally:
        front.stop()
        server.stop()


def make_store(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh, empty store of the given backend."""
    if backend == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'fleetgauge.db'}")
    harness: InfluxHarness = request.getfixturevalue("influx")
    return open_store(harness.store_url(harness.new_database()))


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """One empty store per test, parametrized over both backends."""
    s = make_store(request.param, request, tmp_path)
    yield s
    s.close()


def pytest_setup_options():  # noqa: ANN201 - hook of dash[testing]
    """Headless Debian Chromium for dash[testing]'s dash_duo."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (*CHROMIUM_FLAGS, "--window-size=1400,1000"):
        options.add_argument(arg)
    return options


@pytest.fixture(scope="session", params=BACKENDS)
def grid(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The 9-execution grid of ``executions_grid``, recorded through a real agent, per backend.

    Returns ``(store URL, Grid)``; the first execution started 4 hours ago.
    """
    import time

    from executions_grid import MINUTE, S, seed_grid

    tmp = tmp_path_factory.mktemp(f"grid-{request.param}")
    store = make_store(request.param, request, tmp)
    url = store.url
    store.close()
    first = (time.time_ns() // MINUTE) * MINUTE - 4 * 3600 * S
    return url, seed_grid(url, tmp / "agent", first)
