"""Checks every collector test applies: the points obey the catalogue and carry our tags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fleetgauge.catalogue import (
    ATTRIBUTION_TAGS,
    ENVIRONMENT,
    GPU_INFO_LABELS,
    GPU_PROCESS,
    MEASUREMENTS,
    PROCESS_MEASUREMENT,
    WORKER,
    Point,
)
from fleetgauge.validation import validate_point

IDENTITY = {ENVIRONMENT: "test", WORKER: "worker-7", "rack": "r12"}
"""Identity tags of the tests: the two required ones plus one static extra."""

NOW_NS = 1_780_000_000_000_000_000

_DESCRIPTIVE_TAGS = set(GPU_INFO_LABELS)  # catalogue tags that describe a device, not required


def check_points(points: Iterable[Point], *, now_ns: int = NOW_NS) -> list[Point]:
    """Assert each point is valid, uses catalogue names only and carries the identity tags."""
    points = list(points)
    for p in points:
        m = validate_point(p)
        assert p.measurement in MEASUREMENTS
        assert set(p.fields) <= set(m.field_names), p
        allowed = set(IDENTITY) | set(m.device_tags) | _DESCRIPTIVE_TAGS
        if m in (GPU_PROCESS, PROCESS_MEASUREMENT):
            allowed |= set(ATTRIBUTION_TAGS)
        assert set(p.tags) <= allowed, p
        assert {k: p.tags[k] for k in IDENTITY} == IDENTITY, p
        assert p.time_ns == now_ns
    return points


def by_tag(points: Iterable[Point], measurement: str, tag: str) -> dict[str, Mapping]:
    """Fields of one measurement's points keyed by one tag's value (e.g. mount -> fields)."""
    found: dict[str, Mapping] = {}
    for p in points:
        if p.measurement == measurement:
            assert p.tags[tag] not in found, f"{measurement} {tag}={p.tags[tag]} reported twice"
            found[p.tags[tag]] = p.fields
    return found


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
