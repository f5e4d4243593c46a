"""CPU collector against scripted per-core times and on this machine."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from fleetgauge.agent.collectors.cpu import CpuCollector
from fleetgauge.catalogue import CORE, CPU, CPU_CORE

from .collector_checks import IDENTITY, NOW_NS, by_tag, check_points

USAGE, LOAD1, LOAD5, LOAD15, COUNT = CPU.field_names
(CORE_USAGE,) = CPU_CORE.field_names


def times(user: float, system: float, idle: float, iowait: float = 0.0, guest: float = 0.0):
    """One core's cumulative times, as psutil's Linux ``scputimes``."""
    return psutil.cpu_times().__class__(
        user=user + guest,  # the kernel counts guest time inside user time too
        nice=0.0,
        system=system,
        idle=idle,
        iowait=iowait,
        irq=0.0,
        softirq=0.0,
        steal=0.0,
        guest=guest,
        guest_nice=0.0,
    )


class ScriptedCpu:
    """Returns the next list of per-core times at each call."""

    def __init__(self, *readings: list) -> None:
        self.readings = list(readings)

    def __call__(self) -> list:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


def test_usage_comes_from_the_times_since_the_previous_sample() -> None:
    cpu_times = ScriptedCpu(
        [times(100, 50, 1000), times(100, 50, 1000)],
        # core 0 busy 0.75 s of 1 s (iowait counts as idle); core 1 idle, except guest time
        [times(100.5, 50.25, 1000.1, iowait=0.15), times(100, 50, 1000.75, guest=0.25)],
    )
    cpu = CpuCollector(IDENTITY, cpu_times=cpu_times, loadavg=lambda: (1.5, 0.75, 0.25))
    points = check_points(cpu.collect(NOW_NS))
    assert points[0].fields == {
        USAGE: pytest.approx(50.0),
        LOAD1: 1.5,
        LOAD5: 0.75,
        LOAD15: 0.25,
        COUNT: 2,
    }
    cores = by_tag(points, CPU_CORE.name, CORE)
    assert cores == {"0": {CORE_USAGE: pytest.approx(75.0)}, "1": {CORE_USAGE: pytest.approx(25.0)}}


def test_no_elapsed_cpu_time_gives_no_usage_rather_than_0_or_100() -> None:
    same = [times(10, 5, 100)]
    cpu = CpuCollector(IDENTITY, cpu_times=ScriptedCpu(same, same), loadavg=lambda: (0, 0, 0))
    points = check_points(cpu.collect(NOW_NS))
    assert [p.measurement for p in points] == [CPU.name]
    assert USAGE not in points[0].fields and points[0].fields[COUNT] == 1


def test_a_core_going_offline_skips_one_interval() -> None:
    two, one = [times(10, 5, 100), times(10, 5, 100)], [times(11, 5, 100)]
    cpu = CpuCollector(IDENTITY, cpu_times=ScriptedCpu(two, one), loadavg=lambda: (0, 0, 0))
    points = check_points(cpu.collect(NOW_NS))
    assert [p.measurement for p in points] == [CPU.name] and USAGE not in points[0].fields


def test_this_machine() -> None:
    cpu = CpuCollector(IDENTITY)
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:  # let some CPU time pass, busy and idle
        time.sleep(0.01)
    points = check_points(cpu.collect(NOW_NS))
    total = points[0]
    assert total.measurement == CPU.name
    assert 0 <= total.fields[USAGE] <= 100
    assert total.fields[COUNT] == os.cpu_count()
    assert all(total.fields[f] >= 0 for f in (LOAD1, LOAD5, LOAD15))
    cores = by_tag(points, CPU_CORE.name, CORE)
    assert set(cores) == {str(i) for i in range(os.cpu_count())}
    assert all(0 <= f[CORE_USAGE] <= 100 for f in cores.values())
