"""Read planning: which level (raw points or a rollup tier) answers a bucketed read.

Planned here, once, so both backends answer the same question with the same
buckets: the range is snapped outward to whole buckets of ``step_ns`` (aligned
to the Unix epoch, as InfluxDB's ``GROUP BY time`` is), and the data comes from
the coarsest tier whose width still divides the step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from fleetgauge.catalogue import TIERS, Tier
from fleetgauge.catalogue import measurement as catalogue_entry
from fleetgauge.stores.buckets import Buckets

__all__ = ["RAW", "RAW_STEP_UNIT_NS", "ReadPlan", "plan_read", "level_width", "start_read", "cover"]

RAW = "raw"
"""Name of the level that reads raw points rather than a rollup tier."""
RAW_STEP_UNIT_NS = 1_000_000
"""Bucket widths on raw points are whole milliseconds."""


class ReadPlan(NamedTuple):
    """How a bucketed read is answered: the level, the bucket width and the snapped range."""

    level: str
    step_ns: int
    start_ns: int
    end_ns: int

    @property
    def buckets(self) -> int:
        """Number of buckets in the range: never more than the max points asked for."""
        return (self.end_ns - self.start_ns) // self.step_ns


def _snap(start_ns: int, end_ns: int, step_ns: int) -> tuple[int, int]:
    return (start_ns // step_ns) * step_ns, -((-end_ns) // step_ns) * step_ns


def plan_read(
    start_ns: int, end_ns: int, max_points: int, tiers: Sequence[Tier] = TIERS
) -> ReadPlan:
    """Choose the level and step so no series exceeds ``max_points`` buckets.

    The step is the smallest multiple of the chosen level's width whose snapped
    range has at most ``max_points`` buckets; the level is the coarsest tier
    not wider than the step the range needs (raw points when none is).
    """
    if end_ns <= start_ns:
        raise ValueError(f"empty time range: start {start_ns} is not before end {end_ns}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    needed = math.ceil((end_ns - start_ns) / max_points)
    level, unit = RAW, RAW_STEP_UNIT_NS
    for tier in sorted(tiers, key=lambda t: t.width_ns, reverse=True):
        if tier.width_ns <= needed:
            level, unit = tier.name, tier.width_ns
            break
    step = max(1, math.ceil(needed / unit)) * unit
    while True:
        start, end = _snap(start_ns, end_ns, step)
        if (end - start) // step <= max_points:
            return ReadPlan(level, step, start, end)
        step += unit


def level_width(level: str, tiers: Sequence[Tier] = TIERS) -> int:
    """Width in ns of a tier by name (raw: the raw step unit); ValueError if unknown."""
    if level == RAW:
        return RAW_STEP_UNIT_NS
    for tier in tiers:
        if tier.name == level:
            return tier.width_ns
    raise ValueError(f"unknown level {level!r} (raw or one of {[t.name for t in tiers]})")


def start_read(
    measurement: str,
    fields: Sequence[str],
    start_ns: int,
    end_ns: int,
    max_points: int,
    level: str | None = None,
) -> tuple[ReadPlan, Buckets]:
    """Plan a bucketed read and check its arguments; returns the plan and an empty answer.

    Raises ValueError for an unknown measurement or field, an empty range, or a
    forced level whose width does not divide the planned step.
    """
    plan = plan_read(start_ns, end_ns, max_points)
    level = level or plan.level
    if plan.step_ns % level_width(level):
        raise ValueError(f"level {level!r} cannot serve buckets of {plan.step_ns} ns")
    m = catalogue_entry(measurement)
    for f in fields:
        m.get_field(f)
    return plan, Buckets(measurement, level, plan.step_ns, plan.start_ns, plan.end_ns, [])


def cover(
    start_ns: int, end_ns: int, tiers: Sequence[Tier] = TIERS
) -> list[tuple[Tier | None, int, int]]:
    """Split [start, end) into segments, each served by the coarsest tier aligned to it.

    ``None`` marks the raw segments at the edges. Used where any point in the
    range matters but not its value (for example listing the workers seen).
    """
    if start_ns >= end_ns:
        return []
    ordered = sorted(tiers, key=lambda t: t.width_ns, reverse=True)
    for i, tier in enumerate(ordered):
        w = tier.width_ns
        a, b = -((-start_ns) // w) * w, (end_ns // w) * w
        if a < b:
            finer = ordered[i + 1 :]
            return [*cover(start_ns, a, finer), (tier, a, b), *cover(b, end_ns, finer)]
    return [(None, start_ns, end_ns)]
