"""The query SDK as model and notebook code uses it: given stored points, these rows come back.

Every test that reads a store runs on SQLite and on a real influxd.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from fleetgauge.catalogue import Point
from fleetgauge.read.export import LINE_END
from fleetgauge.read.query import (
    get_events,
    get_list_metrics,
    get_metrics,
    get_resource_metrics,
    iter_events,
    iter_list_metrics,
    iter_metrics,
    iter_resource_metrics,
)
from fleetgauge.stores import Store, StoreUnavailable

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
HOUR = 3600 * S


def at(seconds: float) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def metric(
    t: int, name: str, value: float, env: str = "prod", worker: str = "w1", **tags: str
) -> Point:
    tags = {"environment": env, "worker": worker, "metric": name, **tags}
    return Point("pipeline_metric", tags, {"value": value}, t)


def step(t: int, i: int, value: float) -> Point:
    tags = {"environment": "prod", "worker": "w1", "pipeline": "train", "metric": "accuracy"}
    return Point("list_metric", {**tags, "execution_id": "run-7"}, {"value": value, "step": i}, t)


def event(t: int, name: str, source: str, metadata: dict, **tags: str) -> Point:
    return Point(
        "event",
        {"environment": "prod", "worker": "w1", "name": name, "source": source, **tags},
        {"metadata": json.dumps(metadata)},
        t,
    )


@pytest.fixture
def data(store: Store) -> Store:
    store.write(
        [
            metric(T0 + S, "score", 1.0, deployment="fraud-v2", execution_id="run-1"),
            metric(T0 + 2 * S, "latency", 0.25, deployment="fraud-v2", team="vision"),
            metric(T0 + 3 * S, "score", -1.5, pipeline="nightly", worker="w2"),
            metric(T0 + 4 * S, "score", 2, env="dev", deployment="fraud-v2"),
            metric(T0 + HOUR, "score", 9.0, deployment="fraud-v2"),
            step(T0 + 5 * S, 0, 0.5),
            step(T0 + 6 * S, 1, 0.75),
            event(
                T0 + 7 * S,
                "checkpoint_started",
                "trainer",
                {"epoch": 3, "path": "s3://b/k"},
                pipeline="train",
                execution_id="run-7",
            ),
            event(T0 + 8 * S, "deployed", "ci", {}, deployment="fraud-v2"),
            Point("cpu", {"environment": "prod", "worker": "w1"}, {"usage_percent": 12.5}, T0),
            Point(
                "gpu",
                {"environment": "prod", "worker": "w2", "gpu": "0"},
                {"utilization_percent": 97.0},
                T0 + S,
            ),
            Point(
                "disk",
                {"environment": "dev", "worker": "w1", "mount": "/data"},
                {"used_percent": 25.0},
                T0 + 2 * S,
            ),
        ]
    )
    return store


def score_row(seconds: float, value: float, **cells: object) -> dict:
    return {
        "time": at(seconds),
        "environment": "prod",
        "worker": "w1",
        "pipeline": None,
        "deployment": None,
        "metric": "score",
        "execution_id": None,
        "value": value,
        "other_tags": {},
        **cells,
    }


# --- pipeline metrics -------------------------------------------------------------------
def test_get_metrics_gives_one_dict_per_recorded_value(data: Store) -> None:
    rows = get_metrics("score", store=data)
    assert rows == [
        score_row(1, 1.0, deployment="fraud-v2", execution_id="run-1"),
        score_row(3, -1.5, pipeline="nightly", worker="w2"),
        score_row(4, 2.0, environment="dev", deployment="fraud-v2"),
        score_row(3600, 9.0, deployment="fraud-v2"),
    ]
    assert all(r["time"].tzinfo is UTC for r in rows)
    # the worker whose agent took a value is a filter like the others
    assert [r["value"] for r in get_metrics("score", worker="w2", store=data)] == [-1.5]
    assert len(get_metrics("score", worker=["w1", "w2"], store=data)) == 4
    assert all(type(r["value"]) is float for r in rows)


@pytest.mark.parametrize(
    ("kwargs", "times"),
    [
        ({"name": ["score", "latency"]}, [1, 2, 3, 4, 3600]),
        ({"name": None, "deployment": "fraud-v2"}, [1, 2, 4, 3600]),
        ({"name": "score", "deployment": ["fraud-v2"], "environment": "prod"}, [1, 3600]),
        ({"name": "score", "pipeline": "nightly"}, [3]),
        ({"name": "score", "execution_id": ("run-1",)}, [1]),
        ({"name": "score", "start": at(3), "end": at(3600)}, [3, 4]),  # [start, end)
        ({"name": "score", "start": at(3.000001)}, [4, 3600]),
        ({"name": "score", "end": at(1)}, []),
        ({"name": "nope"}, []),
        ({"name": []}, []),
    ],
)
def test_metric_filters_and_time_window(data: Store, kwargs: dict, times: list[float]) -> None:
    rows = get_metrics(store=data, **kwargs)
    assert [r["time"] for r in rows] == [at(t) for t in times]


def test_tags_outside_the_catalogue_come_back_in_other_tags(data: Store) -> None:
    (row,) = get_metrics("latency", store=data)
    assert row["other_tags"] == {"team": "vision"}
    assert row["value"] == 0.25 and row["deployment"] == "fraud-v2"


# --- list metrics and events ---------------------------------------------------------------
def test_get_list_metrics_gives_each_step(data: Store) -> None:
    rows = get_list_metrics("accuracy", pipeline="train", store=data)
    common = {
        "environment": "prod",
        "worker": "w1",
        "pipeline": "train",
        "deployment": None,
        "metric": "accuracy",
        "execution_id": "run-7",
        "other_tags": {},
    }
    assert rows == [
        {"time": at(5), **common, "value": 0.5, "step": 0},
        {"time": at(6), **common, "value": 0.75, "step": 1},
    ]
    assert all(type(r["step"]) is int for r in rows)
    assert get_list_metrics("score", store=data) == []


def test_get_events_decodes_metadata_and_filters(data: Store) -> None:
    assert get_events(store=data) == [
        {
            "time": at(7),
            "environment": "prod",
            "worker": "w1",
            "name": "checkpoint_started",
            "source": "trainer",
            "deployment": None,
            "pipeline": "train",
            "execution_id": "run-7",
            "metadata": {"epoch": 3, "path": "s3://b/k"},
            "other_tags": {},
        },
        {
            "time": at(8),
            "environment": "prod",
            "worker": "w1",
            "name": "deployed",
            "source": "ci",
            "deployment": "fraud-v2",
            "pipeline": None,
            "execution_id": None,
            "metadata": {},
            "other_tags": {},
        },
    ]
    assert [e["name"] for e in get_events(source="ci", store=data)] == ["deployed"]
    assert [e["name"] for e in get_events("checkpoint_started", store=data)] == [
        "checkpoint_started"
    ]
    assert get_events(deployment="fraud-v2", start=at(8.5), store=data) == []


# --- resources ------------------------------------------------------------------------------
def test_get_resource_metrics_rows_have_the_csv_columns(data: Store) -> None:
    rows = get_resource_metrics(at(0), at(60), store=data)
    header = get_resource_metrics(at(0), at(60), store=data, csv=True).split(LINE_END)[0]
    assert [list(r) for r in rows] == [header.split(",")] * 3
    assert [(r["measurement"], r["worker"], r["gpu"], r["mount"]) for r in rows] == [
        ("cpu", "w1", None, None),
        ("gpu", "w2", "0", None),
        ("disk", "w1", None, "/data"),
    ]
    assert rows[0]["usage_percent"] == 12.5 and rows[0]["utilization_percent"] is None
    assert rows[0]["time"] == at(0)


@pytest.mark.parametrize(
    ("kwargs", "found"),
    [
        ({"workers": "w1"}, ["cpu", "disk"]),
        ({"workers": ["w2", "w9"]}, ["gpu"]),
        ({"environment": "dev"}, ["disk"]),
        ({"measurements": ["gpu", "disk"]}, ["gpu", "disk"]),
        ({"measurements": "cpu", "workers": "w2"}, []),
    ],
)
def test_resource_filters(data: Store, kwargs: dict, found: list[str]) -> None:
    rows = get_resource_metrics(at(0), at(60), store=data, **kwargs)
    assert [r["measurement"] for r in rows] == found


def test_resource_csv_is_what_the_cli_exports(data: Store) -> None:
    text = get_resource_metrics(
        "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", csv=True, store=data
    )
    cli = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "export", "resources"]
        + ["--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T00:01:00Z"],
        capture_output=True,
        timeout=120,
        env={**os.environ, "FLEETGAUGE_STORE": data.url},
    )
    assert cli.returncode == 0, cli.stderr
    assert text == cli.stdout.decode()
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert [r[1] for r in table] == ["measurement", "cpu", "gpu", "disk"]
    assert table[1][0] == "2026-01-01T00:00:00.000000000Z"


def test_resource_csv_goes_to_a_path_or_an_open_file(data: Store, tmp_path: Path) -> None:
    text = get_resource_metrics(at(0), at(60), csv=True, store=data)
    out = tmp_path / "out"
    out.mkdir()
    path = out / "resources.csv"
    assert get_resource_metrics(at(0), at(60), csv=path, store=data) == 3
    assert path.read_bytes().decode() == text
    assert get_resource_metrics(at(0), at(60), csv=str(path), workers="w2", store=data) == 1
    with (out / "open.csv").open("w", newline="", encoding="utf-8") as f:
        assert get_resource_metrics(at(0), at(60), csv=f, store=data) == 3
    assert (out / "open.csv").read_bytes().decode() == text
    assert sorted(p.name for p in out.iterdir()) == ["open.csv", "resources.csv"]


# --- stores and times -------------------------------------------------------------------------
def test_a_store_url_or_the_default_store_is_opened_for_the_call(
    data: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = get_metrics("score", store=data)
    assert get_metrics("score", store=data.url) == want
    monkeypatch.setenv("FLEETGAUGE_STORE", data.url)
    assert get_metrics("score") == want


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (at(1), at(4)),
        (datetime(2026, 1, 1, 0, 0, 1), datetime(2026, 1, 1, 0, 0, 4)),  # naive: UTC
        (datetime(2026, 1, 1, 1, 0, 1, tzinfo=timezone(timedelta(hours=1))), at(4)),
        ("2026-01-01T00:00:01Z", "2026-01-01T01:00:04+01:00"),
        ("2026-01-01 00:00:01", "1767225604"),
        (1_767_225_601, 1_767_225_604.0),
    ],
)
def test_times_in_every_form_give_the_same_window(data: Store, start: object, end: object) -> None:
    rows = get_metrics("score", start=start, end=end, store=data)  # type: ignore[arg-type]
    assert [r["time"] for r in rows] == [at(1), at(3)]


def test_a_date_is_midnight_utc(data: Store) -> None:
    rows = get_resource_metrics(date(2026, 1, 1), date(2026, 1, 2), store=data)
    assert len(rows) == 3
    assert get_resource_metrics(date(2025, 12, 31), date(2026, 1, 1), store=data) == []


def test_iterators_give_the_same_rows_one_at_a_time(data: Store) -> None:
    rows = iter_metrics("score", store=data)
    assert next(rows) == get_metrics("score", store=data)[0]
    assert list(iter_list_metrics("accuracy", store=data)) == get_list_metrics(
        "accuracy", store=data
    )
    assert list(iter_events(store=data)) == get_events(store=data)
    assert list(iter_resource_metrics(at(0), at(60), store=data)) == get_resource_metrics(
        at(0), at(60), store=data
    )


# --- bad arguments ----------------------------------------------------------------------------
MISSING = "sqlite:////nonexistent/fleetgauge.db"  # opening it would raise StoreUnavailable


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: get_resource_metrics(at(0), at(1), measurements=["cpu", "cpuu"], store=MISSING),
            ValueError,
            "unknown resources measurement 'cpuu' (known: cpu, cpu_core, memory",
        ),
        (
            lambda: get_resource_metrics(at(0), at(1), measurements="pipeline_metric"),
            ValueError,
            "unknown resources measurement 'pipeline_metric'",
        ),
        (
            lambda: get_metrics("score", start=at(5), end=at(5), store=MISSING),
            ValueError,
            "start 2026-01-01T00:00:05Z is not before end 2026-01-01T00:00:05Z",
        ),
        (
            lambda: get_resource_metrics("2026-01-02", "2026-01-01", store=MISSING),
            ValueError,
            "start_date 2026-01-02T00:00:00Z is not before end_date 2026-01-01T00:00:00Z",
        ),
        (
            lambda: get_events(start="yesterday", store=MISSING),
            ValueError,
            "start: not a time: 'yesterday'",
        ),
        (
            lambda: get_metrics("score", end="inf", store=MISSING),
            ValueError,
            "end: time 'inf' is outside the times",
        ),
        (
            lambda: get_metrics("score", start=T0, store=MISSING),
            ValueError,
            "outside the times a store can hold (years 1677 to 2262); epoch times are in seconds",
        ),
        (
            lambda: get_metrics("score", start=[1], store=MISSING),
            TypeError,
            "start must be a datetime, a date, ISO-8601 text or epoch seconds, got list",
        ),
        (
            lambda: get_metrics("score", deployment=[1], store=MISSING),
            TypeError,
            "deployment must hold names (str), got int 1",
        ),
        (
            lambda: get_resource_metrics(at(0), at(1), workers=7, store=MISSING),
            TypeError,
            "workers must be a name or a list of names, got int",
        ),
        (
            lambda: get_resource_metrics(at(0), at(1), csv=3, store=MISSING),
            TypeError,
            "csv must be True, False, a file path or an open text file, got int",
        ),
        (
            lambda: iter_metrics("score", store=42),
            TypeError,
            "store must be a store URL or a Store",
        ),
        (
            lambda: iter_list_metrics("x", start="2026-13-01", store=MISSING),
            ValueError,
            "not a time: '2026-13-01'",
        ),
    ],
)
def test_bad_arguments_raise_a_clear_error_before_the_store_is_opened(
    call: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        call()  # type: ignore[operator]
    assert message in str(raised.value)


def test_a_missing_store_is_reported_when_rows_are_asked_for() -> None:
    rows = iter_metrics("score", store=MISSING)
    with pytest.raises(StoreUnavailable, match="no store at /nonexistent/fleetgauge.db"):
        next(rows)
    with pytest.raises(StoreUnavailable, match="no store at"):
        get_resource_metrics(at(0), at(1), csv=True, store=MISSING)
