"""GPU collector against a fake NVML (realistic H100 values, real NVMLError classes) and
against the real nvidia-ml-py on this machine."""

from __future__ import annotations

import json
import logging
import time

import pynvml
import pytest

from fleetgauge.agent.collectors.gpu import GpuCollector
from fleetgauge.catalogue import GPU, GPU_MEASUREMENT, GPU_NAME, GPU_PROCESS, GPU_UUID, PID
from fleetgauge.validation import validate_point

from .collector_checks import IDENTITY, NOW_NS, FakeClock, by_tag, check_points
from .fake_nvml import GIB, FakeGpu, FakeMig, FakeNvml, throttled_h100

(UTIL, MEM_USED, MEM_TOTAL, MEM_PERCENT, TEMP, POWER, POWER_LIMIT) = GPU_MEASUREMENT.field_names[:7]
PROC_MEM = GPU_PROCESS.field_names[0]
UUID0 = "GPU-5d3a2f4e-8c1b-4e7a-9f20-6b1d0c3e7a91"
UUID1 = "GPU-a07c9e12-3b4d-4f6a-8e51-92c0d7b3f4e8"


def two_h100s() -> list[FakeGpu]:
    """Two H100 80 GB boards, one busy training, one idle."""
    return [
        FakeGpu(
            UUID0,
            utilization_percent=97,
            memory_used=64 * GIB,
            temperature_celsius=71,
            power_usage_mw=612_345,
            compute_processes=[(41872, 63 * GIB)],
        ),
        FakeGpu(UUID1, utilization_percent=0, memory_used=512 * 1024**2, power_usage_mw=69_871),
    ]


def collector(nvml: FakeNvml, **kwargs) -> GpuCollector:
    return GpuCollector(IDENTITY, nvml=nvml, **kwargs)


def test_two_gpus_are_read_back_exactly() -> None:
    points = check_points(collector(FakeNvml(two_h100s())).collect(NOW_NS))
    gpus = by_tag(points, GPU_MEASUREMENT.name, GPU)
    assert {
        k: v
        for k, v in gpus["0"].items()
        if k in (UTIL, MEM_USED, MEM_TOTAL, MEM_PERCENT, TEMP, POWER, POWER_LIMIT)
    } == {
        UTIL: 97.0,
        MEM_USED: 64 * GIB,
        MEM_TOTAL: 85899345920,
        MEM_PERCENT: 80.0,
        TEMP: 71.0,
        POWER: 612.345,
        POWER_LIMIT: 700.0,
    }
    assert gpus["1"][MEM_PERCENT] == pytest.approx(100 * 0.5 / 80)
    assert gpus["1"][POWER] == pytest.approx(69.871)
    gpu_tags = {p.tags[GPU]: p.tags for p in points if p.measurement == GPU_MEASUREMENT.name}
    assert gpu_tags["0"][GPU_UUID] == UUID0 and gpu_tags["1"][GPU_UUID] == UUID1
    assert gpu_tags["0"][GPU_NAME] == "NVIDIA H100 80GB HBM3"


