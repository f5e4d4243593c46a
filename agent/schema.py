"""The catalogue: every measurement, tag and field fleetgauge stores or exposes.

This module is the single source of truth for names. The stores, the collectors,
the push endpoint, the dashboard, the Prometheus exposition and the Grafana JSON
all take their names from here; nothing else spells a measurement or field name.

Naming rules: a field name carries its unit (``_percent``, ``_bytes``,
``_bytes_per_second``, ``_celsius``, ``_watts``, ``_cores``); counts and
dimensionless values carry none. Prometheus names follow Prometheus conventions
(``fleetgauge_`` prefix, base units, ratios instead of percent), derived by
:func:`prometheus_name` rather than typed by hand.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Family",
    "Field",
    "Measurement",
    "Point",
    "Tier",
    "TIERS",
    "MEASUREMENTS",
    "RESOURCE_MEASUREMENTS",
    "measurement",
    "prometheus_name",
    "validate_point",
    "InvalidPoint",
    "MAX_NAME_LENGTH",
    "RESERVED_TAG_KEYS",
    "HealthMetric",
    "AGENT_HEALTH",
]

MAX_NAME_LENGTH = 256
"""Longest measurement/tag/field name or tag value accepted, in characters."""


class Family(StrEnum):
    """What a measurement describes; decides required tags and default rollups."""

    RESOURCE = "resource"
    PIPELINE = "pipeline"
    LIST = "list"
    EVENT = "event"
    EXECUTION = "execution"


class Point(NamedTuple):
    """One timestamped observation: the unit every collector, store and export handles."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float | int | str]
    time_ns: int


@dataclass(frozen=True)
class Field:
    """A field of a measurement: its name (with unit suffix), unit and meaning."""

    name: str
    unit: str
    description: str
    type: type = float


@dataclass(frozen=True)
class Measurement:
    """A measurement: its family, identity tags, device tag and fields."""

    name: str
    family: Family
    description: str
    fields: tuple[Field, ...]
    device_tags: tuple[str, ...] = ()
    tiered: bool = True
    field_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", tuple(f.name for f in self.fields))

    @property
    def required_tags(self) -> tuple[str, ...]:
        """Tags every point of this measurement must carry."""
        return REQUIRED_TAGS[self.family] + self.device_tags

    def get_field(self, name: str) -> Field:
        """The field called ``name``; KeyError when the catalogue has none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"measurement {self.name!r} has no field {name!r}")


# --- tags -------------------------------------------------------------------
ENVIRONMENT = "environment"
WORKER = "worker"
GPU = "gpu"
GPU_UUID = "gpu_uuid"
GPU_NAME = "gpu_name"
CORE = "core"
MOUNT = "mount"
DEVICE = "device"
INTERFACE = "interface"
PID = "pid"
PROCESS = "process"
PIPELINE = "pipeline"
DEPLOYMENT = "deployment"
METRIC = "metric"
EXECUTION_ID = "execution_id"
EVENT_NAME = "name"
EVENT_SOURCE = "source"

REQUIRED_TAGS: dict[Family, tuple[str, ...]] = {
    Family.RESOURCE: (ENVIRONMENT, WORKER),
    Family.PIPELINE: (ENVIRONMENT, METRIC),
    Family.LIST: (ENVIRONMENT, METRIC),
    Family.EVENT: (ENVIRONMENT, EVENT_NAME),
    Family.EXECUTION: (ENVIRONMENT, PIPELINE, EXECUTION_ID),
}

RESERVED_TAG_KEYS = frozenset({"time", "_measurement", "_field", "_start", "_stop"})
"""Tag keys no point may use: InfluxDB and the CSV export give them a meaning."""

PIPELINE_TAGS = (ENVIRONMENT, PIPELINE, DEPLOYMENT, METRIC, EXECUTION_ID)
"""Tags of a pipeline or list metric, in the order exports show them."""
EVENT_TAGS = (ENVIRONMENT, EVENT_NAME, EVENT_SOURCE, DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Tags of an event, in the order exports show them."""

# --- fields -----------------------------------------------------------------
PERCENT, BYTES, BYTES_PER_SECOND = "percent", "bytes", "bytes_per_second"
CELSIUS, WATTS, CORES, COUNT, LOAD = "celsius", "watts", "cores", "count", "load"


