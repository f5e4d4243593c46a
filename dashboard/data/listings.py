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


def list_environments(
    store: StoreReader, start_ns: int, end_ns: int, starts: bool = True
) -> list[str]:
    """Environments with any resource sample, pipeline value or execution in [start, end),
    sorted (``starts=False``: not counting execution starts, for a caller that read them).

    Executions count by their start records and, for those never started, their census
    (what the write path keeps of their values, events and logs), not by their values:
    counting 10 million list points of a month took InfluxDB 4.8 s, the starts of their
    10,000 executions 60 ms; and the simple metrics of those executions (a series each,
    every tier) cost influxd about 200 ms of CPU a read. So an environment whose only
    data in the range are the values of an execution started before it is not listed
    (its agent's resource samples list it).
    """
    names = [*RESOURCE_NAMES, _CENSUS]
    if starts:
        names.append(_START)
    found = set(store.tag_values(catalogue.ENVIRONMENT, start_ns, end_ns, names, None, _COUNTED))
    found.update(  # a deployment's values: those without an execution id
        store.tag_values(
            catalogue.ENVIRONMENT, start_ns, end_ns, [_VALUES], _NO_EXECUTION, _COUNTED
        )
    )
    return sorted(found)


_START, _CENSUS = catalogue.EXECUTION.name, catalogue.EXECUTION_CENSUS.name
_VALUES = catalogue.PIPELINE_METRIC.name
_NO_EXECUTION = {catalogue.EXECUTION_ID: [""]}  # "": without the tag
_COUNTED = {
    **RESOURCE_FIELDS,
    _START: [catalogue.EXECUTION.get_field("inputs").name],
    _CENSUS: [catalogue.EXECUTION_CENSUS.fields[0].name],
}