def test_a_field_the_card_does_not_support_is_left_out() -> None:
    gpus = two_h100s()
    gpus[1].errors["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    gpus[1].errors["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_NO_PERMISSION
    points = check_points(collector(FakeNvml(gpus)).collect(NOW_NS))
    fields = by_tag(points, GPU_MEASUREMENT.name, GPU)
    assert POWER not in fields["1"] and TEMP not in fields["1"]
    assert fields["1"][POWER_LIMIT] == 700.0 and fields["1"][UTIL] == 0.0
    assert fields["0"][POWER] == 612.345  # the other card is untouched


def test_a_lost_gpu_is_skipped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakeNvml(two_h100s())
    gpu = collector(nvml)
    assert len(by_tag(gpu.collect(NOW_NS), GPU_MEASUREMENT.name, GPU)) == 2
    nvml.gpus[0].lost = True
    with caplog.at_level(logging.WARNING, logger="fleetgauge.agent.gpu"):
        for _ in range(3):
            points = check_points(gpu.collect(NOW_NS))
            assert set(by_tag(points, GPU_MEASUREMENT.name, GPU)) == {"1"}
            assert not by_tag(points, GPU_PROCESS.name, PID)  # gpu 0's process went with it
    assert len(caplog.records) == 1 and "GPU 0 is lost" in caplog.records[0].getMessage()


def test_processes_report_their_gpu_memory() -> None:
    gpus = two_h100s()
    gpus[0].graphics_processes = [(41872, 63 * GIB), (2210, None)]  # 2210: driver cannot tell
    gpus[1].compute_processes = [(51020, 7 * GIB)]
    points = check_points(collector(FakeNvml(gpus)).collect(NOW_NS))
    processes = {
        (p.tags[GPU], p.tags[PID]): p.fields[PROC_MEM]
        for p in points
        if p.measurement == GPU_PROCESS.name
    }
    assert processes == {("0", "41872"): 63 * GIB, ("1", "51020"): 7 * GIB}


def test_process_listing_errors_keep_the_gpu_point() -> None:
    gpus = two_h100s()
    gpus[0].errors["nvmlDeviceGetComputeRunningProcesses"] = pynvml.NVML_ERROR_NO_PERMISSION
    points = check_points(collector(FakeNvml(gpus)).collect(NOW_NS))
    assert set(by_tag(points, GPU_MEASUREMENT.name, GPU)) == {"0", "1"}
    assert not [p for p in points if p.measurement == GPU_PROCESS.name]


@pytest.mark.parametrize(
    "error", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED]
)
def test_no_nvml_logs_once_reports_nothing_and_retries_rarely(
    error: int, caplog: pytest.LogCaptureFixture
) -> None:
    nvml, clock = FakeNvml(two_h100s(), init_error=error), FakeClock()
    gpu = collector(nvml, clock=clock, retry_s=600)
    with caplog.at_level(logging.DEBUG, logger="fleetgauge.agent.gpu"):
        for _ in range(5):
            assert gpu.collect(NOW_NS) == []
            clock.advance(10)
        assert nvml.calls["nvmlInit"] == 1  # not once per sample
        clock.advance(600)
        assert gpu.collect(NOW_NS) == []
        assert nvml.calls["nvmlInit"] == 2
    assert nvml.calls["nvmlShutdown"] == 0  # never release an init that did not happen
    assert len(caplog.records) == 1
    assert caplog.records[0].name == "fleetgauge.agent.gpu"
    assert "no GPU metrics" in caplog.records[0].getMessage()


def test_a_driver_loaded_later_is_picked_up_at_the_next_retry() -> None:
    nvml, clock = FakeNvml(two_h100s(), init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED), FakeClock()
    gpu = collector(nvml, clock=clock, retry_s=600)
    assert gpu.collect(NOW_NS) == []
    nvml.init_error = None
    clock.advance(601)
    assert set(by_tag(check_points(gpu.collect(NOW_NS)), GPU_MEASUREMENT.name, GPU)) == {"0", "1"}


