"""Disk collector against a scripted psutil (mount table, usage, IO counters) and on this
machine."""

from __future__ import annotations

import os
from types import SimpleNamespace

import psutil
import pytest

from fleetgauge.agent.collectors.disk import DiskCollector
from fleetgauge.catalogue import DEVICE, DISK, DISK_IO, MOUNT

from .collector_checks import IDENTITY, NOW_NS, FakeClock, by_tag, check_points

USED, TOTAL, PERCENT = DISK.field_names
READ, WRITE = DISK_IO.field_names
GIB = 1024**3


def part(device: str, mountpoint: str, fstype: str) -> SimpleNamespace:
    return SimpleNamespace(device=device, mountpoint=mountpoint, fstype=fstype, opts="rw")


def io(read: int, write: int) -> SimpleNamespace:
    return SimpleNamespace(read_bytes=read, write_bytes=write)


class FakePsutil:
    """The psutil functions the disk collector uses, over a scripted machine."""

    def __init__(self) -> None:
        self.partitions = [
            part("/dev/nvme0n1p2", "/", "ext4"),
            part("/dev/nvme0n1p2", "/var/lib/kubelet/pods/x/volumes", "ext4"),  # bind mount
            part("/dev/nvme1n1", "/data", "xfs"),
            part("/dev/nvme1n1", "/mnt/data-again", "xfs"),  # same disk mounted twice
            part("proc", "/proc", "proc"),
            part("sysfs", "/sys", "sysfs"),
            part("tmpfs", "/dev/shm", "tmpfs"),
            part("udev", "/dev", "devtmpfs"),
            part("/dev/loop3", "/snap/core22/1380", "squashfs"),
            part("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay"),
            part("nas:/export/datasets", "/datasets", "nfs4"),
            part("none", "/mnt/wsl-a", "9p"),  # placeholder devices: two distinct filesystems
            part("none", "/mnt/wsl-b", "9p"),
        ]
        self.usage = {
            "/": (120 * GIB, 400 * GIB, 280 * GIB),  # used, total, free
            "/data": (3000 * GIB, 3500 * GIB, 500 * GIB),
            "/datasets": (10 * GIB, 100 * GIB, 90 * GIB),
            "/mnt/wsl-a": (1 * GIB, 4 * GIB, 3 * GIB),
            "/mnt/wsl-b": (2 * GIB, 4 * GIB, 2 * GIB),
        }
        self.errors: dict[str, OSError] = {}
        self.counters = {
            "nvme0n1": io(0, 0),
            "nvme0n1p1": io(0, 0),
            "nvme0n1p2": io(0, 0),
            "nvme1n1": io(0, 0),
            "loop3": io(0, 0),
            "zram0": io(0, 0),
        }
        self.files: set[str] = set()  # mount points that are files, not directories
        self.partition_calls = 0

    def disk_partitions(self, all: bool) -> list:
        self.partition_calls += 1
        return list(self.partitions)

    def disk_usage(self, path: str) -> SimpleNamespace:
        if path in self.errors:
            raise self.errors[path]
        used, total, free = self.usage[path]
        return SimpleNamespace(used=used, total=total, free=free)

    def disk_io_counters(self, perdisk: bool) -> dict:
        assert perdisk
        return dict(self.counters)


BLOCK = {"nvme0n1", "nvme1n1", "loop3", "zram0"}  # what /sys/block lists: no partitions


def make(fake: FakePsutil, clock: FakeClock | None = None, **kwargs) -> DiskCollector:
    return DiskCollector(
        IDENTITY,
        psutil_module=fake,
        block_devices=lambda: BLOCK,
        is_dir=lambda path: path not in fake.files,
        clock=clock or FakeClock(),
        **kwargs,
    )


def test_real_filesystems_once_each_pseudo_ones_skipped() -> None:
    points = check_points(make(FakePsutil()).collect(NOW_NS))
    mounts = by_tag(points, DISK.name, MOUNT)
    assert set(mounts) == {"/", "/data", "/datasets", "/mnt/wsl-a", "/mnt/wsl-b"}
    assert mounts["/"] == {USED: 120 * GIB, TOTAL: 400 * GIB, PERCENT: 30.0}


def test_percent_is_of_the_space_users_can_have_as_df_shows() -> None:
    fake = FakePsutil()
    fake.usage["/"] = (90 * GIB, 100 * GIB, 5 * GIB)  # 5 GiB reserved for root
    mounts = by_tag(make(fake).collect(NOW_NS), DISK.name, MOUNT)
    assert mounts["/"][PERCENT] == pytest.approx(100 * 90 / 95)


