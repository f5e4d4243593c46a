"""Execution summaries kept by the write path, on SQLite and the real InfluxDB.

A table of many executions reads each list metric's last, min, max and mean from
the summaries the stores' writer keeps (:mod:`fleetgauge.stores.summaries`). Here
every way a series can be written (in order over many batches, a step written
twice, a writer restarted with a spool replayed over what it wrote, points out
of time order, more executions than one id filter holds) gives in the table what
the execution's own page computes from every value.
"""

from __future__ import annotations

import json
import random
import sys

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read.executions import MODES, read_execution, read_executions
from fleetgauge.stores import Store, open_store
from fleetgauge.stores.summaries import OFFSET_NS, SummaryAccumulator

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
WINDOW = (T0 - 3600 * S, T0 + 30 * 86_400 * S)


def tags(execution_id: str, metric: str = "loss", worker: str = "w1") -> dict[str, str]:
    return {
        "environment": "prod",
        "worker": worker,
        "pipeline": "train",
        "execution_id": execution_id,
        "metric": metric,
    }


def start(execution_id: str, t: int = T0) -> Point:
    base = tags(execution_id)
    base.pop("metric")
    return Point("execution", base, {"inputs": '{"lr": 0.1}'}, t)


def step(execution_id: str, n: int, value: float, t: int | None = None, **kw: str) -> Point:
    at = T0 + (n + 1) * S if t is None else t
    return Point("list_metric", tags(execution_id, **kw), {"value": value, "step": n}, at)


def table(store: Store, **kw: object) -> dict[str, dict]:
    """Execution id -> {metric: {mode: value}} as the table reads them (summaries)."""
    rows = read_executions(store, *WINDOW, **kw)  # type: ignore[arg-type]
    return {
        r.execution_id: {
            name: {m: lm.reduce(m) for m in MODES} for name, lm in r.list_metrics.items()
        }
        for r in rows
    }


def page(store: Store, execution_id: str) -> dict[str, dict]:
    """The same from every value (the execution's own page)."""
    r = read_execution(store, execution_id)
    assert r is not None
    for lm in r.list_metrics.values():
        assert lm.summary is None and lm.values  # read from the values themselves
    return {name: {m: lm.reduce(m) for m in MODES} for name, lm in r.list_metrics.items()}


def assert_table_is_the_page(store: Store, ids: list[str]) -> None:
    got = table(store)
    for execution_id in ids:
        want = page(store, execution_id)
        assert got[execution_id].keys() == want.keys(), execution_id
        for name, modes in want.items():
            for mode, value in modes.items():
                assert got[execution_id][name][mode] == value or abs(
                    got[execution_id][name][mode] - value
                ) <= 1e-12 * max(1.0, abs(value)), (execution_id, name, mode)


def summary_rows(store: Store, execution_id: str) -> list[Point]:
    """The summary rows of an execution, their ``stats`` read as ``fields``."""
    where = {"execution_id": [execution_id]}
    rows = store.stream_points("series_summary", *WINDOW, where)
    return [p._replace(fields=json.loads(p.fields["stats"])) for p in rows]


def test_a_series_written_in_order_is_summarised_once(store: Store) -> None:
    values = [0.9 - 0.05 * n for n in range(12)]
    store.write([start("run-1")])
    for n in range(0, 12, 4):  # three batches: one row, updated in place
        store.write([step("run-1", k, values[k]) for k in range(n, n + 4)])
    (row,) = summary_rows(store, "run-1")
    assert row.tags["source"] == "list_metric" and row.tags["metric"] == "loss"
    assert row.fields["count"] == 12 and row.fields["ordered"] == 1
    assert (row.fields["step_lo"], row.fields["step_hi"]) == (0, 11)
    assert row.fields["last"] == values[-1] and row.fields["min"] == min(values)
    assert 0 <= row.time_ns - (T0 + S) < OFFSET_NS  # the first value's time, and a random bit
    got = table(store)["run-1"]["loss"]
    assert got == {
        "last": values[-1],
        "min": min(values),
        "max": max(values),
        "mean": got["mean"],
    }
    assert abs(got["mean"] - sum(values) / 12) < 1e-12
    assert_table_is_the_page(store, ["run-1"])


