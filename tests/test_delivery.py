"""Delivery and spool: what the store cannot take waits on disk, returns in order, is counted."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from conftest import InfluxHarness
from influx_server import InfluxServer, V2WriteFront, free_port
from prometheus_client import CollectorRegistry

from fleetgauge import catalogue
from fleetgauge.agent.delivery import Delivery, Spool, SpoolError, SpoolFull
from fleetgauge.agent.health import Health
from fleetgauge.catalogue import Point
from fleetgauge.stores import open_store

S = 1_000_000_000
T0 = 1_767_225_600 * S


def cpu(i: int, worker: str = "w1") -> Point:
    tags = {"environment": "test", "worker": worker}
    return Point("cpu", tags, {"usage_percent": float(10 + i % 80)}, T0 + i * S)


def health() -> Health:
    return Health(CollectorRegistry(), "w1", "test")


def counts(h: Health) -> dict[str, int]:
    return {
        "written": h.total(catalogue.AGENT_POINTS_WRITTEN),
        "spooled": h.total(catalogue.AGENT_POINTS_SPOOLED),
        "dropped": h.total(catalogue.AGENT_POINTS_DROPPED),
        "errors": h.total(catalogue.AGENT_WRITE_ERRORS),
    }


# --- spool ------------------------------------------------------------------------------
def test_spool_gives_batches_back_oldest_first_across_restarts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1024 * 1024)
    spool.append([cpu(0), cpu(1)])
    spool.append([cpu(2)])
    (tmp_path / "000000000099-5.jsonl.tmp").write_text("half a write")  # cut short by a crash
    reopened = Spool(tmp_path, 1024 * 1024)
    assert reopened.points == 3 and not list(tmp_path.glob("*.tmp"))
    seg, points = reopened.oldest()
    assert points == [cpu(0), cpu(1)]
    reopened.remove(seg)
    seg, points = reopened.oldest()
    assert points == [cpu(2)]
    reopened.remove(seg)
    assert reopened.oldest() is None and not reopened


def test_a_full_spool_refuses_a_segment_and_keeps_what_it_holds(tmp_path: Path) -> None:
    probe = Spool(tmp_path / "probe", 1 << 20)
    probe.append([cpu(0)])
    one = probe.bytes  # every cpu(i) below encodes to the same length
    spool = Spool(tmp_path / "s", max_bytes=10 * one)
    spool.append([cpu(i) for i in range(4)])
    spool.append([cpu(i) for i in range(4, 8)])
    with pytest.raises(SpoolFull, match="spool full: .* limit"):
        spool.append([cpu(i) for i in range(8, 12)])
    kept = []
    while item := spool.oldest():
        kept.extend(item[1])
        spool.remove(item[0])
    assert kept == [cpu(i) for i in range(8)]  # acknowledged points are never evicted


def test_an_unreadable_segment_is_set_aside_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 1 << 20)
    spool.append([cpu(0)])
    spool.append([cpu(1)])
    first = sorted(tmp_path.glob("*.jsonl"))[0]
    first.write_text('["cpu", {"worker": \n')
    seg, points = spool.oldest()
    assert points == [cpu(1)]
    assert spool.take_bad() == 1
    assert first.with_suffix(".bad").exists()


def test_a_spool_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SpoolError, match="cannot create spool directory"):
        Spool(tmp_path / "file" / "spool", 1 << 20)


# --- delivery ---------------------------------------------------------------------------
def test_points_reach_the_store_in_batches(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db'}")
    h = health()
    d = Delivery(store, Spool(tmp_path / "spool", 1 << 20), h, batch_size=7)
    d.add([cpu(i) for i in range(20)])
    d.flush()
    assert counts(h) == {"written": 20, "spooled": 0, "dropped": 0, "errors": 0}
    assert list(store.stream_points("cpu", T0, T0 + 100 * S)) == [cpu(i) for i in range(20)]


def test_invalid_points_are_refused_one_by_one_and_counted(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db'}")
    h = health()
    d = Delivery(store, Spool(tmp_path / "spool", 1 << 20), h)
    bad = Point("cpu", {"environment": "test"}, {"usage_percent": 1.0}, T0)  # no worker
    assert d.add([cpu(0), bad, cpu(1)]) == 1
    d.flush()
    assert counts(h) == {"written": 2, "spooled": 0, "dropped": 1, "errors": 0}


def test_an_outage_spools_in_order_backs_off_and_replays_everything_once(tmp_path: Path) -> None:
    """The front answers 503 while influxd is down, as a real server behind a proxy would."""
    server = InfluxServer(tmp_path / "influxd")
    front = V2WriteFront(server.url)
    front.start()
    store = open_store(f"influxdb+{front.url}/outage?org=test&timeout=2")
    h = health()
    clock = [0.0]
    d = Delivery(store, Spool(tmp_path / "spool", 1 << 20), h, batch_size=4, clock=lambda: clock[0])
    try:
        d.add([cpu(i) for i in range(6)])
        d.flush()  # influxd is not running: one failed try, all six spooled
        assert counts(h) == {"written": 0, "spooled": 6, "dropped": 0, "errors": 1}
        clock[0] += 0.5
        d.add([cpu(i) for i in range(6, 9)])
        d.flush()  # within the backoff pause: no try, straight to the spool
        assert counts(h)["errors"] == 1 and counts(h)["spooled"] == 9
        server.start()
        server.create_database("outage")
        clock[0] += 5
        d.add([cpu(i) for i in range(9, 12)])
        d.flush()
        assert counts(h) == {"written": 12, "spooled": 9, "dropped": 0, "errors": 1}
        assert d.spool.points == 0
        got = list(store.stream_points("cpu", T0, T0 + 100 * S))
        assert got == [cpu(i) for i in range(12)]  # all of them, in order, once
    finally:
        store.close()
        front.stop()
        server.stop()


def test_without_a_spool_undeliverable_points_wait_in_memory_and_pushes_are_refused() -> None:
    store = open_store(f"influxdb+http://127.0.0.1:{free_port()}/x?org=test&timeout=1")
    h = health()
    d = Delivery(store, None, h)
    assert d.backpressure() is None
    d.add([cpu(0)])
    d.flush()  # unreachable and no spool configured: held, and pushes are refused meanwhile
    assert d.reserved == 1 and counts(h)["dropped"] == 0
    reason, retry_after = d.backpressure()
    assert "store is unavailable" in reason and "no spool" in reason and retry_after >= 1
    d.stop()  # what is still held when the agent stops is counted, never silent
    assert counts(h)["dropped"] == 1 and d.reserved == 0


def test_a_full_spool_holds_points_in_memory_refuses_pushes_and_writes_them_once_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    down = open_store(f"influxdb+http://127.0.0.1:{free_port()}/x?org=test&timeout=1")
    probe = Spool(tmp_path / "probe", 1 << 20)
    probe.append([cpu(0)] * 4)
    clock = [0.0]
    h = health()
    spool = Spool(tmp_path / "spool", max_bytes=probe.bytes * 2)  # room for two batches of 4
    d = Delivery(down, spool, h, batch_size=4, max_reserve=10, clock=lambda: clock[0])
    for i in range(0, 20, 4):  # five batches: two spooled, three held (10 is the bound)
        d.add([cpu(k) for k in range(i, i + 4)])
        d.flush()
        clock[0] += 60
    assert spool.points == 8 and d.reserved == 10
    reason, _ = d.backpressure()
    assert "spool full" in reason and "spool_max_bytes" in reason
    # the two newest beyond the bound are dropped and counted; the older ones are kept
    assert counts(h)["dropped"] == 2
    assert h.total(catalogue.AGENT_POINTS_DROPPED) == 2
    assert "cannot spool" in caplog.text and "refusing pushes (503)" in caplog.text
    up = open_store(f"sqlite:///{tmp_path / 'db'}")
    d.store = up
    d.add([cpu(20)])
    d.flush()
    assert d.reserved == 0 and spool.points == 0 and d.backpressure() is None
    got = list(up.stream_points("cpu", T0, T0 + 100 * S))
    assert got == [cpu(i) for i in range(18)] + [cpu(20)]  # in order, once; 18 and 19 dropped


def test_a_batch_the_store_refuses_is_logged_dropped_and_not_retried(
    tmp_path: Path, influx: InfluxHarness, caplog: pytest.LogCaptureFixture
) -> None:
    db = influx.new_database()
    # Someone else wrote usage_percent as text in the same shard: InfluxDB answers
    # 400 "field type conflict" to our floats.
    request = urllib.request.Request(
        f"{influx.server.url}/write?db={db}",
        data=f'cpu,environment=test,worker=w1 usage_percent="busy" {T0 - S}'.encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    store = open_store(influx.store_url(db))
    h = health()
    d = Delivery(store, Spool(tmp_path / "spool", 1 << 20), h)
    try:
        d.add([cpu(0), cpu(1)])
        d.flush()
        d.flush()
    finally:
        store.close()
    assert counts(h) == {"written": 0, "spooled": 0, "dropped": 2, "errors": 1}
    assert "store refused 2 points" in caplog.text and "conflict" in caplog.text
    assert d.spool.points == 0
