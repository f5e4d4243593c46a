"""Reads every page makes: which environments have data in the chosen range."""

from __future__ import annotations

from fleetgauge import catalogue
from fleetgauge.dashboard.thresholds import RESOURCES
from fleetgauge.stores import StoreReader

__all__ = ["list_environments", "RESOURCE_NAMES"]

RESOURCE_NAMES = sorted({r.measurement.name for r in RESOURCES})
"""Measurements the resources page reads: the ones its cards and graphs draw."""


def _drawn_fields() -> dict[str, list[str]]:
    drawn: dict[str, list[str]] = {}
    for r in RESOURCES:
        for name, fields in [
            (r.measurement.name, r.fields),
            (catalogue.CONTAINER.name, [r.container_field] if r.container_field else []),
        ]:
            drawn.setdefault(name, []).extend(f for f in fields if f not in drawn.get(name, []))
    return drawn


RESOURCE_FIELDS = _drawn_fields()
"""Per measurement, the fields the page draws: a worker or environment is listed for a
point holding one of them (counted rather than every field, on InfluxDB)."""


def list_environments(store: StoreReader, start_ns: int, end_ns: int) -> list[str]:
    """Environments with any resource sample or pipeline value in [start, end), sorted."""
    names = [*RESOURCE_NAMES, catalogue.PIPELINE_METRIC.name, catalogue.LIST_METRIC.name]
    return store.tag_values(catalogue.ENVIRONMENT, start_ns, end_ns, names, None, RESOURCE_FIELDS)
