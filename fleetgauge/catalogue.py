"""The catalogue: every measurement, tag and field fleetgauge stores or exposes.

This module is the single source of truth for names. The stores, the collectors,
the push endpoint, the dashboard, the Prometheus exposition and the Grafana JSON
all take their names from here; nothing else spells a measurement or field name.
The rules a point must follow live in :mod:`fleetgauge.validation`, the push
wire format in :mod:`fleetgauge.protocol`.

Naming rules: a field name carries its unit (``_percent``, ``_bytes``,
``_bytes_per_second``, ``_celsius``, ``_watts``, ``_cores``); counts and
dimensionless values carry none. Prometheus names follow Prometheus conventions
(``fleetgauge_`` prefix, base units, ratios instead of percent), derived by
:func:`prometheus_name` rather than typed by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from fleetgauge.timeutil import NS_PER_S

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
    "RESERVED_TAG_KEYS",
    "HealthMetric",
    "AGENT_HEALTH",
]


class Family(StrEnum):
    """What a measurement describes; decides required tags and default rollups."""

    RESOURCE = "resource"
    PIPELINE = "pipeline"
    LIST = "list"
    EVENT = "event"
    EXECUTION = "execution"
    LOG = "log"
    SUMMARY = "summary"


class Point(NamedTuple):
    """One timestamped observation: the unit every collector, store and export handles."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float | int | str]
    time_ns: int


class Field(NamedTuple):
    """A field of a measurement: its name (with unit suffix), unit and meaning."""

    name: str
    unit: str
    description: str
    type: type = float


class Measurement:
    """A measurement: its family, identity tags, device tag and fields.

    Immutable; a plain class rather than a dataclass so that importing the
    catalogue (and with it ``import fleetgauge``) does not load ``dataclasses``.
    """

    __slots__ = ("name", "family", "description", "fields", "device_tags", "tiered", "field_names")

    def __init__(
        self,
        name: str,
        family: Family,
        description: str,
        fields: tuple[Field, ...],
        device_tags: tuple[str, ...] = (),
        tiered: bool = True,
    ) -> None:
        init = object.__setattr__
        init(self, "name", name)
        init(self, "family", family)
        init(self, "description", description)
        init(self, "fields", fields)
        init(self, "device_tags", device_tags)
        init(self, "tiered", tiered)
        init(self, "field_names", tuple(f.name for f in fields))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"measurement {self.name!r} is read-only")

    def __repr__(self) -> str:
        return f"Measurement({self.name!r}, {self.family.value}, fields={self.field_names})"

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
GPU_PCI_BUS_ID = "gpu_pci_bus_id"
GPU_INSTANCE = "gpu_instance"
COMPUTE_INSTANCE = "compute_instance"
GPU_DRIVER_VERSION = "gpu_driver_version"
CORE = "core"
MOUNT = "mount"
DEVICE = "device"
INTERFACE = "interface"
PID = "pid"
PROCESS = "process"
CONTAINER_ID = "container_id"
POD_UID = "pod_uid"
PIPELINE = "pipeline"
DEPLOYMENT = "deployment"
METRIC = "metric"
EXECUTION_ID = "execution_id"
EVENT_NAME = "name"
EVENT_SOURCE = "source"
LEVEL = "level"
LOGGER = "logger"

REQUIRED_TAGS: dict[Family, tuple[str, ...]] = {
    Family.RESOURCE: (ENVIRONMENT, WORKER),
    Family.PIPELINE: (ENVIRONMENT, METRIC),
    Family.LIST: (ENVIRONMENT, METRIC),
    Family.EVENT: (ENVIRONMENT, EVENT_NAME),
    Family.EXECUTION: (ENVIRONMENT, PIPELINE, EXECUTION_ID),
    Family.LOG: (ENVIRONMENT, LEVEL),
    Family.SUMMARY: (ENVIRONMENT, EXECUTION_ID),
}

