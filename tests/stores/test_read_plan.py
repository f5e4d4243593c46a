"""Read planning: whatever the range, no series gets more buckets than asked for.

And merging the tier points that fall in one bucket keeps every count, sum and extreme.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetgauge.catalogue import TIERS
from fleetgauge.stores.buckets import merge_arrays
from fleetgauge.stores.planning import RAW, cover, level_width, plan_read

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


entries = st.lists(
    st.tuples(
        st.integers(0, 20),  # bucket time
        st.one_of(st.none(), st.integers(0, 5)),  # count; None: the field was absent
        st.floats(-1e6, 1e6),
        st.floats(-1e6, 1e6),
    ),
    max_size=60,
)


@given(entries)
def test_merging_tier_points_keeps_every_count_sum_and_extreme(rows):
    rows.sort(key=lambda r: r[0])
    times = [t for t, _, _, _ in rows]
    counts = [c for _, c, _, _ in rows]
    sums = [None if c is None else s for _, c, s, _ in rows]
    lows = [None if c is None else min(a, b) for _, c, a, b in rows]
    highs = [None if c is None else max(a, b) for _, c, a, b in rows]
    expected: dict[int, list] = {}
    for t, c, total, lo, hi in zip(times, counts, sums, lows, highs, strict=True):
        if c:
            e = expected.setdefault(t, [0, 0.0, lo, hi])
            e[0] += c
            e[1] += total
            e[2], e[3] = min(e[2], lo), max(e[3], hi)
    ot, oc, osum, olo, ohi = merge_arrays(
        np.array(times, dtype=np.int64),
        *(np.array(c, dtype=float) for c in (counts, sums, lows, highs)),  # None -> NaN
    )
    assert ot == sorted(expected)
    assert oc == [expected[t][0] for t in ot]
    assert all(isinstance(c, int) for c in oc)
    assert osum == [pytest.approx(expected[t][1]) for t in ot]
    assert olo == [expected[t][2] for t in ot]
    assert ohi == [expected[t][3] for t in ot]
