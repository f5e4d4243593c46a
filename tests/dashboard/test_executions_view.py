"""The Executions page's lists of environments and pipelines, on both stores.

Without a choice that narrows the read (environment, pipeline, status) the page takes
them from the executions it read anyway; with one, from the store's listings. Either
way the lists hold every environment and pipeline of the range, whatever the filter
box holds.
"""

from __future__ import annotations

import time

import pytest

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.dashboard.data.executions import read_executions_view

S = 1_000_000_000
HOUR = 3600 * S


def _start(env: str, pipeline: str, execution_id: str, t: int) -> Point:
    tags = {
        catalogue.ENVIRONMENT: env,
        catalogue.PIPELINE: pipeline,
        catalogue.EXECUTION_ID: execution_id,
        catalogue.WORKER: "w1",
    }
    return Point(catalogue.EXECUTION.name, tags, {"inputs": '{"lr": 0.1}'}, t)


def _end(env: str, pipeline: str, execution_id: str, t: int) -> Point:
    tags = {
        catalogue.ENVIRONMENT: env,
        catalogue.PIPELINE: pipeline,
        catalogue.EXECUTION_ID: execution_id,
    }
    return Point(catalogue.EXECUTION_END.name, tags, {"status": "succeeded"}, t)


@pytest.fixture
def seeded(store):
    """Environment lab: train (ended) and eval (running); prod: score (never started,
    known by one value); idle: only a CPU sample; edge: a deployment's value; old: a start
    before the range."""
    now = time.time_ns()
    t = now - HOUR
    value_tags = {
        catalogue.ENVIRONMENT: "prod",
        catalogue.PIPELINE: "score",
        catalogue.EXECUTION_ID: "orphan",
        catalogue.METRIC: "accuracy",
    }
    serving = {catalogue.ENVIRONMENT: "edge", "deployment": "api", catalogue.METRIC: "latency"}
    store.write(
        [
            _start("lab", "train", "t-1", t),
            _end("lab", "train", "t-1", t + 60 * S),
            _start("lab", "eval", "e-1", t + 120 * S),
            Point(catalogue.PIPELINE_METRIC.name, value_tags, {"value": 0.7}, t + 180 * S),
            Point(catalogue.PIPELINE_METRIC.name, serving, {"value": 0.1}, t),
            Point(
                "cpu", {catalogue.ENVIRONMENT: "idle", "worker": "w9"}, {"usage_percent": 5.0}, t
            ),
            _start("old", "legacy", "l-1", now - 48 * HOUR),
        ]
    )
    return store, now - 2 * HOUR, now + S


@pytest.mark.parametrize(
    ("environment", "pipeline", "status", "where", "shown"),
    [
        (None, None, None, None, {"t-1", "e-1", "orphan"}),
        (None, None, None, 'pipeline = "eval"', {"e-1"}),
        ("lab", None, None, None, {"t-1", "e-1"}),
        (None, "train", None, None, {"t-1"}),
        (None, None, "running", None, {"e-1"}),
        ("prod", None, None, "status = 'unknown'", {"orphan"}),
    ],
)
def test_the_lists_hold_the_whole_range(seeded, environment, pipeline, status, where, shown):
    store, start, end = seeded
    view = read_executions_view(store, start, end, environment, pipeline, status, (), where)
    assert {r.execution_id for r in view.records} == shown
    assert view.environments == ["edge", "idle", "lab", "prod"]
    if environment == "lab":
        wanted = ["eval", "train"]
    elif environment == "prod":
        wanted = ["score"]
    elif pipeline is None and status is None:  # every execution read: "score" is one
        wanted = ["eval", "score", "train"]
    else:  # the store's listing counts started executions (and those the table shows)
        wanted = ["eval", "train"]
    assert view.pipelines == wanted