def _f(name: str, unit: str, description: str, type_: type = float) -> Field:
    return Field(name, unit, description, type_)


CPU = Measurement(
    "cpu",
    Family.RESOURCE,
    "Processor use of the whole worker.",
    (
        _f("usage_percent", PERCENT, "CPU time in use over the sample interval, all cores"),
        _f("load1", LOAD, "1-minute load average"),
        _f("load5", LOAD, "5-minute load average"),
        _f("load15", LOAD, "15-minute load average"),
        _f("logical_count", COUNT, "Logical CPUs the worker has"),
    ),
)
CPU_CORE = Measurement(
    "cpu_core",
    Family.RESOURCE,
    "Processor use of one logical core.",
    (_f("usage_percent", PERCENT, "Time this core was busy over the sample interval"),),
    device_tags=(CORE,),
)
MEMORY = Measurement(
    "memory",
    Family.RESOURCE,
    "Main memory and swap of the worker.",
    (
        _f("used_bytes", BYTES, "Memory in use (total minus available)"),
        _f("available_bytes", BYTES, "Memory available to new processes without swapping"),
        _f("total_bytes", BYTES, "Installed memory"),
        _f("used_percent", PERCENT, "Memory in use as a share of total"),
        _f("swap_used_bytes", BYTES, "Swap in use"),
        _f("swap_used_percent", PERCENT, "Swap in use as a share of swap total"),
    ),
)
DISK = Measurement(
    "disk",
    Family.RESOURCE,
    "Space of one mounted filesystem.",
    (
        _f("used_bytes", BYTES, "Space in use"),
        _f("total_bytes", BYTES, "Size of the filesystem"),
        _f("used_percent", PERCENT, "Space in use as a share of the space users can have"),
    ),
    device_tags=(MOUNT,),
)
DISK_IO = Measurement(
    "disk_io",
    Family.RESOURCE,
    "Throughput of one block device.",
    (
        _f("read_bytes_per_second", BYTES_PER_SECOND, "Bytes read per second"),
        _f("write_bytes_per_second", BYTES_PER_SECOND, "Bytes written per second"),
    ),
    device_tags=(DEVICE,),
)
NETWORK = Measurement(
    "network",
    Family.RESOURCE,
    "Throughput of one network interface.",
    (
        _f("receive_bytes_per_second", BYTES_PER_SECOND, "Bytes received per second"),
        _f("transmit_bytes_per_second", BYTES_PER_SECOND, "Bytes sent per second"),
    ),
    device_tags=(INTERFACE,),
)
GPU_MEASUREMENT = Measurement(
    "gpu",
    Family.RESOURCE,
    "One GPU, read through NVML.",
    (
        _f("utilization_percent", PERCENT, "Time a kernel ran on the GPU over the last period"),
        _f("memory_used_bytes", BYTES, "GPU memory in use"),
        _f("memory_total_bytes", BYTES, "GPU memory installed"),
        _f("memory_used_percent", PERCENT, "GPU memory in use as a share of total"),
        _f("temperature_celsius", CELSIUS, "GPU core temperature"),
        _f("power_draw_watts", WATTS, "Power drawn by the board"),
        _f("power_limit_watts", WATTS, "Power limit the board enforces"),
    ),
    device_tags=(GPU,),
)
GPU_PROCESS = Measurement(
    "gpu_process",
    Family.RESOURCE,
    "GPU memory held by one process, where the driver reports it.",
    (_f("memory_used_bytes", BYTES, "GPU memory used by the process"),),
    device_tags=(GPU, PID),
)
CONTAINER = Measurement(
    "container",
    Family.RESOURCE,
    "Use against the limits of the cgroup the agent runs in.",
    (
        _f("cpu_limit_cores", CORES, "CPU quota of the cgroup, in cores"),
        _f("cpu_used_percent", PERCENT, "CPU use as a share of the cgroup's quota"),
        _f("memory_limit_bytes", BYTES, "Memory limit of the cgroup"),
        _f("memory_used_bytes", BYTES, "Memory charged to the cgroup"),
        _f("memory_used_percent", PERCENT, "Memory use as a share of the cgroup's limit"),
    ),
)
PIPELINE_METRIC = Measurement(
    "pipeline_metric",
    Family.PIPELINE,
    "One value a deployed model or pipeline recorded (for example score=1 per prediction).",
    (_f("value", "", "The recorded value"),),
)
LIST_METRIC = Measurement(
    "list_metric",
    Family.LIST,
    "One element of a list metric: a value per step or epoch.",
    (_f("value", "", "The recorded value"), _f("step", COUNT, "Step or epoch index", int)),
    tiered=False,
)
EVENT = Measurement(
    "event",
    Family.EVENT,
    "Something that happened at a wall-clock time (checkpoint_started, ...).",
    (_f("metadata", "", "Small JSON object describing the event", str),),
    tiered=False,
)

