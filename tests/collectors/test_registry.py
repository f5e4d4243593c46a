"""build_collectors: the registry the agent uses, on this machine."""

from __future__ import annotations

import time

import pytest

from fleetgauge.agent.collectors import COLLECTOR_NAMES, ResourceCollector, build_collectors
from fleetgauge.catalogue import CPU, DISK, ENVIRONMENT, MEMORY, MOUNT, NETWORK, WORKER

from .collector_checks import IDENTITY, NOW_NS, by_tag, check_points


def test_all_collectors_are_built_in_a_stable_order() -> None:
    collectors = build_collectors(IDENTITY)
    assert tuple(c.name for c in collectors) == COLLECTOR_NAMES
    assert len(set(COLLECTOR_NAMES)) == len(COLLECTOR_NAMES) == 7
    assert all(isinstance(c, ResourceCollector) for c in collectors)


def test_enabled_picks_a_subset_in_registry_order() -> None:
    collectors = build_collectors(IDENTITY, enabled=["network", "cpu"])
    assert [c.name for c in collectors] == [CPU.name, NETWORK.name]


def test_unknown_collector_or_missing_identity_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="unknown collector.*gpus.*known: cpu"):
        build_collectors(IDENTITY, enabled=["cpu", "gpus"])
    with pytest.raises(ValueError, match=WORKER):
        build_collectors({ENVIRONMENT: "prod"})


def test_every_collector_on_this_machine_gives_catalogue_points() -> None:
    collectors = build_collectors(IDENTITY, mounts=["/"], include_loopback=True)
    time.sleep(0.1)
    points = check_points(p for c in collectors for p in c.collect(NOW_NS))
    measurements = {p.measurement for p in points}
    assert {CPU.name, MEMORY.name, DISK.name} <= measurements
    assert set(by_tag(points, DISK.name, MOUNT)) == {"/"}
    for c in collectors:
        getattr(c, "close", lambda: None)()
