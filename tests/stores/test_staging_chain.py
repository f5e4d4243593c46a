"""A batch staged while the one before it is still being written (the agent's delivery
prepares the next InfluxDB request while the last is on its way) must give the rows that
staging it after that one was committed gives: same tier rows, same execution summaries,
same open state for the batches after them."""

from __future__ import annotations

import random

from fleetgauge.catalogue import Point
from fleetgauge.stores.summaries import SummaryAccumulator
from fleetgauge.stores.tiers import TierAccumulator

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z, a minute boundary


def _batches() -> list[list[Point]]:
    """Three batches over the same minute: pipeline values of two executions and a list
    metric (steps), a start record, and resource samples; the later batches touch the
    buckets and rows the earlier opened, and open new ones."""
    rng = random.Random(3)
    out = []
    for b in range(3):
        batch = []
        for k in range(40):
            t = T0 + (b * 40 + k) * S // 4
            execution = f"run-{k % 2}"
            metric = {"environment": "prod", "worker": "w1", "deployment": "d"}
            batch.append(
                Point(
                    "pipeline_metric",
                    {**metric, "metric": "score", "execution_id": execution},
                    {"value": rng.random()},
                    t,
                )
            )
            step = {**metric, "pipeline": "train", "metric": "loss", "execution_id": execution}
            batch.append(Point("list_metric", step, {"value": rng.random(), "step": b * 40 + k}, t))
        if b == 1:
            start = {"environment": "prod", "worker": "w1", "pipeline": "train"}
            batch.append(Point("execution", {**start, "execution_id": "run-9"}, {}, T0))
        out.append(batch)
    return out


def test_tiers_staged_after_a_batch_in_flight_are_those_staged_after_it_was_written() -> None:
    one, two, three = _batches()
    in_turn = TierAccumulator(clock=lambda: T0 + 60 * S, rng=random.Random(5))
    chained = TierAccumulator(clock=lambda: T0 + 60 * S, rng=random.Random(5))

    first = in_turn.stage(one)
    in_turn.commit(first)
    second = in_turn.stage(two)
    in_turn.commit(second)

    first_c = chained.stage(one)
    second_c = chained.stage(two, after=first_c)  # staged before the first is committed
    chained.commit(first_c)
    chained.commit(second_c)

    assert chained.rows(first_c) == in_turn.rows(first)
    assert chained.rows(second_c) == in_turn.rows(second)
    assert chained.rows(chained.stage(three)) == in_turn.rows(in_turn.stage(three))


def test_summaries_staged_after_a_batch_in_flight_are_those_staged_after_it_was_written() -> None:
    one, two, three = _batches()
    in_turn = SummaryAccumulator(rng=random.Random(5))
    chained = SummaryAccumulator(rng=random.Random(5))

    first = in_turn.stage(one)
    in_turn.commit(first)
    second = in_turn.stage(two)
    in_turn.commit(second)

    first_c = chained.stage(one)
    second_c = chained.stage(two, after=first_c)
    chained.commit(first_c)
    chained.commit(second_c)

    assert chained.points(first_c) == in_turn.points(first)
    assert chained.points(second_c) == in_turn.points(second)
    assert chained.points(chained.stage(three)) == in_turn.points(in_turn.stage(three))
    assert in_turn.points(second)  # the test compares rows, not two empty lists


def test_a_batch_staged_after_one_that_was_not_written_is_staged_again_without_it() -> None:
    """The delivery prepares the next batch again when the one in flight is refused: staged
    without ``after``, it holds none of the refused batch's values."""
    one, two, _ = _batches()
    alone = SummaryAccumulator(rng=random.Random(5)).stage(two)
    acc = SummaryAccumulator(rng=random.Random(5))
    acc.stage(two, after=acc.stage(one))  # the first is refused: neither is committed
    again = acc.stage(two)

    def rows(points: list[Point]) -> list[tuple]:  # new rows' times carry a random offset
        return sorted((p.measurement, sorted(p.tags.items()), p.fields) for p in points)

    assert rows(acc.points(again)) == rows(SummaryAccumulator().points(alone))
    assert rows(acc.points(again))
