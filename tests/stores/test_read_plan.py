"""Read planning: whatever the range, no series gets more buckets than asked for."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.schema import TIERS
from agent.stores.base import RAW, cover, level_width, plan_read

S = 1_000_000_000
DAY = 86400 * S
times = st.integers(min_value=0, max_value=4_000_000_000 * S)


@given(start=times, span=st.integers(1, 400 * DAY), max_points=st.integers(1, 5000))
def test_plan_never_exceeds_max_points_and_covers_the_range(start, span, max_points):
    plan = plan_read(start, start + span, max_points)
    assert plan.buckets <= max_points
    assert plan.start_ns <= start and plan.end_ns >= start + span
    assert plan.start_ns % plan.step_ns == 0 and plan.end_ns % plan.step_ns == 0
    assert plan.step_ns % level_width(plan.level) == 0


def test_long_ranges_use_the_coarsest_tier_that_still_gives_the_resolution():
    assert plan_read(0, 15 * 60 * S, 1000).level == RAW
    assert plan_read(0, DAY, 1000).level == "1m"
    week = plan_read(0, 7 * DAY, 1008)
    assert (week.level, week.step_ns, week.buckets) == ("10m", 600 * S, 1008)
    assert plan_read(0, 365 * DAY, 1000).level == "1h"


@given(start=times, span=st.integers(1, 30 * DAY))
def test_cover_splits_a_range_into_aligned_contiguous_segments(start, span):
    segments = cover(start, start + span)
    assert segments[0][1] == start and segments[-1][2] == start + span
    for (_, _, end), (_, begin, _) in zip(segments, segments[1:], strict=False):
        assert end == begin
    for tier, a, b in segments:
        if tier is not None:
            assert a % tier.width_ns == 0 and b % tier.width_ns == 0
            assert tier in TIERS
