"""Container collector against cgroup fixture trees (v2 limited/unlimited, v1 limited),
with a controlled clock and usage files rewritten between samples, and on this machine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetgauge.agent.collectors.container import ContainerCollector
from fleetgauge.catalogue import CONTAINER

from .collector_checks import IDENTITY, NOW_NS, FakeClock, check_points

CPU_LIMIT, CPU_PERCENT, MEM_LIMIT, MEM_USED, MEM_PERCENT = CONTAINER.field_names
FIXTURES = Path(__file__).parent / "fixtures"
GIB = 1024**3
V2_SCOPE = Path("sys/fs/cgroup/system.slice/docker-4f1c2b.scope")
V1_CPU = Path("sys/fs/cgroup/cpu,cpuacct")


class Machine:
    """A copy of one fixture tree that the test edits, and a collector looking at it."""

    def __init__(self, fixture: str, tmp_path: Path) -> None:
        self.root = tmp_path / fixture
        shutil.copytree(FIXTURES / fixture, self.root)
        self.clock = FakeClock()
        self.collector = ContainerCollector(
            IDENTITY,
            proc_root=self.root / "proc",
            cgroup_root=self.root / "sys/fs/cgroup",
            clock=self.clock,
        )

    def write(self, path: Path | str, text: str) -> None:
        (self.root / path).write_text(text + "\n")

    def read(self, path: Path | str) -> str:
        return (self.root / path).read_text()

    def fields(self) -> dict:
        points = check_points(self.collector.collect(NOW_NS))
        assert [p.measurement for p in points] == [CONTAINER.name]
        return dict(points[0].fields)


def add_cpu_usec(m: Machine, usec: int) -> None:
    lines = m.read(V2_SCOPE / "cpu.stat").splitlines()
    total = int(lines[0].split()[1]) + usec
    m.write(V2_SCOPE / "cpu.stat", "\n".join([f"usage_usec {total}", *lines[1:]]))


def test_v2_one_busy_core_under_a_two_core_limit_is_50_percent(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    m.clock.advance(10)
    add_cpu_usec(m, 10_000_000)  # 10 CPU-seconds in 10 s: one core
    fields = m.fields()
    assert fields[CPU_LIMIT] == 2.0
    assert fields[CPU_PERCENT] == pytest.approx(50.0)
    m.clock.advance(2)
    add_cpu_usec(m, 3_000_000)  # 1.5 cores of 2
    assert m.fields()[CPU_PERCENT] == pytest.approx(75.0)


def test_v2_memory_is_the_working_set_against_the_limit(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    fields = m.fields()
    working_set = 3758096384 - 335544320  # memory.current - inactive_file
    assert fields[MEM_LIMIT] == 4 * GIB
    assert fields[MEM_USED] == working_set
    assert fields[MEM_PERCENT] == pytest.approx(100 * working_set / (4 * GIB))
    m.write(V2_SCOPE / "memory.current", str(int(0.95 * 4 * GIB) + 335544320))
    assert m.fields()[MEM_PERCENT] == pytest.approx(95.0, abs=1e-6)


def test_v2_first_sample_without_elapsed_time_has_no_cpu_percent(tmp_path: Path) -> None:
    fields = Machine("cgroup_v2_limited", tmp_path).fields()
    assert CPU_PERCENT not in fields and fields[CPU_LIMIT] == 2.0


def test_v2_usage_counter_going_back_gives_no_cpu_percent(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    m.clock.advance(5)
    add_cpu_usec(m, -70_000_000)  # the container was re-created
    assert CPU_PERCENT not in m.fields()
    m.clock.advance(5)
    add_cpu_usec(m, 2_500_000)
    assert m.fields()[CPU_PERCENT] == pytest.approx(25.0)


def test_v2_the_tightest_limit_of_the_ancestors_applies_and_changes_show(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    m.clock.advance(60)
    m.write("sys/fs/cgroup/system.slice/memory.max", str(2 * GIB))
    m.write("sys/fs/cgroup/system.slice/cpu.max", "100000 100000")
    fields = m.fields()
    assert fields[MEM_LIMIT] == 2 * GIB
    assert fields[CPU_LIMIT] == 1.0
    m.write(V2_SCOPE / "cpu.max", "50000 100000")  # docker update --cpus 0.5
    assert m.fields()[CPU_LIMIT] == 1.0  # limits are re-read once a minute, not every sample
    m.clock.advance(60)
    assert m.fields()[CPU_LIMIT] == 0.5


def test_v2_memory_limit_only(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    m.write(V2_SCOPE / "cpu.max", "max 100000")
    m.clock.advance(60)
    fields = m.fields()
    assert CPU_LIMIT not in fields and CPU_PERCENT not in fields
    assert fields[MEM_LIMIT] == 4 * GIB


def test_v2_without_limits_reports_nothing(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_unlimited", tmp_path)
    assert m.collector.cgroup is not None and m.collector.cgroup.version == 2
    m.clock.advance(10)
    assert m.collector.collect(NOW_NS) == []


def test_v1_limits_usage_and_rate(tmp_path: Path) -> None:
    m = Machine("cgroup_v1_limited", tmp_path)
    assert m.collector.cgroup is not None and m.collector.cgroup.version == 1  # despite "0::/"
    m.clock.advance(4)
    usage = int(m.read(V1_CPU / "cpuacct.usage")) + 3_000_000_000  # 0.75 core for 4 s
    m.write(V1_CPU / "cpuacct.usage", str(usage))
    fields = m.fields()
    working_set = 1932735283 - 268435456  # usage_in_bytes - total_inactive_file
    assert fields == {
        CPU_LIMIT: 1.5,
        CPU_PERCENT: pytest.approx(50.0),
        MEM_LIMIT: 2 * GIB,
        MEM_USED: working_set,
        MEM_PERCENT: pytest.approx(100 * working_set / (2 * GIB)),
    }


def test_v1_huge_memory_limit_means_none(tmp_path: Path) -> None:
    m = Machine("cgroup_v1_limited", tmp_path)
    m.write("sys/fs/cgroup/memory/docker/9b7e31/memory.limit_in_bytes", "9223372036854771712")
    m.write(V1_CPU / "cpu.cfs_quota_us", "-1")
    m.clock.advance(60)
    assert m.collector.collect(NOW_NS) == []


def test_vanishing_files_never_raise(tmp_path: Path) -> None:
    m = Machine("cgroup_v2_limited", tmp_path)
    (m.root / V2_SCOPE / "memory.current").unlink()
    assert MEM_USED not in m.fields()
    shutil.rmtree(m.root / "sys")
    m.clock.advance(60)
    assert m.collector.collect(NOW_NS) == []


def test_outside_any_cgroup_reports_nothing(tmp_path: Path) -> None:
    collector = ContainerCollector(IDENTITY, proc_root=tmp_path, cgroup_root=tmp_path)
    assert collector.cgroup is None and collector.collect(NOW_NS) == []


def test_this_machine() -> None:
    """Limited: plausible use against the limit. Unlimited: nothing reported."""
    collector = ContainerCollector(IDENTITY)
    points = check_points(collector.collect(NOW_NS))
    cgroup = collector.cgroup
    assert (cgroup is not None) == Path("/proc/self/cgroup").is_file()
    cores = cgroup.cpu_limit_cores() if cgroup else None
    memory = cgroup.memory_limit_bytes() if cgroup else None
    if cores is None and memory is None:
        assert points == []
        return
    (fields,) = [p.fields for p in points]
    if cores is not None:
        assert fields[CPU_LIMIT] == cores > 0
    if memory is not None:
        assert fields[MEM_LIMIT] == memory
        assert 0 < fields[MEM_USED] <= memory
        assert 0 < fields[MEM_PERCENT] <= 100
