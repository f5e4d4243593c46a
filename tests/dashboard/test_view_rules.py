"""The rules behind what the site shows, without a browser: URL state, thresholds, verdicts,
curves with gaps, and the CLI's refusals."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from dashboard_site import DashboardProcess

from fleetgauge.dashboard.data.resources import sustained
from fleetgauge.dashboard.figures import curve_xy
from fleetgauge.dashboard.state import from_query, parse_search, to_search
from fleetgauge.dashboard.thresholds import IdleThreshold, Threshold, load_thresholds
from fleetgauge.stores import open_store
from fleetgauge.timeutil import parse_time

S = 1_000_000_000


def test_a_view_survives_the_url_and_bad_values_fall_back_with_a_reason() -> None:
    search = (
        "?env=prod&range=custom&start=2026-11-20T10%3A00%3A00Z&end=2026-11-21T10%3A00%3A00Z"
        "&refresh=10s&worker=a%2Cb&worker=c&deployment=m1&pipeline=p&metric=score"
    )
    state = from_query(parse_search(search))
    assert state.worker == ("a,b", "c") and state.env == "prod" and state.refresh == "10s"
    assert from_query(parse_search(to_search(state))) == state
    assert state.window(0) == (parse_time("2026-11-20T10:00Z"), parse_time("2026-11-21T10:00Z"))
    bad = from_query(parse_search("?range=3y&refresh=5s"))
    assert (bad.range, bad.refresh) == ("24h", "off")
    assert any("3y" in p for p in bad.problems) and any("5s" in p for p in bad.problems)
    backwards = from_query(parse_search("?range=custom&start=2026-11-21&end=2026-11-20"))
    assert backwards.range == "24h" and "not before" in backwards.problems[0]
    assert to_search(from_query({})) == ""


def test_thresholds_from_defaults_file_and_flags(tmp_path: Path) -> None:
    default = load_thresholds()
    assert default.of("cpu") == Threshold(80.0, 95.0) and default.of("network").warning is None
    f = tmp_path / "t.toml"
    f.write_text("over_share = 0.5\n[gpu]\nwarning = 90\ncritical = 99\n")
    t = load_thresholds(str(f), ["gpu=70,", "network=1e8,1e9"])
    assert t.of("gpu") == Threshold(70.0, None) and t.of("network") == Threshold(1e8, 1e9)
    assert t.over_share == 0.5
    for text, error in (
        ("[cpu]\nwarning = 99\ncritical = 80\n", "above critical"),
        ("[gpus]\nwarning = 1\n", "unknown resource 'gpus'"),
        ("[cpu]\nwarn = 1\n", "unknown keys"),
        ("over_share = 2\n", "over_share"),
        ("[cpu]\nwarning = 'high'\n", "expected a number"),
        ("[cpu", "not valid TOML"),
    ):
        f.write_text(text)
        with pytest.raises(ValueError, match=error) as e:
            load_thresholds(str(f))
        assert str(f) in str(e.value)
    for flag in ("cpu", "cpu=1", "cpux=1,2", "cpu=a,b"):
        with pytest.raises(ValueError, match="--threshold"):
            load_thresholds(None, [flag])
    with pytest.raises(ValueError, match="no such|cannot read"):
        load_thresholds(str(tmp_path / "missing.toml"))


def test_the_gpu_idle_threshold_from_its_default_a_file_and_a_flag(tmp_path: Path) -> None:
    assert load_thresholds().gpu_idle == IdleThreshold(5.0, 0.5)
    f = tmp_path / "t.toml"
    f.write_text("[gpu_idle]\nbelow = 2\nshare = 0.9\n")
    assert load_thresholds(str(f)).gpu_idle == IdleThreshold(2.0, 0.9)
    assert load_thresholds(str(f), ["gpu_idle=10,0.25"]).gpu_idle == IdleThreshold(10.0, 0.25)
    for flag, error in (
        ("gpu_idle=5", "gpu_idle=BELOW,SHARE"),
        ("gpu_idle=5,2", "share must be above 0 and at most 1"),
        ("gpu_idle=150,0.5", "below must be a utilisation from 0 to 100"),
    ):
        with pytest.raises(ValueError, match=error):
            load_thresholds(None, [flag])
    f.write_text("[gpu_idle]\nbellow = 2\n")
    with pytest.raises(ValueError, match="must be a table with below and share"):
        load_thresholds(str(f))


def test_a_spike_or_a_short_visit_is_not_sustained_use() -> None:
    day = [40.0] * 99 + [100.0]
    assert sustained(day, 0.25, 100) == 40.0
    hot_quarter = [95.0] * 30 + [10.0] * 70
    assert sustained(hot_quarter, 0.25, 100) == 95.0
    assert sustained([99.0, 99.0], 0.25, 100) == 0.0  # seen for 2 buckets of 100
    assert sustained([99.0] * 25, 0.25, 100) == 99.0


def test_curves_break_where_a_worker_sent_nothing() -> None:
    step = 10 * S
    times = [0, step, 2 * step, 6 * step, 7 * step]
    x, (y,) = curve_xy(times, step, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert x == {"x0": 0, "dx": 10_000}
    assert _nulls(y) == [1.0, 2.0, 3.0, None, None, None, 4.0, 5.0]
    sparse = [0, 60 * S, 120 * S, 600 * S, 660 * S]  # one sample a minute, 1 s buckets
    x, (y,) = curve_xy(sparse, S, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert x == {"x": [0, 60_000, 120_000, None, 600_000, 660_000]}
    assert _nulls(y) == [1.0, 2.0, 3.0, None, 4.0, 5.0]


def test_a_worker_sampling_between_one_and_two_buckets_is_one_line_and_real_gaps_break() -> None:
    ms = 1_000_000
    step = 704 * ms  # a 15-minute view, 1 s samples: every other bucket or so is empty
    second = [i * S for i in range(900)]
    buckets = sorted({t - t % step for t in second})
    x, (y,) = curve_xy(buckets, step, [1.0] * len(buckets))
    assert None not in x.get("x", []) and not any(v != v for v in y), "broken without a gap"
    # a real minute without samples breaks the line once
    gap = [t for t in second if not 300 * S <= t < 360 * S]
    buckets = sorted({t - t % step for t in gap})
    x, (y,) = curve_xy(buckets, step, [1.0] * len(buckets))
    assert x["x"].count(None) == 1 and x["x"][x["x"].index(None) + 1] > 359_000
    # a 10 s worker on 10 s buckets that missed one bucket (jitter) is not broken either
    jitter = [0, 10, 20, 40, 50, 60]
    x, (y,) = curve_xy([t * S for t in jitter], 10 * S, [1.0] * 6)
    assert None not in x["x"] and len(y) == 6


def _nulls(column) -> list[float | None]:
    """A column as its JSON shows it: NaN is null."""
    return [None if v != v else float(v) for v in column]


def _dashboard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetgauge", "dashboard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_dashboard_refuses_an_open_address_without_auth(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'fg.db'}"
    open_store(store).close()
    result = _dashboard("--store", store, "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert "--auth-file" in result.stderr and "--insecure" in result.stderr
    bad = tmp_path / "t.toml"
    bad.write_text("[cpu]\nwarning = 'x'\n")
    result = _dashboard("--store", store, "--thresholds", str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr
    result = _dashboard("--hash-password", "alice", stdin="s3cret-pw\n")
    assert result.returncode == 0 and result.stdout.startswith("alice:")
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_with_users_every_route_asks_for_a_password(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'fg.db'}"
    open_store(store).close()
    line = _dashboard("--hash-password", "alice", stdin="s3cret-pw\n").stdout
    users = tmp_path / "users"
    users.write_text(line)
    process = DashboardProcess(store, tmp_path / "log", "--auth-file", str(users))
    try:
        process.wait_ready()
        for path in ("/", "/_dash-layout", "/download/resources.csv?start=0&end=1"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(process.url + path, timeout=10)
            assert e.value.code == 401
        request = urllib.request.Request(process.url + "/")
        token = base64.b64encode(b"alice:s3cret-pw").decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
    finally:
        assert process.stop() == 0
    assert "s3cret-pw" not in process.log() and line.split(":", 1)[1].strip() not in process.log()


def test_password_guessing_is_limited_per_address_across_workers(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'fg.db'}"
    open_store(store).close()
    line = _dashboard("--hash-password", "alice", stdin="s3cret-pw\n").stdout
    users = tmp_path / "users"
    users.write_text(line)
    process = DashboardProcess(store, tmp_path / "log", "--auth-file", str(users), "--workers", "2")

    def attempt(password: str) -> tuple[int, str | None]:
        request = urllib.request.Request(process.url + "/_dash-layout")
        token = base64.b64encode(f"alice:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Connection", "close")  # each try may reach either worker
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, None
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Retry-After")

    try:
        process.wait_ready()
        assert attempt("s3cret-pw")[0] == 200
        answers = [attempt(f"guess-{i}") for i in range(5)]
        assert [code for code, _ in answers] == [401, 401, 401, 401, 429], answers
        code, retry_after = attempt("s3cret-pw")  # even the right one, while blocked
        assert code == 429 and retry_after is not None and 50 <= int(retry_after) <= 60
    finally:
        assert process.stop() == 0
    log = process.log()
    assert "failed login for user 'alice' from 127.0.0.1 (1 of 5)" in log
    assert "refusing this address (429) for 60 s" in log
    assert "guess-" not in log and "s3cret" not in log  # never a password