def test_a_machine_with_nvml_but_no_gpu_reports_nothing(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakeNvml([])
    with caplog.at_level(logging.INFO, logger="fleetgauge.agent.gpu"):
        gpu = collector(nvml)
        assert gpu.collect(NOW_NS) == [] and gpu.collect(NOW_NS) == []
    assert len(caplog.records) == 1
    assert nvml.calls["nvmlShutdown"] == 1 and not nvml.initialized


def test_close_shuts_nvml_down_and_stops_reporting() -> None:
    nvml = FakeNvml(two_h100s())
    gpu = collector(nvml)
    assert gpu.collect(NOW_NS)
    gpu.close()
    assert nvml.calls["nvmlShutdown"] == 1 and not nvml.initialized
    assert gpu.collect(NOW_NS) == []
    assert nvml.calls["nvmlInit"] == 1


def test_real_nvml_on_this_machine() -> None:
    """No GPU here: nothing, no exception. With GPUs: one plausible point per GPU."""
    try:
        pynvml.nvmlInit()
        expected = pynvml.nvmlDeviceGetCount()
        pynvml.nvmlShutdown()
    except pynvml.NVMLError:
        expected = 0
    gpu = GpuCollector(IDENTITY)
    try:
        points = check_points(gpu.collect(NOW_NS) + gpu.collect(NOW_NS))
    finally:
        gpu.close()
    if expected == 0:
        assert points == []
    gpus = [p for p in points if p.measurement == GPU_MEASUREMENT.name]
    assert len(gpus) == 2 * expected
    for p in gpus:
        assert 0 <= p.fields[UTIL] <= 100
        assert 0 < p.fields[MEM_USED] <= p.fields[MEM_TOTAL]
        assert 0 <= p.fields[MEM_PERCENT] <= 100
        assert p.tags[GPU_UUID].startswith(("GPU-", "MIG-"))
        assert 0 < p.fields.get(TEMP, 50) < 120
        assert 0 < p.fields.get(POWER, 100) < 2000


def test_a_gpu_hidden_from_this_container_is_skipped() -> None:
    gpus = two_h100s()
    gpus[0].errors["nvmlDeviceGetHandleByIndex"] = pynvml.NVML_ERROR_NO_PERMISSION
    points = check_points(collector(FakeNvml(gpus)).collect(NOW_NS))
    assert set(by_tag(points, GPU_MEASUREMENT.name, GPU)) == {"1"}


# --- health and depth (issue 22, point 1 and 6) ---------------------------------------
def test_health_and_depth_fields_are_read_back_in_the_catalogues_units() -> None:
    (point,) = [
        p
        for p in check_points(collector(FakeNvml([throttled_h100()])).collect(NOW_NS))
        if p.measurement == GPU_MEASUREMENT.name
    ]
    f = point.fields
    assert f["memory_utilization_percent"] == 61.0
    assert f["sm_clock_hertz"] == 1755e6 and f["sm_clock_max_hertz"] == 1980e6
    assert f["memory_clock_hertz"] == 2619e6 and f["graphics_clock_max_hertz"] == 1980e6
    assert f["memory_temperature_celsius"] == 78.0
    assert f["energy_joules"] == 987_654.321
    assert f["performance_state"] == 0.0
    assert f["pcie_receive_bytes_per_second"] == 2_000_000 * 1024
    assert f["pcie_transmit_bytes_per_second"] == 150_000 * 1024
    assert f["pcie_replays"] == 3.0
    assert f["encoder_utilization_percent"] == 0.0 and f["decoder_utilization_percent"] == 12.0
    assert (f["ecc_corrected_volatile_errors"], f["ecc_corrected_aggregate_errors"]) == (5.0, 41.0)
    assert (f["ecc_uncorrected_volatile_errors"], f["ecc_uncorrected_aggregate_errors"]) == (
        0.0,
        1.0,
    )
    assert [
        f[f"remapped_rows_{k}"] for k in ("correctable", "uncorrectable", "pending", "failure")
    ] == [2.0, 1.0, 1.0, 0.0]
    throttle = {k: v for k, v in f.items() if k.startswith("throttle_")}
    assert throttle == {
        "throttle_power_cap": 1.0,
        "throttle_thermal_software": 1.0,
        "throttle_thermal_hardware": 0.0,
        "throttle_hardware_slowdown": 0.0,
        "throttle_sync_boost": 0.0,
        "throttle_idle": 0.0,
        "throttle_applications_clocks": 0.0,
    }
    assert "fan_speed_percent" not in f  # an SXM board has no fan: absent, not 0
    assert set(f) <= set(GPU_MEASUREMENT.field_names)


def test_a_read_the_board_does_not_support_is_asked_once_and_never_again() -> None:
    gpu = throttled_h100()
    gpu.memory_temperature_celsius = None  # not reported by this board
    gpu.errors["nvmlDeviceGetPcieReplayCounter"] = pynvml.NVML_ERROR_UNKNOWN  # a passing failure
    nvml = FakeNvml([gpu])
    c = collector(nvml)
    for _ in range(5):
        (point,) = [p for p in c.collect(NOW_NS) if p.measurement == GPU_MEASUREMENT.name]
    assert (
        "fan_speed_percent" not in point.fields and "memory_temperature_celsius" not in point.fields
    )
    assert nvml.calls["nvmlDeviceGetFanSpeed"] == 1
    assert (
        nvml.calls["nvmlDeviceGetFieldValues"] == 3
    )  # memory temperature, NVLink rx, tx: once each
    assert nvml.calls["nvmlDeviceGetPcieReplayCounter"] == 5  # asked again: it may come back
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 5
    del gpu.errors["nvmlDeviceGetPcieReplayCounter"]
    (point,) = [p for p in c.collect(NOW_NS) if p.measurement == GPU_MEASUREMENT.name]
    assert point.fields["pcie_replays"] == 3.0


def test_a_driver_older_than_535_gives_the_throttle_reasons_under_their_old_name() -> None:
    gpu = throttled_h100()
    gpu.old_driver = True
    nvml = FakeNvml([gpu])
    c = collector(nvml)
    for _ in range(3):
        (point,) = [p for p in c.collect(NOW_NS) if p.measurement == GPU_MEASUREMENT.name]
    assert point.fields["throttle_power_cap"] == 1.0 and point.fields["throttle_idle"] == 0.0
    assert nvml.calls["nvmlDeviceGetCurrentClocksEventReasons"] == 1
    assert nvml.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 3


# --- events (issue 22, point 3) --------------------------------------------------------
def _wait_for(got: list, count: int, timeout: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{count} event(s) not emitted in {timeout} s: {got}"
        time.sleep(0.01)


def _families(metrics) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.collect()
        for s in family.samples
    }


def test_an_xid_is_an_event_within_a_second_and_counted_and_a_lost_gpu_leaves_the_count() -> None:
    nvml = FakeNvml(two_h100s())
    c = collector(nvml)
    got: list = []
    metrics = c.watch_events(got.extend)
    assert _families(metrics) == {}  # nothing before NVML starts
    try:
        c.collect(NOW_NS)
        nvml.inject(0, pynvml.nvmlEventTypeXidCriticalError, 79)
        _wait_for(got, 1)
        (event,) = got
        assert event.measurement == "event"
        assert event.tags["name"] == "gpu_xid" and event.tags["source"] == "nvml"
        assert event.tags["gpu"] == "0" and event.tags["gpu_uuid"] == UUID0
        assert json.loads(event.fields["metadata"]) == {
            "gpu": 0,
            "xid": 79,
            "meaning": "GPU has fallen off the bus",
        }
        validate_point(event)  # what the delivery checks before the store
        assert abs(event.time_ns - time.time_ns()) < 2 * 10**9  # when it happened
        ids = (("environment", IDENTITY["environment"]), ("worker", IDENTITY["worker"]))
        samples = _families(metrics)
        assert (
            samples[
                (
                    "fleetgauge_gpu_xid_errors_total",
                    (*ids[:1], ("gpu", "0"), *ids[1:], ("xid", "79")),
                )
            ]
            == 1.0
        )
        assert samples[("fleetgauge_gpus", ids)] == 2.0
        nvml.inject(1, pynvml.nvmlEventTypeDoubleBitEccError)
        _wait_for(got, 2)
        assert got[1].tags["name"] == "gpu_ecc_double_bit" and got[1].tags["gpu"] == "1"
        nvml.inject(1, pynvml.nvmlEventTypePState)  # not registered: no event
        nvml.gpus[1].lost = True
        c.collect(NOW_NS)
        c.collect(NOW_NS)  # lost once, reported once
        assert [e.tags["name"] for e in got] == ["gpu_xid", "gpu_ecc_double_bit", "gpu_lost"]
        assert _families(metrics)[("fleetgauge_gpus", ids)] == 1.0
    finally:
        c.close()
    (event_set,) = nvml.event_sets
    assert event_set.freed


# --- MIG (issue 22, point 4) ------------------------------------------------------------
def test_mig_instances_are_reported_beside_their_gpu_with_their_own_memory() -> None:
    mig_gpu = FakeGpu(
        UUID0,
        memory_used=30 * GIB,
        mig=[
            FakeMig(gpu_instance=1, compute_instance=0, memory_total=20 * GIB, memory_used=5 * GIB),
            FakeMig(
                gpu_instance=2, compute_instance=0, memory_total=40 * GIB, memory_used=25 * GIB
            ),
        ],
    )
    consumer = FakeGpu(UUID1, mig_capable=False)  # no MIG on this board: asked once
    nvml = FakeNvml([mig_gpu, consumer])
    c = collector(nvml)
    for _ in range(3):
        points = check_points(c.collect(NOW_NS))
    migs = {
        (p.tags[GPU], p.tags["gpu_instance"], p.tags["compute_instance"]): p.fields
        for p in points
        if p.measurement == "gpu_mig"
    }
    assert migs == {
        ("0", "1", "0"): {
            "memory_used_bytes": 5 * GIB,
            "memory_total_bytes": 20 * GIB,
            "memory_used_percent": 25.0,
        },
        ("0", "2", "0"): {
            "memory_used_bytes": 25 * GIB,
            "memory_total_bytes": 40 * GIB,
            "memory_used_percent": 62.5,
        },
    }
    assert set(by_tag(points, GPU_MEASUREMENT.name, GPU)) == {"0", "1"}  # the parents stay
    assert nvml.calls["nvmlDeviceGetMigMode"] == 3 + 1  # the consumer board: once
    nvml.gpus[0].mig = None  # MIG mode turned off
    assert not [p for p in c.collect(NOW_NS) if p.measurement == "gpu_mig"]


# --- GPM (issue 22, point 2) -------------------------------------------------------------
def test_gpm_utilisation_comes_from_two_samples_and_is_absent_where_unsupported() -> None:
    older = FakeGpu(UUID1)  # an A100-class board: no GPM
    nvml = FakeNvml([throttled_h100(), older])
    c = collector(nvml)
    first = by_tag(check_points(c.collect(NOW_NS)), GPU_MEASUREMENT.name, GPU)
    gpm = (
        "sm_active_percent",
        "sm_occupancy_percent",
        "tensor_active_percent",
        "dram_bandwidth_percent",
    )
    assert not set(gpm) & set(first["0"])  # one sample: no interval yet
    for _ in range(3):
        fields = by_tag(check_points(c.collect(NOW_NS)), GPU_MEASUREMENT.name, GPU)
        assert [fields["0"][k] for k in gpm] == [71.5, 43.0, 38.25, 55.0]
        assert not set(gpm) & set(fields["1"])  # absent, not 0
    assert nvml.calls["nvmlGpmMetricsGet"] == 3
    assert nvml.calls["nvmlGpmSampleAlloc"] == 2  # two buffers, reused in turn


def test_nvlink_throughput_is_a_rate_of_its_counters_and_absent_without_nvlink() -> None:
    linked = throttled_h100()
    linked.nvlink_kib = (1_000_000, 2_000_000)
    pcie_only = FakeGpu(UUID1)
    nvml, clock = FakeNvml([linked, pcie_only]), FakeClock()
    c = collector(nvml, clock=clock)
    first = by_tag(check_points(c.collect(NOW_NS)), GPU_MEASUREMENT.name, GPU)
    assert "nvlink_receive_bytes_per_second" not in first["0"]  # one reading: no rate yet
    linked.nvlink_kib = (1_000_000 + 2 * 500_000, 2_000_000 + 2 * 250_000)
    clock.now += 2.0
    fields = by_tag(check_points(c.collect(NOW_NS)), GPU_MEASUREMENT.name, GPU)
    assert fields["0"]["nvlink_receive_bytes_per_second"] == 500_000 * 1024
    assert fields["0"]["nvlink_transmit_bytes_per_second"] == 250_000 * 1024
    assert "nvlink_receive_bytes_per_second" not in fields["1"]