def test_a_step_written_twice_is_read_from_the_values(store: Store) -> None:
    store.write([start("run-2")])
    store.write([step("run-2", n, float(n)) for n in range(5)])
    store.write([step("run-2", 2, 100.0, t=T0 + 10 * S)])  # epoch 2 run again: the later wins
    (row,) = summary_rows(store, "run-2")
    assert row.fields["ordered"] == 0
    assert table(store)["run-2"]["loss"]["max"] == 100.0
    assert table(store)["run-2"]["loss"]["mean"] == (0 + 1 + 100 + 3 + 4) / 5
    assert_table_is_the_page(store, ["run-2"])


def test_a_restarted_writer_opens_a_new_generation(store: Store) -> None:
    """A second store object (an agent restarted) goes on with later steps: two rows whose
    step ranges do not overlap, exact from the summaries; then it replays steps the first
    had written (a spool replayed after a restart): the values decide."""
    store.write([start("run-3"), *(step("run-3", n, n / 10) for n in range(6))])
    again = open_store(store.url)
    try:
        again.write([step("run-3", n, n / 10) for n in range(6, 10)])
        rows = summary_rows(again, "run-3")
        assert len(rows) == 2 and len({r.time_ns for r in rows}) == 2
        assert table(again)["run-3"]["loss"]["last"] == 0.9
        assert_table_is_the_page(again, ["run-3"])
        again.write([step("run-3", n, n / 10) for n in range(4, 8)])  # replayed
        rows = summary_rows(again, "run-3")  # they join the open row, now out of order
        assert sorted(r.fields["ordered"] for r in rows) == [0, 1]
        assert_table_is_the_page(again, ["run-3"])
        assert table(again)["run-3"]["loss"]["mean"] == sum(n / 10 for n in range(10)) / 10
    finally:
        again.close()


def test_random_histories_read_the_same_in_the_table(store: Store) -> None:
    """Random writes of 12 executions x 2 metrics (some steps repeated, some skipped, some
    from a second worker, batches of random size): table == page for every mode."""
    rng = random.Random(25)
    points: list[Point] = []
    for k in range(12):
        execution_id = f"rand-{k:02d}"
        points.append(start(execution_id, T0 + k * S))
        for metric in ("loss", "accuracy"):
            steps = sorted(rng.sample(range(40), rng.randint(1, 25)))
            if k % 3 == 0:  # an epoch written again later
                steps.append(rng.choice(steps))
            worker = "w2" if k % 4 == 1 and metric == "accuracy" else "w1"
            for i, n in enumerate(steps):
                value = round(rng.uniform(-5, 5), 6)
                t = T0 + k * S + (i + 1) * S
                points.append(step(execution_id, n, value, t=t, metric=metric, worker=worker))
    while points:
        size = rng.randint(1, 30)
        store.write(points[:size])
        points = points[size:]
    assert_table_is_the_page(store, [f"rand-{k:02d}" for k in range(12)])


def test_more_executions_than_one_id_filter_holds(store: Store) -> None:
    """250 executions: the table reads the summaries by time, not 200 ids at a time, and
    still gives each its own values (a simple metric's latest, a list metric's)."""
    batch = []
    for k in range(250):
        execution_id = f"many-{k:03d}"
        batch.append(start(execution_id, T0 + k * S))
        batch += [step(execution_id, n, float(k + n), t=T0 + (k + n) * S) for n in range(3)]
        metric = {**tags(execution_id, "accuracy")}
        batch.append(Point("pipeline_metric", metric, {"value": k / 1000}, T0 + (k + 5) * S))
        batch.append(Point("pipeline_metric", metric, {"value": k / 100}, T0 + (k + 6) * S))
    store.write(batch)
    rows = read_executions(store, *WINDOW)
    assert len(rows) == 250
    for r in rows:
        k = int(r.execution_id.split("-")[1])
        assert r.metrics == {"accuracy": k / 100}
        lm = r.list_metrics["loss"]
        assert (lm.reduce("last"), lm.reduce("min"), lm.reduce("mean")) == (k + 2, k, k + 1)
    assert_table_is_the_page(store, ["many-000", "many-123", "many-249"])


