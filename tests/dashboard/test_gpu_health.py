"""The Resources page's GPU health on both stores: shares of the range throttled, ECC errors
counted in the range, XID events, worst first (issue 22, point 7)."""

from __future__ import annotations

import json

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.dashboard.data.gpu_health import read_gpu_health, read_heat_intervals
from fleetgauge.stores import Store

S = 1_000_000_000
MINUTE = 60 * S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def _gpu(worker: str, t: int, **fields: float) -> Point:
    tags = {catalogue.ENVIRONMENT: "prod", catalogue.WORKER: worker, catalogue.GPU: "0"}
    base = {"throttle_thermal_software": 0.0, "throttle_power_cap": 0.0}
    return Point(catalogue.GPU_MEASUREMENT.name, tags, {**base, **fields}, t)


def test_gpu_trouble_is_read_from_fields_and_events_worst_first(store: Store) -> None:
    points = []
    for i in range(60):
        t = T0 + i * MINUTE
        points.append(_gpu("hot", t, throttle_thermal_software=float(i < 15)))  # a quarter
        points.append(_gpu("capped", t, throttle_power_cap=1.0))
        points.append(_gpu("ecc", t, ecc_uncorrected_volatile_errors=float(i >= 30) * 2))
        points.append(_gpu("fine", t))
    tags = {
        catalogue.ENVIRONMENT: "prod",
        catalogue.WORKER: "xid",
        catalogue.EVENT_NAME: "gpu_xid",
        catalogue.EVENT_SOURCE: "nvml",
        catalogue.GPU: "1",
    }
    for i, xid in enumerate((79, 48, 79)):
        points.append(Point("event", tags, {"metadata": json.dumps({"xid": xid})}, T0 + i * S))
    store.write(points)
    troubles, gpus = read_gpu_health(store, T0, T0 + 60 * MINUTE, "prod")
    assert gpus == 5  # fine, hot, capped, ecc and the GPU of the XIDs
    assert [(t.worker, t.gpu) for t in troubles] == [
        ("xid", "1"),
        ("ecc", "0"),
        ("hot", "0"),
        ("capped", "0"),
    ]
    assert [t.summary for t in troubles] == [
        "XID 48, 79 (3 times)",
        "2 uncorrectable ECC errors",
        "slowed for heat 25% of the time",
        "at its power cap 100% of the time",
    ]
    assert [t.level for t in troubles] == ["critical", "critical", "warning", "info"]
    only_hot, _ = read_gpu_health(store, T0, T0 + 60 * MINUTE, "prod", ["hot"])
    assert [t.worker for t in only_hot] == ["hot"]


def test_heat_spans_merge_touching_buckets(store: Store) -> None:
    store.write(
        [
            _gpu("hot", T0 + i * MINUTE, throttle_thermal_software=float(i < 15 or i >= 50))
            for i in range(60)
        ]
    )
    spans = read_heat_intervals(store, T0, T0 + 60 * MINUTE, 60, "prod")
    assert spans == [(T0, T0 + 15 * MINUTE), (T0 + 50 * MINUTE, T0 + 60 * MINUTE)]
