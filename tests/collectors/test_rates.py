"""RateTracker against controlled counters and a controlled clock."""

from __future__ import annotations

import pytest

from fleetgauge.agent.collectors.rates import RateTracker

from .collector_checks import FakeClock


def test_rate_is_the_delta_over_the_real_elapsed_time() -> None:
    clock = FakeClock()
    rates = RateTracker(clock)
    assert rates.update({"eth0": (1_000_000, 500)}) == {}  # first sample: silent
    clock.advance(2.0)
    assert rates.update({"eth0": (3_000_000, 500)}) == {"eth0": (1_000_000.0, 0.0)}
    clock.advance(0.5)  # a late or early sample changes nothing: the real elapsed time counts
    assert rates.update({"eth0": (3_250_000, 1_500)}) == {"eth0": (500_000.0, 2_000.0)}


def test_a_counter_reset_gives_no_rate_then_rates_resume() -> None:
    clock = FakeClock()
    rates = RateTracker(clock)
    rates.update({"sda": (10_000_000, 20_000_000)})
    clock.advance(1)
    assert rates.update({"sda": (4_096, 20_004_096)}) == {}  # read counter went back
    clock.advance(1)
    assert rates.update({"sda": (12_288, 20_004_096)}) == {"sda": (8_192.0, 0.0)}


def test_keys_are_independent_new_keys_start_silent_and_gone_keys_are_forgotten() -> None:
    clock = FakeClock()
    rates = RateTracker(clock)
    rates.update({"eth0": (0,), "eth1": (100,)})
    clock.advance(1)
    assert rates.update({"eth0": (10,), "docker0": (5,)}) == {"eth0": (10.0,)}
    clock.advance(1)
    # eth1 comes back with a small counter: it was forgotten, so no spike and no negative
    assert rates.update({"eth0": (30,), "docker0": (25,), "eth1": (1,)}) == {
        "eth0": (20.0,),
        "docker0": (20.0,),
    }


def test_a_clock_that_did_not_advance_gives_no_rate() -> None:
    clock = FakeClock()
    rates = RateTracker(clock)
    rates.update({"lo": (100,)})
    assert rates.update({"lo": (200,)}) == {}
    clock.advance(1)
    assert rates.update({"lo": (300,)}) == {"lo": (100.0,)}


@pytest.mark.parametrize("steps", [[5, 3, 9, 9, 0, 7], [0, 2**64 - 1, 0, 17]])
def test_rates_are_never_negative(steps: list[int]) -> None:
    clock = FakeClock()
    rates = RateTracker(clock)
    for value in steps:
        for rate in rates.update({"dev": (value,)}).values():
            assert rate[0] >= 0
        clock.advance(1)