EXECUTION = Measurement(
    "execution",
    Family.EXECUTION,
    "An execution (one run of a pipeline) started, with the inputs it was given.",
    (_f("inputs", "", "JSON object of input names to values (learning_rate=0.001, ...)", str),),
    tiered=False,
)
EXECUTION_END = Measurement(
    "execution_end",
    Family.EXECUTION,
    "An execution ended, and how.",
    (_f("status", "", "How it ended: succeeded or failed", str),),
    tiered=False,
)
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
EXECUTION_STATUSES = (RUNNING, SUCCEEDED, FAILED)
"""An execution is running from its start record until an end record says how it ended."""
END_STATUSES = (SUCCEEDED, FAILED)

RESOURCE_MEASUREMENTS: tuple[Measurement, ...] = (
    CPU,
    CPU_CORE,
    MEMORY,
    DISK,
    DISK_IO,
    NETWORK,
    GPU_MEASUREMENT,
    GPU_PROCESS,
    CONTAINER,
)
MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (*RESOURCE_MEASUREMENTS, PIPELINE_METRIC, LIST_METRIC, EVENT, EXECUTION, EXECUTION_END)
}


def measurement(name: str) -> Measurement:
    """The catalogue entry called ``name``; a clear KeyError naming the known ones."""
    try:
        return MEASUREMENTS[name]
    except KeyError:
        known = ", ".join(MEASUREMENTS)
        raise KeyError(f"unknown measurement {name!r} (known: {known})") from None


# --- rollup tiers -----------------------------------------------------------
class Tier(NamedTuple):
    """A rollup tier: per bucket of ``width_ns`` it keeps count, sum, min and max per field."""

    name: str
    width_ns: int


_S = 1_000_000_000
TIERS: tuple[Tier, ...] = (Tier("1m", 60 * _S), Tier("10m", 600 * _S), Tier("1h", 3600 * _S))
"""Rollup tiers, finest first. Raw points are the implicit finest level."""

TIER_AGGREGATES = ("count", "sum", "min", "max")


def tier_measurement(name: str, tier: Tier) -> str:
    """Name of the InfluxDB measurement that holds ``tier`` of measurement ``name``."""
    return f"{name}_{tier.name}"


def tier_field(field_name: str, aggregate: str) -> str:
    """Name of the InfluxDB field that holds one aggregate of a field in a tier."""
    return f"{field_name}_{aggregate}"


# --- Prometheus ---------------------------------------------------------------
PROMETHEUS_PREFIX = "fleetgauge_"
_PROMETHEUS_UNITS = {PERCENT: ("ratio", 0.01)}


def prometheus_name(m: Measurement, f: Field) -> tuple[str, float]:
    """Prometheus metric name for a field and the factor that converts its value.

    Percentages become ratios (0-1), as Prometheus conventions ask for base units.
    """
    name, factor = f.name, 1.0
    if f.unit in _PROMETHEUS_UNITS:
        suffix, factor = _PROMETHEUS_UNITS[f.unit]
        name = name.removesuffix(f"_{f.unit}") + f"_{suffix}"
    return f"{PROMETHEUS_PREFIX}{m.name}_{name}", factor


class HealthMetric(NamedTuple):
    """One metric about the agent itself, exposed on its ``/metrics``."""

    name: str  # full Prometheus name; counters end in _total
    kind: str  # "counter", "gauge" or "histogram"
    description: str
    labels: tuple[str, ...] = ()


