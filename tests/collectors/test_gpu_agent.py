"""The agent with the GPU collector on a fake NVML (a throttled H100): what it reads reaches
both stores and ``/metrics`` with the catalogue's names and units (issue 22, point 1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from agent_process import AgentProcess

from fleetgauge.catalogue import GPU_MEASUREMENT
from fleetgauge.read.query import get_events, get_resource_metrics
from fleetgauge.stores import Store

TESTS_DIR = Path(__file__).resolve().parents[1]
FAKE_GPU_AGENT = """
import sys
sys.path.insert(0, {tests!r})
from collectors.fake_nvml import GIB, FakeGpu, FakeMig, FakeNvml, throttled_h100
mig = FakeGpu("GPU-mig", mig=[FakeMig(1, 0, 20 * GIB, 5 * GIB), FakeMig(2, 0, 40 * GIB)])
sys.modules["pynvml"] = FakeNvml(
    [throttled_h100(), mig], xid_file={xid_file!r}, lost_file={lost_file!r}
)
from fleetgauge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_throttled_gpu_reaches_the_store_and_metrics_in_catalogue_units(
    store: Store, tmp_path: Path
) -> None:
    agent = AgentProcess(
        tmp_path,
        *("--store", store.url, "--collectors", "gpu", "--worker", "gpu-box"),
        *("--interval", "0.5", "--flush-interval", "0.5"),
    )
    xid_file, lost_file = tmp_path / "xids", tmp_path / "lost"
    script = FAKE_GPU_AGENT.format(
        tests=str(TESTS_DIR), xid_file=str(xid_file), lost_file=str(lost_file)
    )
    agent.args[1:3] = ["-c", script]
    start = time.time() - 1
    agent.start()
    try:
        deadline = time.monotonic() + 20
        while not (
            rows := get_resource_metrics(start, time.time() + 1, measurements="gpu", store=store)
        ):
            assert time.monotonic() < deadline, agent.log()
            time.sleep(0.2)
        row = [r for r in rows if r["gpu"] == "0"][-1]
        assert row["throttle_power_cap"] == 1.0 and row["throttle_idle"] == 0.0
        assert row["sm_clock_hertz"] == 1755e6 and row["energy_joules"] == 987_654.321
        assert (
            row["remapped_rows_pending"] == 1.0 and row["ecc_uncorrected_aggregate_errors"] == 1.0
        )
        assert row["fan_speed_percent"] is None  # not supported: absent, not 0
        labels = {"gpu": "0", "worker": "gpu-box"}
        assert agent.value("fleetgauge_gpu_throttle_power_cap", **labels) == 1.0
        assert agent.value("fleetgauge_gpu_sm_clock_hertz", **labels) == 1755e6
        assert agent.value("fleetgauge_gpu_memory_utilization_ratio", **labels) == pytest.approx(
            0.61
        )
        assert (
            agent.value("fleetgauge_gpu_pcie_receive_bytes_per_second", **labels) == 2_048_000_000
        )
        info = agent.samples()
        (board,) = [
            dict(ls) for n, ls in info if n == "fleetgauge_gpu_info" and dict(ls)["gpu"] == "0"
        ]
        assert board["gpu_uuid"] == "GPU-5d3a2f4e-8c1b-4e7a-9f20-6b1d0c3e7a91"
        assert board["gpu_pci_bus_id"] == "00000000:18:00.0"
        assert board["gpu_driver_version"] == "550.54.15"
        assert board["gpu_name"] == "NVIDIA H100 80GB HBM3"
        names = {n for n, _ in agent.samples()}
        assert "fleetgauge_gpu_fan_speed_ratio" not in names
        assert agent.value("fleetgauge_gpus", worker="gpu-box") == 2.0
        # GPU 1 in MIG mode: its instances in the store and on /metrics, beside it
        migs = get_resource_metrics(start, time.time() + 1, measurements="gpu_mig", store=store)
        assert {(r["gpu"], r["gpu_instance"], r["memory_used_bytes"]) for r in migs} == {
            ("1", "1", 5 * 1024**3),
            ("1", "2", 0.0),
        }
        mig_used = "fleetgauge_gpu_mig_memory_used_bytes"
        assert agent.value(mig_used, gpu="1", gpu_instance="1") == 5 * 1024**3

        # an XID: counted on /metrics within a second, in the store after a flush
        xid_file.write_text("0 79\n")
        injected = time.monotonic()
        while agent.value("fleetgauge_gpu_xid_errors_total", gpu="0", xid="79") != 1.0:
            assert time.monotonic() - injected < 1.0, agent.log()
            time.sleep(0.02)
        while not (events := get_events("gpu_xid", start=start, store=store)):
            assert time.monotonic() - injected < 5.0, agent.log()
            time.sleep(0.1)
        (event,) = events
        assert event["metadata"] == {"gpu": 0, "xid": 79, "meaning": "GPU has fallen off the bus"}
        assert event["other_tags"]["gpu"] == "0"

        # GPU 1 falls off the bus: one GPU fewer on /metrics, a gpu_lost event in the store
        lost_file.write_text("1\n")
        lost = time.monotonic()
        while agent.value("fleetgauge_gpus", worker="gpu-box") != 1.0:
            assert time.monotonic() - lost < 5.0, agent.log()
            time.sleep(0.05)
        while not (gone := get_events("gpu_lost", start=start, store=store)):
            assert time.monotonic() - lost < 5.0, agent.log()
            time.sleep(0.1)
        assert [e["other_tags"]["gpu"] for e in gone] == ["1"]
    finally:
        code, _ = agent.stop()
    assert code == 0, agent.log()
    assert set(row) >= set(GPU_MEASUREMENT.field_names) - {"fan_speed_percent"}