RESERVED_TAG_KEYS = frozenset({"time", "_measurement", "_field", "_start", "_stop"})
"""Tag keys no point may use: InfluxDB and the CSV export give them a meaning."""

PIPELINE_TAGS = (ENVIRONMENT, WORKER, PIPELINE, DEPLOYMENT, METRIC, EXECUTION_ID)
"""Tags of a pipeline or list metric, in the order exports show them."""
ATTRIBUTION_TAGS = (PROCESS, DEPLOYMENT, PIPELINE, EXECUTION_ID, CONTAINER_ID, POD_UID)
"""Tags saying whose a process's use is (``process`` and ``gpu_process`` points): its
command name, the deployment, pipeline and execution it registered for, its container."""
EVENT_TAGS = (ENVIRONMENT, WORKER, EVENT_NAME, EVENT_SOURCE, DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Tags of an event, in the order exports show them."""
LOG_TAGS = (ENVIRONMENT, WORKER, PIPELINE, DEPLOYMENT, EXECUTION_ID, LEVEL, LOGGER)
"""Tags of a log line, in the order exports show them."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""Levels of a log line, lowest first (Python's ``logging`` names; others map to these)."""

# --- fields -----------------------------------------------------------------
PERCENT, BYTES, BYTES_PER_SECOND = "percent", "bytes", "bytes_per_second"
CELSIUS, WATTS, CORES, COUNT, LOAD = "celsius", "watts", "cores", "count", "load"
HERTZ, JOULES, SECONDS = "hertz", "joules", "seconds"
FLAG, STATE = "flag", "state"
"""A 0/1 field (1: the condition holds), and a numbered state such as a GPU's P-state."""


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
    "One GPU, read through NVML: use, clocks, power, PCIe, ECC and remapped rows, and why"
    " its clocks are held down (throttle reasons as 0/1 fields). A field the board does"
    " not report is absent, not 0.",
    (
        _f("utilization_percent", PERCENT, "Time a kernel ran on the GPU over the last period"),
        _f("memory_used_bytes", BYTES, "GPU memory in use"),
        _f("memory_total_bytes", BYTES, "GPU memory installed"),
        _f("memory_used_percent", PERCENT, "GPU memory in use as a share of total"),
        _f("temperature_celsius", CELSIUS, "GPU core temperature"),
        _f("power_draw_watts", WATTS, "Power drawn by the board"),
        _f("power_limit_watts", WATTS, "Power limit the board enforces"),
        _f(
            "memory_utilization_percent",
            PERCENT,
            "Time the memory controller was busy over the last period",
        ),
        _f("sm_clock_hertz", HERTZ, "Streaming-multiprocessor clock now"),
        _f("sm_clock_max_hertz", HERTZ, "Highest SM clock the board allows"),
        _f("memory_clock_hertz", HERTZ, "Memory clock now"),
        _f("memory_clock_max_hertz", HERTZ, "Highest memory clock the board allows"),
        _f("graphics_clock_hertz", HERTZ, "Graphics clock now"),
        _f("graphics_clock_max_hertz", HERTZ, "Highest graphics clock the board allows"),
        _f("memory_temperature_celsius", CELSIUS, "GPU memory (HBM) temperature, where reported"),
        _f("energy_joules", JOULES, "Energy used since the driver loaded (a counter)"),
        _f("performance_state", STATE, "Performance state: 0 (P0, fastest) to 15 (slowest)"),
        _f("fan_speed_percent", PERCENT, "Fan speed as a share of its maximum"),
        _f("pcie_receive_bytes_per_second", BYTES_PER_SECOND, "PCIe bytes received per second"),
        _f("pcie_transmit_bytes_per_second", BYTES_PER_SECOND, "PCIe bytes sent per second"),
        _f(
            "nvlink_receive_bytes_per_second",
            BYTES_PER_SECOND,
            "NVLink bytes received per second, all links",
        ),
        _f(
            "nvlink_transmit_bytes_per_second",
            BYTES_PER_SECOND,
            "NVLink bytes sent per second, all links",
        ),
        _f("pcie_replays", COUNT, "PCIe packets replayed since the driver loaded (a counter)"),
        _f("encoder_utilization_percent", PERCENT, "Time the video encoder was busy"),
        _f("decoder_utilization_percent", PERCENT, "Time the video decoder was busy"),
        _f("ecc_corrected_volatile_errors", COUNT, "Corrected ECC errors since the driver loaded"),
        _f(
            "ecc_uncorrected_volatile_errors",
            COUNT,
            "Uncorrected ECC errors since the driver loaded",
        ),
        _f("ecc_corrected_aggregate_errors", COUNT, "Corrected ECC errors over the board's life"),
        _f(
            "ecc_uncorrected_aggregate_errors",
            COUNT,
            "Uncorrected ECC errors over the board's life",
        ),
        _f("remapped_rows_correctable", COUNT, "Memory rows remapped for correctable errors"),
        _f("remapped_rows_uncorrectable", COUNT, "Memory rows remapped for uncorrectable errors"),
        _f("remapped_rows_pending", FLAG, "1: a remap waits for the next GPU reset"),
        _f("remapped_rows_failure", FLAG, "1: a row could not be remapped (replace the board)"),
        _f("throttle_power_cap", FLAG, "1: clocks held down by the software power cap"),
        _f("throttle_thermal_software", FLAG, "1: clocks held down by the driver for heat"),
        _f("throttle_thermal_hardware", FLAG, "1: clocks held down by the hardware for heat"),
        _f("throttle_hardware_slowdown", FLAG, "1: hardware slowdown (heat, power brake)"),
        _f("throttle_sync_boost", FLAG, "1: clocks held to match other GPUs (sync boost)"),
        _f("throttle_idle", FLAG, "1: clocks down because nothing runs"),
        _f(
            "throttle_applications_clocks",
            FLAG,
            "1: clocks capped by the applications clocks setting",
        ),
        _f("sm_active_percent", PERCENT, "Time the SMs had work (GPM, Hopper and later)"),
        _f(
            "sm_occupancy_percent",
            PERCENT,
            "Warps resident on the SMs, as a share of the most (GPM)",
        ),
        _f("tensor_active_percent", PERCENT, "Time the tensor cores were busy (GPM)"),
        _f("dram_bandwidth_percent", PERCENT, "DRAM bandwidth used, as a share of the peak (GPM)"),
    ),
    device_tags=(GPU,),
)
GPU_PROCESS = Measurement(
    "gpu_process",
    Family.RESOURCE,
    "GPU memory and use of one process on one GPU, where the driver reports them; tagged"
    " with the process's command name and, when it registered, its deployment, pipeline"
    " and execution.",
    (
        _f("memory_used_bytes", BYTES, "GPU memory used by the process"),
        _f("sm_utilization_percent", PERCENT, "The process's share of the GPU's SM time"),
        _f(
            "memory_utilization_percent",
            PERCENT,
            "The process's share of the GPU's memory-controller time",
        ),
    ),
    device_tags=(GPU, PID),
)
PROCESS_MEASUREMENT = Measurement(
    "process",
    Family.RESOURCE,
    "One process that registered with its agent (the SDK does): its CPU and memory, tagged"
    " with its pid, command name, deployment, pipeline and execution (and container and"
    " pod when it runs in one).",
    (
        _f("cpu_cores", CORES, "CPU in use over the sample interval, in cores"),
        _f("cpu_seconds", SECONDS, "CPU time used since the process started (user + system)"),
        _f("rss_bytes", BYTES, "Resident memory of the process"),
        _f("threads", COUNT, "Threads of the process"),
    ),
    device_tags=(PID,),
)
GPU_MIG = Measurement(
    "gpu_mig",
    Family.RESOURCE,
    "One MIG instance of a GPU in MIG mode, beside its parent GPU: its own memory.",
    (
        _f("memory_used_bytes", BYTES, "Memory in use in the MIG instance"),
        _f("memory_total_bytes", BYTES, "Memory of the MIG instance"),
        _f("memory_used_percent", PERCENT, "Memory in use as a share of the instance's"),
    ),
    device_tags=(GPU, GPU_INSTANCE, COMPUTE_INSTANCE),
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
    (
        _f("inputs", "", "JSON object of input names to values (learning_rate=0.001, ...)", str),
        _f("defaults", "", "JSON object of the inputs it took from defaults (not given)", str),
    ),
    tiered=False,
)
EXECUTION_END = Measurement(
    "execution_end",
    Family.EXECUTION,
    "An execution ended, and how, with what it produced.",
    (
        _f("status", "", "How it ended: succeeded or failed", str),
        _f("outputs", "", "JSON object of output names to values (model_path=..., ...)", str),
    ),
    tiered=False,
)
LOG = Measurement(
    "log",
    Family.LOG,
    "A log line of an execution or deployment (logging records, captured output).",
    (
        _f("message", "", "The line, at most 16 KiB of UTF-8", str),
        _f("cut_bytes", BYTES, "Bytes cut from an over-long message (absent when whole)", int),
    ),
    tiered=False,
)
EXECUTION_TAG = Measurement(
    "execution_tag",
    Family.EXECUTION,
    "Tags set on (or removed from) an execution; the latest write of a tag wins.",
    (_f("tags", "", "JSON object of tag names to text, or null for a tag removed", str),),
    tiered=False,
)
# Summaries the stores' write path keeps of what carries an execution id (see
# fleetgauge.stores.summaries): what a table of thousands of executions reads instead of
# every value. Never sent by clients; written by the store beside the points.
SOURCE = "source"
"""Tag of a summary: the measurement of the points it summarises."""
SUMMARY_STATS = (
    "count",
    "first_ns",
    "last_ns",
    "sum",
    "min",
    "max",
    "last",
    "step_lo",
    "step_hi",
    "ordered",
)
"""Keys of a ``series_summary``'s ``stats``: values written, times (ns since the epoch) of
the earliest and latest, their sum, min and max, the value at the highest step (list
metric) or the latest time (simple metric), the lowest and highest step, and 1 when every
step came after the one before (the last three for a list metric only)."""
CENSUS_STATS = ("count", "first_ns", "last_ns", "pipeline", "worker")
"""Keys of an ``execution_census``'s ``stats``: points written, times of the earliest and
latest, and the pipeline and worker tags of the first point that had one."""
SERIES_SUMMARY = Measurement(
    "series_summary",
    Family.SUMMARY,
    "One series of values of an execution as the store's writer saw it in one pass (a"
    " generation, told by the timestamp: its first value's time plus a random offset under"
    " 1 ms); tags: environment, execution_id, metric and source (the measurement).",
    (_f("stats", "", "JSON object of SUMMARY_STATS (one field: InfluxDB reads per field)", str),),
    tiered=False,
)
EXECUTION_CENSUS = Measurement(
    "execution_census",
    Family.SUMMARY,
    "When anything carrying the id of an execution whose start the store's writer did not"
    " see was recorded, as it saw them in one pass (a generation): what finds an execution"
    " whose start was never recorded.",
    (_f("stats", "", "JSON object of CENSUS_STATS", str),),
    tiered=False,
)
RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
EXECUTION_STATUSES = (RUNNING, SUCCEEDED, FAILED)
"""An execution is running from its start record until an end record says how it ended."""
UNKNOWN = "unknown"
SHOWN_STATUSES = (*EXECUTION_STATUSES, UNKNOWN)
"""What a reader may see: ``unknown`` is an execution whose start was never recorded, known
only by values (or an end) recorded with its id."""
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
    PROCESS_MEASUREMENT,
    GPU_MIG,
    CONTAINER,
)
MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (
        *RESOURCE_MEASUREMENTS,
        PIPELINE_METRIC,
        LIST_METRIC,
        EVENT,
        EXECUTION,
        EXECUTION_END,
        EXECUTION_TAG,
        LOG,
        SERIES_SUMMARY,
        EXECUTION_CENSUS,
    )
}
SUMMARIZED = (PIPELINE_METRIC.name, LIST_METRIC.name)
"""Measurements whose series carrying an execution id get a ``series_summary``."""
CENSUSED = (PIPELINE_METRIC.name, LIST_METRIC.name, EVENT.name, EXECUTION_END.name, LOG.name)
"""Measurements whose points carrying an execution id count in its ``execution_census``
(when the writer has not seen the execution's start)."""


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


