"""A batch taken a run of one series at a time (its columns, C loops) must give what the
same batch taken point by point gives: the same lines, tier rows and execution summaries.

The reference is the store's own per-point path, reached by making every run too short
for the column path (``runs.MIN_RUN``)."""

from __future__ import annotations

import random

import pytest

from fleetgauge.catalogue import Point
from fleetgauge.stores import influx_text, runs
from fleetgauge.stores.influxdb import _INT_FIELDS
from fleetgauge.stores.summaries import SummaryAccumulator
from fleetgauge.stores.tiers import TierAccumulator

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z, a minute boundary
ENV = {"environment": "prod", "worker": "w1", "deployment": "d"}


def _batch() -> list[Point]:
    """Runs of every kind: a long plain run over three minutes (ties included), one whose
    times go back, one inside an execution, a run of a two-field measurement, cores of a
    resource measurement, a start record, and short runs interleaving two series."""
    rng = random.Random(11)
    plain = {**ENV, "metric": "score"}
    back = {**ENV, "metric": "late"}
    inside = {**ENV, "metric": "loss", "execution_id": "run-1"}
    listed = {**ENV, "metric": "curve", "pipeline": "p", "execution_id": "run-1"}
    core = {"environment": "prod", "worker": "w1", "core": "0"}
    batch = [
        Point("pipeline_metric", plain, {"value": rng.random()}, T0 + k * S) for k in range(150)
    ]
    batch += [Point("pipeline_metric", plain, {"value": 0.5}, T0 + 150 * S)] * 3  # one time
    batch += [
        Point("pipeline_metric", back, {"value": -rng.random()}, T0 + (40 - k) * S)
        for k in range(40)
    ]
    batch += [
        Point("pipeline_metric", inside, {"value": rng.random()}, T0 + k * S) for k in range(30)
    ]
    batch += [
        Point("list_metric", listed, {"value": rng.random(), "step": k}, T0 + k * S)
        for k in range(30)
    ]
    batch += [Point("cpu_core", core, {"usage_percent": 10.0 + k}, T0 + k * S) for k in range(20)]
    batch.append(Point("execution", {**ENV, "execution_id": "run-2", "pipeline": "p"}, {}, T0))
    for k in range(20):  # runs of one point each
        batch.append(Point("pipeline_metric", plain, {"value": float(k)}, T0 + (200 + k) * S))
        batch.append(Point("pipeline_metric", back, {"value": float(-k)}, T0 + (200 + k) * S))
    return batch


def _taken(batch: list[Point]) -> tuple[list[str], object, list[Point]]:
    tiers = TierAccumulator(clock=lambda: T0 + 600 * S, rng=random.Random(5))
    summaries = SummaryAccumulator(rng=random.Random(7))
    split = runs.split(batch)
    tier_rows = tiers.rows(tiers.stage_runs(split))
    summary_points = summaries.points(summaries.stage_runs(split))
    return influx_text.run_lines(split, _INT_FIELDS), tier_rows, summary_points


def test_a_batch_taken_as_runs_gives_what_it_gives_point_by_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch = _batch()
    columns = [c for _, c in runs.split(batch) if c is not None]
    assert {(c.measurement, c.field, len(c.values)) for c in columns} == {
        ("pipeline_metric", "value", 153),
        ("pipeline_metric", "value", 40),
        ("pipeline_metric", "value", 30),
        ("cpu_core", "usage_percent", 20),
    }
    as_runs = _taken(batch)
    monkeypatch.setattr(runs, "MIN_RUN", len(batch) + 1)
    assert not [c for _, c in runs.split(batch) if c is not None]
    point_by_point = _taken(batch)

    assert as_runs[0] == point_by_point[0]
    assert as_runs[0] == [influx_text.line(p, _INT_FIELDS[p.measurement]) for p in batch]
    assert as_runs[1] == point_by_point[1]
    assert len(as_runs[1]) > 4  # minutes and coarser tiers of four tiered series
    assert as_runs[2] == point_by_point[2]
    assert {p.tags["execution_id"] for p in as_runs[2]} == {"run-1"}