def test_explicit_mounts_replace_the_choice(caplog: pytest.LogCaptureFixture) -> None:
    disk = make(FakePsutil(), mounts=["/data/", "/datasets", "/not-mounted"])
    for _ in range(2):
        mounts = by_tag(check_points(disk.collect(NOW_NS)), DISK.name, MOUNT)
        assert set(mounts) == {"/data", "/datasets"}
    assert [r.getMessage() for r in caplog.records].count(
        "disk: /not-mounted is not a mount point; not reporting it"
    ) == 1


@pytest.mark.parametrize("error", [FileNotFoundError(2, "gone"), PermissionError(13, "denied")])
def test_an_unreadable_or_vanished_mount_is_skipped(error: OSError) -> None:
    fake = FakePsutil()
    fake.errors["/data"] = error
    mounts = by_tag(check_points(make(fake).collect(NOW_NS)), DISK.name, MOUNT)
    assert "/data" not in mounts and "/" in mounts


def test_the_mount_table_is_reread_every_refresh_interval_only() -> None:
    fake, clock = FakePsutil(), FakeClock()
    disk = make(fake, clock, refresh_s=60)
    for _ in range(5):
        disk.collect(NOW_NS)
        clock.advance(10)
    assert fake.partition_calls == 1
    fake.partitions.append(part("/dev/sdb1", "/scratch", "ext4"))
    fake.usage["/scratch"] = (1, 10, 9)
    clock.advance(20)
    assert "/scratch" in by_tag(disk.collect(NOW_NS), DISK.name, MOUNT)
    assert fake.partition_calls == 2


def test_io_rates_for_whole_disks_only() -> None:
    fake, clock = FakePsutil(), FakeClock()
    disk = make(fake, clock)
    clock.advance(2)
    fake.counters.update(
        nvme0n1=io(8 * 1024**2, 2 * 1024**2),
        nvme0n1p2=io(8 * 1024**2, 2 * 1024**2),
        nvme1n1=io(0, 400 * 1024**2),
        loop3=io(4096, 0),
        zram0=io(0, 4096),
    )
    devices = by_tag(check_points(disk.collect(NOW_NS)), DISK_IO.name, DEVICE)
    assert devices == {
        "nvme0n1": {READ: 4 * 1024**2, WRITE: 1 * 1024**2},
        "nvme1n1": {READ: 0.0, WRITE: 200 * 1024**2},
    }


def test_a_reset_io_counter_gives_no_point_not_a_negative_rate() -> None:
    fake, clock = FakePsutil(), FakeClock()
    fake.counters["nvme1n1"] = io(10 * GIB, 10 * GIB)
    disk = make(fake, clock)
    clock.advance(1)
    fake.counters["nvme1n1"] = io(4096, 10 * GIB)
    devices = by_tag(disk.collect(NOW_NS), DISK_IO.name, DEVICE)
    assert "nvme1n1" not in devices and devices["nvme0n1"] == {READ: 0.0, WRITE: 0.0}


def test_this_machine() -> None:
    disk = DiskCollector(IDENTITY)
    points = check_points(disk.collect(NOW_NS))
    mounts = by_tag(points, DISK.name, MOUNT)
    assert "/" in mounts
    for fields in mounts.values():
        assert 0 < fields[USED] <= fields[TOTAL]
        assert 0 <= fields[PERCENT] <= 100
    root = psutil.disk_usage("/")
    assert mounts["/"][TOTAL] == root.total
    whole_disks = set(os.listdir("/sys/block"))
    expected = {
        name
        for name in psutil.disk_io_counters(perdisk=True)
        if name in whole_disks and not name.startswith(("loop", "ram", "zram"))
    }
    devices = by_tag(points, DISK_IO.name, DEVICE)
    assert set(devices) == expected
    assert all(f[READ] >= 0 and f[WRITE] >= 0 for f in devices.values())


def test_this_machine_with_an_explicit_mount() -> None:
    mounts = by_tag(
        check_points(DiskCollector(IDENTITY, mounts=["/"]).collect(NOW_NS)), DISK.name, MOUNT
    )
    assert set(mounts) == {"/"}


def test_in_a_container_the_overlay_root_counts_and_bind_mounted_files_do_not() -> None:
    fake = FakePsutil()
    fake.partitions = [
        part("overlay", "/", "overlay"),
        part("/dev/sda1", "/etc/hosts", "ext4"),  # docker bind-mounts these files
        part("/dev/sda1", "/etc/resolv.conf", "ext4"),
        part("/dev/sdb1", "/data", "xfs"),  # a volume
        part("shm", "/dev/shm", "tmpfs"),
    ]
    fake.files = {"/etc/hosts", "/etc/resolv.conf"}
    fake.usage["/"] = (30 * GIB, 100 * GIB, 70 * GIB)
    mounts = by_tag(check_points(make(fake).collect(NOW_NS)), DISK.name, MOUNT)
    assert set(mounts) == {"/", "/data"}
    assert mounts["/"][PERCENT] == 30.0