def test_an_execution_known_only_by_its_values_is_found_by_the_census(store: Store) -> None:
    """Values, then (in another batch, earlier in time) an event: the census spans them."""
    store.write([step("ghost", n, float(n), t=T0 + (10 + n) * S) for n in range(3)])
    event_tags = {"environment": "prod", "name": "checkpoint", "execution_id": "ghost"}
    store.write([Point("event", event_tags, {"metadata": "{}"}, T0 + 5 * S)])
    (ghost,) = read_executions(store, *WINDOW)
    assert (ghost.execution_id, ghost.status) == ("ghost", catalogue.UNKNOWN)
    assert (ghost.start_ns, ghost.end_ns) == (T0 + 5 * S, T0 + 12 * S)
    assert ghost.pipeline == "train" and ghost.worker == "w1"
    assert ghost.list_metrics["loss"].reduce("last") == 2.0
    assert read_executions(store, T0 + 6 * S, WINDOW[1]) == []  # it began before that


def test_a_batch_that_failed_counts_once_when_it_is_written_again() -> None:
    """Staged rows are not kept until the store commits them (as the tiers)."""
    acc = SummaryAccumulator(rng=random.Random(1))
    batch = [step("r", n, float(n)) for n in range(3)]
    acc.stage(batch)  # the write failed: never committed
    staged = acc.stage(batch)
    acc.commit(staged)
    (row,) = [p for p in acc.points(staged) if p.measurement == "series_summary"]
    assert json.loads(row.fields["stats"])["count"] == 3
    assert json.loads(row.fields["stats"])["sum"] == 3.0


def test_memory_stays_bounded_and_an_evicted_series_opens_a_new_generation() -> None:
    acc = SummaryAccumulator(max_open=10, rng=random.Random(2))
    for k in range(50):
        acc.commit(acc.stage([step(f"r{k}", 0, 1.0)]))
        assert acc.open_rows <= 10
    staged = acc.stage([step("r0", 1, 2.0)])  # r0 was evicted: a new row of one value
    (row,) = [p for p in acc.points(staged) if p.measurement == "series_summary"]
    assert json.loads(row.fields["stats"])["count"] == 1
    assert json.loads(row.fields["stats"])["step_lo"] == 1


def test_the_census_counts_only_executions_whose_start_the_writer_did_not_see(
    store: Store,
) -> None:
    """A started execution costs the census nothing; one never started is counted; a
    restarted writer (which forgot the start) counts it again, and readers still see it
    started, not twice."""
    store.write([start("run-s"), step("run-s", 0, 1.0)])
    store.write([step("ghost-2", 0, 1.0, t=T0 + 30 * S)])

    def censused(s: Store) -> set[str]:
        return {p.tags["execution_id"] for p in s.stream_points("execution_census", *WINDOW)}

    assert censused(store) == {"ghost-2"}
    again = open_store(store.url)
    try:
        again.write([step("run-s", 1, 2.0)])
        assert censused(again) == {"ghost-2", "run-s"}
        found = {r.execution_id: r for r in read_executions(again, *WINDOW)}
        assert found.keys() == {"run-s", "ghost-2"}
        assert found["run-s"].status == catalogue.RUNNING and found["run-s"].start_ns == T0
        assert found["ghost-2"].status == catalogue.UNKNOWN
        assert found["run-s"].list_metrics["loss"].reduce("last") == 2.0
    finally:
        again.close()


def test_a_sum_past_the_largest_float_saturates_instead_of_failing_the_batch(
    store: Store,
) -> None:
    """Two values of 1e308 add up past the largest float. JSON has no infinity: the batch
    failed, and in the agent it ended the writer thread (found by the push fuzz test)."""
    store.write([start("run-big")])
    store.write([step("run-big", 0, 1e308), step("run-big", 1, 1e308)])
    store.write([step("run-big", 2, 1.0)])
    (row,) = summary_rows(store, "run-big")
    assert row.fields["count"] == 3 and row.fields["max"] == 1e308
    assert row.fields["last"] == 1.0 and row.fields["sum"] == sys.float_info.max
    assert table(store)["run-big"]["loss"]["max"] == 1e308