AGENT_LABELS = (WORKER, ENVIRONMENT)
"""Labels every agent-health metric carries, so one Prometheus can watch a fleet."""
DROP_REASON = "reason"
"""Label of the dropped-points counter: spool_full, rejected, invalid, spool_error."""

_H = PROMETHEUS_PREFIX + "agent_"
AGENT_SAMPLES = HealthMetric(_H + "samples_total", "counter", "Samples taken (one per interval)")
AGENT_SAMPLE_SECONDS = HealthMetric(
    _H + "sample_duration_seconds", "histogram", "Time one sample of every collector took"
)
AGENT_COLLECTOR_ERRORS = HealthMetric(
    _H + "collector_errors_total", "counter", "Collector runs that failed", ("collector",)
)
AGENT_POINTS_WRITTEN = HealthMetric(
    _H + "points_written_total", "counter", "Points the store acknowledged"
)
AGENT_POINTS_SPOOLED = HealthMetric(
    _H + "points_spooled_total", "counter", "Points put in the on-disk spool (store down)"
)
AGENT_POINTS_DROPPED = HealthMetric(
    _H + "points_dropped_total", "counter", "Points given up, by reason", (DROP_REASON,)
)
AGENT_WRITE_ERRORS = HealthMetric(
    _H + "write_errors_total", "counter", "Store writes that failed (unreachable, 5xx or 4xx)"
)
AGENT_LAST_WRITE = HealthMetric(
    _H + "last_write_timestamp_seconds", "gauge", "Unix time of the last successful write"
)
AGENT_SPOOL_BYTES = HealthMetric(_H + "spool_bytes", "gauge", "Bytes waiting in the spool")
AGENT_SPOOL_POINTS = HealthMetric(_H + "spool_points", "gauge", "Points waiting in the spool")


