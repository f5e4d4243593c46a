"""The dashboard as served: gunicorn workers, slow clients fenced off, SIGTERM (issue 20, point 2).

A real ``fleetgauge dashboard`` process over a small SQLite store; the test
opens hundreds of connections that send half a request, and bodies that
trickle, and checks what a user would: pages still load within a second, the
slow connections are closed, the workers' descriptors and threads come back.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from dashboard_site import DashboardProcess, seed

from fleetgauge.stores import open_store

S = 1_000_000_000


@pytest.fixture
def site(tmp_path: Path) -> Iterator[DashboardProcess]:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    store = open_store(url)
    seed(store, (time.time_ns() // (60 * S)) * 60 * S)
    store.close()
    dashboard = DashboardProcess(
        url,
        tmp_path / "dashboard.log",
        *("--workers", "2", "--threads", "2", "--header-timeout", "2", "--body-timeout", "2"),
    )
    try:
        dashboard.wait_ready()
        yield dashboard
    finally:
        dashboard.stop()


def _timed_get(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        r.read()
    return time.monotonic() - started


def _usage(master: psutil.Process) -> tuple[int, int]:
    """Descriptors and threads of the master and its workers together."""
    procs = [master, *master.children()]
    return sum(p.num_fds() for p in procs), sum(p.num_threads() for p in procs)


def _send(port: int, data: bytes, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(data)
        socks.append(s)
    return socks


def test_the_site_runs_on_gunicorn_workers_and_half_sent_requests_do_not_hold_them(
    site: DashboardProcess,
) -> None:
    master = psutil.Process(site.proc.pid)
    deadline = time.monotonic() + 20  # the site answers once one worker is up; wait for both
    while len(workers := master.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers) == 2, site.log()
    assert "development server" not in site.log()
    fds_idle, threads_idle = _usage(master)

    half = _send(site.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n", 500)
    assert _timed_get(site.url + "/_dash-layout") < 1.0
    assert _timed_get(site.url + "/") < 1.0  # the page and its scripts, from either worker
    fds_busy, threads_busy = _usage(master)
    # a half-sent request costs a descriptor, never a thread
    assert threads_busy <= threads_idle + 2 * 2, (threads_idle, threads_busy)
    assert fds_busy <= fds_idle + 500 + 8, (fds_idle, fds_busy)

    # bodies that trickle: 408 once the body timeout (2 s) passes; a page meanwhile loads
    head = (
        b"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"
    )
    slow = _send(site.port, head, 20)
    assert _timed_get(site.url + "/_dash-layout") < 1.0
    for s in slow:
        s.settimeout(10)
        assert s.recv(200).startswith(b"HTTP/1.1 408"), "a body that never came got no 408"
    big = _send(
        site.port,
        b"POST /_dash-update-component HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 99000000\r\n\r\n",
        1,
    )[0]
    big.settimeout(10)
    assert big.recv(200).startswith(b"HTTP/1.1 413")

    # the half-sent ones are closed by the site (no more data for the keep-alive time)
    half[0].settimeout(15)
    assert half[0].recv(100) == b""
    deadline = time.monotonic() + 15
    while _usage(master)[0] > fds_idle + 8:
        assert time.monotonic() < deadline, (_usage(master), fds_idle)
        time.sleep(0.25)
    for s in half + slow + [big]:
        s.close()

    started = time.monotonic()
    site.proc.send_signal(signal.SIGTERM)
    assert site.proc.wait(15) == 0, site.log()
    assert time.monotonic() - started < 10
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert "Traceback" not in site.log(), site.log()


def _malloc_arenas(pid: int) -> int:
    """glibc malloc arenas besides the main one: each reserves a 64 MiB region that its
    heap grows into, left inaccessible (``---p``) until used."""
    count = 0
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        span, perms = line.split()[:2]
        low, high = (int(x, 16) for x in span.split("-"))
        if perms == "---p" and high - low > 32 * 1024 * 1024 and len(line.split()) == 5:
            count += 1
    return count


def test_each_worker_keeps_to_two_malloc_arenas_whatever_its_threads_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    store = open_store(url)
    seed(store, (time.time_ns() // (60 * S)) * 60 * S)
    store.close()
    dashboard = DashboardProcess(url, tmp_path / "dashboard.log", "--workers", "2")
    try:
        dashboard.wait_ready()
        with ThreadPoolExecutor(16) as pool:  # every thread of every worker busy at once
            times = list(pool.map(_timed_get, [dashboard.url + "/"] * 64))
        assert len(times) == 64
        workers = psutil.Process(dashboard.proc.pid).children()
        assert len(workers) == 2
        # glibc's default is an arena per thread, up to 8 per core (9 per worker in the soak)
        assert [_malloc_arenas(w.pid) <= 1 for w in workers] == [True, True], [
            _malloc_arenas(w.pid) for w in workers
        ]
    finally:
        dashboard.stop()


def test_debug_serves_on_the_development_server_and_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    open_store(url).close()
    dashboard = DashboardProcess(url, tmp_path / "dashboard.log", "--debug")
    try:
        dashboard.wait_ready()
        assert _timed_get(dashboard.url + "/_dash-layout") < 5
        assert not psutil.Process(dashboard.proc.pid).children()  # one process
    finally:
        assert dashboard.stop() == 0
    assert "development server, not for deployment" in dashboard.log()


def test_behind_a_proxy_path_the_page_asks_for_everything_under_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    open_store(url).close()
    dashboard = DashboardProcess(
        url, tmp_path / "dashboard.log", env={"DASH_REQUESTS_PATHNAME_PREFIX": "/fleet/"}
    )
    try:
        dashboard.wait_ready()  # the proxy strips /fleet: routes stay at /
        with urllib.request.urlopen(dashboard.url + "/", timeout=10) as r:
            page = r.read().decode()
    finally:
        dashboard.stop()
    # the browser's requests (callbacks, scripts, styles) all go to /fleet/...
    assert '"requests_pathname_prefix":"\\u002ffleet\\u002f"' in page
    assert '"/fleet/assets/style.css' in page and '"/fleet/_dash-component-suites/' in page


def test_malformed_callbacks_get_400_and_unknown_files_404_never_a_traceback(
    site: DashboardProcess,
) -> None:
    bodies = {
        b"{}": "'output'",
        b"not json": "not a JSON object",
        b"[]": "not a JSON object",
        b'{"output": "nowhere.children", "outputs": {}, "inputs": []}': "nowhere.children",
        b'{"output": "cards.children", "outputs": {}, "inputs": "x"}': "'inputs' must be a list",
        b'{"output": "cards.children", "outputs": {}, "inputs": [1]}': "malformed",
    }
    for body, reason in bodies.items():
        request = urllib.request.Request(
            site.url + "/_dash-update-component",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.code == 400, body
        assert reason in answer.value.read().decode(), body
    for path in ("/_dash-component-suites/../../etc/passwd", "/_dash-component-suites/x/y.js"):
        with socket.create_connection(("127.0.0.1", site.port), timeout=10) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            assert s.recv(100).startswith(b"HTTP/1.1 404"), path
    assert _timed_get(site.url + "/_dash-layout") < 5  # and the site is fine
    assert "Traceback" not in site.log(), site.log()
