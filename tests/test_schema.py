"""The catalogue's own rules: units in names, Prometheus names by convention, validation."""

from __future__ import annotations

import re

import pytest

from fleetgauge import catalogue
from fleetgauge.catalogue import MEASUREMENTS, Point, prometheus_name
from fleetgauge.validation import InvalidPoint, validate_point

UNIT_SUFFIX = {
    "percent": "_percent",
    "bytes": "_bytes",
    "bytes_per_second": "_bytes_per_second",
    "celsius": "_celsius",
    "watts": "_watts",
    "cores": "_cores",
    "hertz": "_hertz",
    "joules": "_joules",
}


@pytest.mark.parametrize("m", MEASUREMENTS.values(), ids=lambda m: m.name)
def test_every_field_name_carries_its_unit_and_has_a_description(m: catalogue.Measurement) -> None:
    for f in m.fields:
        assert f.description, (m.name, f.name)
        if f.unit in UNIT_SUFFIX:
            assert f.name.endswith(UNIT_SUFFIX[f.unit]), (m.name, f.name)
        else:
            assert not any(f.name.endswith(s) for s in UNIT_SUFFIX.values()), (m.name, f.name)


def test_prometheus_names_follow_prometheus_conventions() -> None:
    seen = set()
    for m in MEASUREMENTS.values():
        for f in m.fields:
            name, factor = prometheus_name(m, f)
            assert re.fullmatch(r"fleetgauge_[a-z0-9_]+", name), name
            assert not name.endswith("_percent"), name
            assert name not in seen
            seen.add(name)
            if f.unit == "percent":
                assert name.endswith("_ratio") and factor == 0.01
    assert prometheus_name(catalogue.MEMORY, catalogue.MEMORY.get_field("used_percent")) == (
        "fleetgauge_memory_used_ratio",
        0.01,
    )


def test_validation_names_the_part_at_fault() -> None:
    ok = {"environment": "e", "worker": "w"}
    cases = [
        (Point("cpu", {"environment": "e"}, {"usage_percent": 1.0}, 0), "'worker'"),
        (Point("cpu", ok, {"usage_percent": "high"}, 0), "cpu.usage_percent must be a number"),
        (Point("cpu", ok, {"usage_percent": float("inf")}, 0), "must be finite"),
        (Point("cpu", ok, {"usage_percent": True}, 0), "must be a number"),
        (Point("cpu", {**ok, "time": "x"}, {"usage_percent": 1.0}, 0), "'time' is reserved"),
        (Point("cpu", {**ok, "k": "\ud800"}, {"usage_percent": 1.0}, 0), "lone surrogate"),
        (Point("disk", ok, {"used_percent": 1.0}, 0), "'mount'"),
        (
            Point(
                "list_metric",
                {"environment": "e", "metric": "m", "pipeline": "p"},
                {"value": 1.0, "step": 1.5},
                0,
            ),
            "list_metric.step must be an integer",
        ),
        (Point("cpu", ok, {"usage_percent": 1.0}, 1.5), "integer nanoseconds"),
    ]
    for point, message in cases:
        with pytest.raises(InvalidPoint, match=re.escape(message)):
            validate_point(point)