# --- the push endpoint and the recording SDK -----------------------------------
PUSH_METRICS_PATH = "/v1/metrics"
"""``POST {"metrics": [item, ...]}``: values recorded by models and pipelines."""
PUSH_EVENTS_PATH = "/v1/events"
"""``POST {"events": [item, ...]}``: named events with a wall-clock time."""
PUSH_METRIC_KEYS = ("metric", "value", DEPLOYMENT, PIPELINE, EXECUTION_ID, "step", "time", "tags")
"""Every key a pushed metric item may have; any other key is refused."""
PUSH_EVENT_KEYS = (EVENT_NAME, EVENT_SOURCE, "time", "metadata", DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Every key a pushed event item may have; any other key is refused."""
PUSH_EXECUTIONS_PATH = "/v1/executions"
"""``POST {"executions": [item, ...]}``: an execution started (status running) or ended."""
PUSH_EXECUTION_KEYS = (EXECUTION_ID, PIPELINE, "status", "time", "inputs")
"""Every key a pushed execution item may have; any other key is refused."""
MAX_INPUTS_BYTES = 4096
"""Largest ``inputs`` of one execution, as compact JSON in UTF-8."""
PUSH_CONTEXT = (DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Context a pushed item may carry; a metric item needs a deployment or a pipeline."""
PUSH_TAG_KEYS_TAKEN = frozenset(
    {ENVIRONMENT, WORKER, METRIC, EVENT_NAME, EVENT_SOURCE}
    | RESERVED_TAG_KEYS
    | set(PUSH_METRIC_KEYS)
    | set(PUSH_EVENT_KEYS)
)
"""Names a pushed item's extra ``tags`` may not use: they mean something already."""
PUSH_IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Request header naming one batch; a batch sent again under the same key is stored once."""
MAX_PUSH_TAGS = 16
"""Most extra ``tags`` one pushed metric item may carry."""
MAX_PUSH_ITEMS = 10_000
"""Most items in one push request."""
MAX_EVENT_METADATA_BYTES = 4096
"""Largest ``metadata`` of one event, as compact JSON in UTF-8."""
MAX_STEP = 2**53
"""Steps are integers in [0, MAX_STEP): exact in JSON numbers and in every store."""

_P = PROMETHEUS_PREFIX + "pipeline_"
PUSH_LABELS = (DEPLOYMENT, PIPELINE, METRIC)
"""Labels of the per-metric Prometheus series; an absent deployment or pipeline is ''."""
PIPELINE_VALUES = HealthMetric(
    _P + "values_total", "counter", "Values recorded per metric (pushed to this agent)", PUSH_LABELS
)
PIPELINE_LAST_VALUE = HealthMetric(
    _P + "last_value", "gauge", "Last value recorded per metric", PUSH_LABELS
)
PIPELINE_VALUE = HealthMetric(
    _P + "value", "histogram", "Distribution of a metric declared as a histogram", PUSH_LABELS
)
PIPELINE_SERIES = (PIPELINE_VALUES, PIPELINE_LAST_VALUE, PIPELINE_VALUE)
"""Per-metric series the agent exposes for pushed values (labels: AGENT_LABELS + PUSH_LABELS)."""
AGENT_PUSH_REQUESTS = HealthMetric(
    _H + "push_requests_total", "counter", "Push requests answered, by HTTP status", ("code",)
)
AGENT_PUSH_ACCEPTED = HealthMetric(
    _H + "push_items_accepted_total", "counter", "Pushed metric values and events accepted"
)
AGENT_PUSH_UNEXPOSED = HealthMetric(
    _H + "push_series_unexposed_total",
    "counter",
    "Pushed values stored but not shown on /metrics: the per-metric series limit was reached",
)
AGENT_HEALTH = (
    AGENT_SAMPLES,
    AGENT_SAMPLE_SECONDS,
    AGENT_COLLECTOR_ERRORS,
    AGENT_POINTS_WRITTEN,
    AGENT_POINTS_SPOOLED,
    AGENT_POINTS_DROPPED,
    AGENT_WRITE_ERRORS,
    AGENT_LAST_WRITE,
    AGENT_SPOOL_BYTES,
    AGENT_SPOOL_POINTS,
    AGENT_PUSH_REQUESTS,
    AGENT_PUSH_ACCEPTED,
    AGENT_PUSH_UNEXPOSED,
)
"""Every agent-health metric; Grafana boards and alert rules take names from here."""


# --- validation -------------------------------------------------------------
class InvalidPoint(ValueError):
    """A point that breaks the data model; the message names the part at fault."""


def validate_name(kind: str, value: object) -> str:
    """Check one name or tag value: a non-empty string of valid Unicode, bounded length."""
    if not isinstance(value, str):
        raise InvalidPoint(f"{kind} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidPoint(f"{kind} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidPoint(f"{kind} is {len(value)} characters long (limit {MAX_NAME_LENGTH})")
    if "\x00" in value:
        raise InvalidPoint(f"{kind} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPoint(f"{kind} is not valid Unicode (lone surrogate)") from None
    return value


_CHECKED_TAGS: dict[tuple[object, ...], None] = {}
_MAX_CHECKED_TAGS = 100_000
_FIELD_TYPES = {name: {f.name: f for f in m.fields} for name, m in MEASUREMENTS.items()}


def validate_point(point: Point) -> Measurement:
    """Check a point against the catalogue before it may reach a store.

    Raises InvalidPoint naming the measurement, tag or field at fault. A tag set
    that passed once is remembered (bounded), so the points of a known series
    only have their fields and time checked.
    """
    m = MEASUREMENTS.get(point.measurement)
    if m is None:
        raise InvalidPoint(f"unknown measurement {point.measurement!r}")
    try:
        key = (point.measurement, *point.tags.items())
        known = key in _CHECKED_TAGS
    except (TypeError, AttributeError):  # unhashable values or no mapping: the slow path says
        key, known = None, False
    if not known:
        _check_tags(m, point.tags)
        if key is not None:
            if len(_CHECKED_TAGS) >= _MAX_CHECKED_TAGS:
                _CHECKED_TAGS.clear()
            _CHECKED_TAGS[key] = None
    if not point.fields:
        raise InvalidPoint(f"{m.name} point has no fields")
    fields = _FIELD_TYPES[m.name]
    for name, value in point.fields.items():
        f = fields.get(name)
        if f is None:
            raise InvalidPoint(f"measurement {m.name!r} has no field {name!r}")
        if type(value) is not float or f.type is not float or value - value != 0.0:
            _check_field_value(m, f, value)
    if type(point.time_ns) is not int:
        raise InvalidPoint(f"{m.name} point time must be integer nanoseconds")
    return m


def _check_tags(m: Measurement, tags: Mapping[str, str]) -> None:
    if not isinstance(tags, Mapping):
        raise InvalidPoint(f"{m.name} point tags must be a mapping of names to text")
    for key, value in tags.items():
        validate_name("tag key", key)
        if key in RESERVED_TAG_KEYS or key in m.field_names:
            raise InvalidPoint(f"tag key {key!r} is reserved in measurement {m.name!r}")
        validate_name(f"tag {key!r}", value)
    for key in m.required_tags:
        if key not in tags:
            raise InvalidPoint(f"{m.name} point lacks the {key!r} tag")
    if m.family in (Family.PIPELINE, Family.LIST) and not (
        tags.get(DEPLOYMENT) or tags.get(PIPELINE)
    ):
        raise InvalidPoint(f"{m.name} point needs a 'deployment' or 'pipeline' tag")


def _check_field_value(m: Measurement, f: Field, value: object) -> None:
    if f.type is str:
        if not isinstance(value, str):
            raise InvalidPoint(f"{m.name}.{f.name} must be a string")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPoint(f"{m.name}.{f.name} must be a number, got {type(value).__name__}")
    if f.type is int and not isinstance(value, int):
        raise InvalidPoint(f"{m.name}.{f.name} must be an integer")
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidPoint(f"{m.name}.{f.name} must be finite, got {value}")


# --- executions ---------------------------------------------------------------
MAX_INPUTS = 64
"""Most inputs (name -> value) one execution may declare."""


def new_execution_id(time_ns: int) -> str:
    """A fresh execution id: its start second in UTC, then random hex.

    For example ``20261122T101500-3fa2c1d0``: ids sort by start time, and two
    runs started in the same second differ.
    """
    import secrets
    import time as _time

    stamp = _time.strftime("%Y%m%dT%H%M%S", _time.gmtime(time_ns // 1_000_000_000))
    return f"{stamp}-{secrets.token_hex(4)}"


def inputs_json(inputs: object) -> str:
    """An execution's inputs as compact JSON; InvalidPoint naming the input at fault.

    Inputs map names to text, finite numbers, true/false or null (numpy and
    other number types become plain numbers); at most :data:`MAX_INPUTS` of
    them and :data:`MAX_INPUTS_BYTES` of JSON.
    """
    import orjson

    if not isinstance(inputs, Mapping):
        raise InvalidPoint(f"inputs must be an object of names to values, got {_type(inputs)}")
    if len(inputs) > MAX_INPUTS:
        raise InvalidPoint(f"{len(inputs)} inputs, the limit is {MAX_INPUTS}")
    clean: dict[str, object] = {}
    for name, value in inputs.items():
        validate_name("input name", name)
        if value is None or isinstance(value, bool | str):
            if isinstance(value, str):
                validate_name(f"input {name!r}", value)
            clean[name] = value
        elif isinstance(value, numbers.Integral) and abs(int(value)) < 2**53:
            clean[name] = int(value)
        elif isinstance(value, numbers.Real) and float(value) - float(value) == 0.0:
            clean[name] = _shortest(value)
        elif type(value).__name__ in ("bool_", "bool"):  # numpy's bool, not a number type
            clean[name] = bool(value)
        else:
            raise InvalidPoint(
                f"input {name!r} must be text, a finite number, true/false or null,"
                f" got {_type(value)} {str(value)[:40]!r}"
            )
    text = orjson.dumps(clean).decode()
    if len(text.encode()) > MAX_INPUTS_BYTES:
        raise InvalidPoint(
            f"inputs are {len(text.encode())} bytes as JSON (limit {MAX_INPUTS_BYTES})"
        )
    return text


def _shortest(value: numbers.Real) -> float:
    """A float as the user wrote it: numpy's float32 0.001 stays 0.001, not 0.0010000000474."""
    if type(value) is float:
        return value
    try:
        return float(str(value))
    except ValueError:
        return float(value)


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__