TIERS: tuple[Tier, ...] = (
    Tier("1m", 60 * NS_PER_S),
    Tier("10m", 600 * NS_PER_S),
    Tier("1h", 3600 * NS_PER_S),
)
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
GPU_INFO_METRIC = f"{PROMETHEUS_PREFIX}gpu_info"
"""Always 1, one per GPU, labelled with what identifies the board, so series join other
tools' (dcgm-exporter's ``UUID``) by ``gpu_uuid`` (the ``*_info`` pattern)."""
GPU_INFO_LABELS = (GPU_UUID, GPU_NAME, GPU_PCI_BUS_ID, GPU_DRIVER_VERSION)
GPU_XID_EVENT = "gpu_xid"
"""Name of the ``event`` an XID error becomes (metadata: gpu, xid and its meaning)."""
GPU_ECC_DOUBLE_BIT_EVENT, GPU_ECC_SINGLE_BIT_EVENT = "gpu_ecc_double_bit", "gpu_ecc_single_bit"
GPU_LOST_EVENT = "gpu_lost"
"""Name of the ``event`` written when a GPU falls off the bus."""
GPUS_METRIC = f"{PROMETHEUS_PREFIX}gpus"
"""GPUs on the bus of the worker: one that falls off leaves the count (alert on a drop)."""
GPU_XID_METRIC = f"{PROMETHEUS_PREFIX}gpu_xid_errors_total"
"""XID errors NVML reported, per ``gpu`` and ``xid`` code (a counter)."""
GPU_PROCESSES_METRIC = f"{PROMETHEUS_PREFIX}gpu_processes"
"""Processes holding memory on a GPU. On ``/metrics`` the ``gpu_process`` fields are summed
per GPU, without a ``pid`` label (pids churn; the store keeps them)."""


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
AGENT_RESERVE_POINTS = HealthMetric(
    _H + "reserve_points",
    "gauge",
    "Points held in memory because they could be neither written nor spooled (pushes get 503)",
)


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
AGENT_REQUESTS_REFUSED = HealthMetric(
    _H + "requests_refused_total",
    "counter",
    "Requests and connections a listener refused or closed, by reason: host, origin, token,"
    " timeout (headers or body too slow), connections (at the limit), body_bytes (too many"
    " bodies read at once), backpressure (values it could neither store nor spool)",
    ("listener", "reason"),
)
AGENT_PUSH_REFUSED = HealthMetric(
    _H + "push_refused_values_total",
    "counter",
    "Pushed values refused, by reason (series_limit: a new series while push_max_series are"
    " active)",
    ("reason",),
)
AGENT_PUSH_SERIES = HealthMetric(
    _H + "push_series", "gauge", "Distinct pushed series active (a value within push_series_idle)"
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
    AGENT_RESERVE_POINTS,
    AGENT_PUSH_REQUESTS,
    AGENT_PUSH_ACCEPTED,
    AGENT_PUSH_UNEXPOSED,
    AGENT_REQUESTS_REFUSED,
    AGENT_PUSH_REFUSED,
    AGENT_PUSH_SERIES,
)
"""Every agent-health metric; Grafana boards and alert rules take names from here."""
