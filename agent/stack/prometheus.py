"""Prometheus alerting rules for a fleet of agents, every name taken from ``fleetgauge.catalogue``.

Three rule groups: the agents themselves (down, gone, not sampling, collectors or
store writes failing, spool growing, points dropped, nothing written for too
long), the resources they watch (CPU, memory, GPU, GPU memory and disk used
above a threshold on average over a window) and GPU health (XID errors,
uncorrectable ECC errors, row remaps pending, thermal or power throttling held
for 5 minutes, a GPU gone). Each :class:`Alert` also records
the metrics its expression selects and the labels its alerts carry, so the tests
can check both against what a real Prometheus scraped from a real agent.

Prometheus must scrape the agents in a job called :data:`JOB`: the "agent down"
rule selects ``up`` by it (``prometheus/prometheus.yml`` uses the same name).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from fleetgauge import catalogue
from fleetgauge.agent.stack import AGENT_JOB
from fleetgauge.catalogue import Field, Measurement

__all__ = ["Alert", "ALERTS", "GROUPS", "JOB", "RULES_PATH", "files", "render"]

RULES_PATH = "prometheus/rules/fleetgauge.rules.yml"
JOB = AGENT_JOB
"""Scrape job of the agents in prometheus.yml (shared with the Grafana dashboards)."""

# Prometheus' own names: the target labels it adds to every scraped series, and ``up``.
INSTANCE, JOB_LABEL, UP = "instance", "job", "up"
TARGET_LABELS = (INSTANCE, JOB_LABEL)
AGENT_ALERT_LABELS = (*catalogue.AGENT_LABELS, *TARGET_LABELS)
"""Labels of every agent-health series once Prometheus scraped it."""

CRITICAL, WARNING, INFO = "critical", "warning", "info"

# --- thresholds and durations -------------------------------------------------------
AGENT_DOWN_FOR = "5m"
AGENT_MISSING_LOOKBACK = "1h"
"""How long a worker that stopped reporting is remembered (and alerted on)."""
AGENT_MISSING_FOR = "5m"
NOT_SAMPLING_WINDOW, NOT_SAMPLING_FOR = "10m", "5m"
ERROR_WINDOW = "5m"
"""Errors are counted over this window: one failure keeps the count above zero this long."""
COLLECTOR_ERRORS_FOR = "15m"
WRITE_ERRORS_FOR = "10m"
SPOOL_GROWTH_WINDOW, SPOOL_GROWING_FOR = "15m", "5m"
DROPPED_WINDOW, DROPPED_FOR = "15m", "1m"
LAST_WRITE_MAX_AGE_SECONDS = 900
NO_WRITE_FOR = "5m"
NEVER_WROTE_FOR = "15m"
RESOURCE_WINDOW = "15m"
"""Resource ratios are averaged over this window, so a short spike never alerts."""
RESOURCE_FOR = "5m"


@dataclass(frozen=True)
class Alert:
    """One alerting rule, plus what the tests check it against.

    ``metrics`` are the metric names ``expr`` selects, the one whose labels the
    alerts keep first; ``labels`` are the labels every alert of this rule
    carries (the annotations may only use these).
    """

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    metrics: tuple[str, ...]
    labels: tuple[str, ...]

    def rule(self) -> dict[str, object]:
        """The rule as it appears in a Prometheus rule file."""
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description},
        }


def _l(label: str) -> str:
    """Template text that an alert's annotation expands to the value of ``label``."""
    return "{{ $labels." + label + " }}"


WHO = f"{_l(catalogue.WORKER)} ({_l(catalogue.ENVIRONMENT)})"
"""How annotations name the agent or worker an alert is about."""
AT = f"{_l(INSTANCE)}, job {_l(JOB_LABEL)}"


# --- the agents -----------------------------------------------------------------------
_SAMPLES = catalogue.AGENT_SAMPLES.name
_COLLECTOR_ERRORS = catalogue.AGENT_COLLECTOR_ERRORS.name
_COLLECTOR = catalogue.AGENT_COLLECTOR_ERRORS.labels[0]
_WRITE_ERRORS = catalogue.AGENT_WRITE_ERRORS.name
_SPOOL_BYTES = catalogue.AGENT_SPOOL_BYTES.name
_DROPPED = catalogue.AGENT_POINTS_DROPPED.name
_LAST_WRITE = catalogue.AGENT_LAST_WRITE.name
_ON_TARGET = f"on({', '.join(TARGET_LABELS)})"
_ON_AGENT = f"on({', '.join(AGENT_ALERT_LABELS)})"
_COUNT = '{{ printf "%.0f" $value }}'
"""The alert's value as a whole number (``increase`` extrapolates, so it is approximate)."""

AGENT_ALERTS = (
    Alert(
        "FleetgaugeAgentDown",
        f'{UP}{{{JOB_LABEL}="{JOB}"}} == 0',
        AGENT_DOWN_FOR,
        CRITICAL,
        f"fleetgauge agent at {_l(INSTANCE)} is down",
        f"Prometheus has failed to scrape {AT} for {AGENT_DOWN_FOR}: the agent is stopped,"
        " its machine is down or unreachable, or /metrics refuses the scrape.",
        (UP,),
        TARGET_LABELS,
    ),
    Alert(
        "FleetgaugeAgentMissing",
        f"(last_over_time({_SAMPLES}[{AGENT_MISSING_LOOKBACK}]) unless {_ON_AGENT} {_SAMPLES})"
        f" unless {_ON_TARGET} {UP} == 0",
        AGENT_MISSING_FOR,
        WARNING,
        f"worker {WHO} stopped reporting",
        f"{WHO} reported through {AT} within the last {AGENT_MISSING_LOOKBACK} but not for"
        f" {AGENT_MISSING_FOR}, and no failing scrape explains it: its target left service"
        " discovery, or the agent there now runs under another worker name.",
        (_SAMPLES, UP),
        AGENT_ALERT_LABELS,
    ),
    Alert(
        "FleetgaugeAgentNotSampling",
        f"increase({_SAMPLES}[{NOT_SAMPLING_WINDOW}]) == 0",
        NOT_SAMPLING_FOR,
        CRITICAL,
        f"agent on {WHO} takes no samples",
        f"The agent on {WHO} answers scrapes but has taken no sample in {NOT_SAMPLING_WINDOW}:"
        " its scheduler is stuck, so nothing about this worker is recorded.",
        (_SAMPLES,),
        AGENT_ALERT_LABELS,
    ),
    Alert(
        "FleetgaugeCollectorFailing",
        f"increase({_COLLECTOR_ERRORS}[{ERROR_WINDOW}]) > 0",
        COLLECTOR_ERRORS_FOR,
        WARNING,
        f"collector {_l(_COLLECTOR)} failing on {WHO}",
        f"The {_l(_COLLECTOR)} collector of the agent on {WHO} has kept failing for"
        f" {COLLECTOR_ERRORS_FOR} ({_COUNT} failures in the last {ERROR_WINDOW}):"
        " its metrics are missing. The agent's log says why.",
        (_COLLECTOR_ERRORS,),
        (*AGENT_ALERT_LABELS, _COLLECTOR),
    ),
    Alert(
        "FleetgaugeStoreWriteErrors",
        f"increase({_WRITE_ERRORS}[{ERROR_WINDOW}]) > 0",
        WRITE_ERRORS_FOR,
        WARNING,
        f"agent on {WHO} cannot write to its store",
        f"Writes from {WHO} to its store have kept failing for {WRITE_ERRORS_FOR}"
        f" ({_COUNT} failed in the last {ERROR_WINDOW}): the store is unreachable, answers"
        " errors or refuses the points. Points wait in the on-disk spool.",
        (_WRITE_ERRORS,),
        AGENT_ALERT_LABELS,
    ),
    Alert(
        "FleetgaugeSpoolGrowing",
        f"delta({_SPOOL_BYTES}[{SPOOL_GROWTH_WINDOW}]) > 0"
        f" and {_ON_AGENT} increase({_WRITE_ERRORS}[{ERROR_WINDOW}]) > 0",
        SPOOL_GROWING_FOR,
        WARNING,
        f"spool of {WHO} is growing",
        f"The on-disk spool of {WHO} grew by {{{{ $value | humanize1024 }}}}B in"
        f" {SPOOL_GROWTH_WINDOW} while writes to its store fail; once it is full the agent"
        " answers pushes 503 and holds new samples in memory.",
        (_SPOOL_BYTES, _WRITE_ERRORS),
        AGENT_ALERT_LABELS,
    ),
    Alert(
        "FleetgaugePointsDropped",
        f"increase({_DROPPED}[{DROPPED_WINDOW}]) > 0",
        DROPPED_FOR,
        CRITICAL,
        f"{WHO} lost points ({_l(catalogue.DROP_REASON)})",
        f"The agent on {WHO} gave up about {_COUNT} points in the last {DROPPED_WINDOW},"
        f" reason {_l(catalogue.DROP_REASON)}: spool_full (the store was down longer than the"
        " spool and the in-memory reserve hold), rejected (the store refused them), invalid, or"
        " spool_error (the spool directory could not be written for as long).",
        (_DROPPED,),
        (*AGENT_ALERT_LABELS, catalogue.DROP_REASON),
    ),
    Alert(
        "FleetgaugeNoRecentWrite",
        f"time() - {_LAST_WRITE} > {LAST_WRITE_MAX_AGE_SECONDS} and {_LAST_WRITE} > 0",
        NO_WRITE_FOR,
        CRITICAL,
        f"nothing from {WHO} reached the store lately",
        f"The last successful write from {WHO} to its store was {{{{ $value | humanizeDuration }}}}"
        " ago: charts reading the store show nothing newer.",
        (_LAST_WRITE,),
        AGENT_ALERT_LABELS,
    ),
    Alert(
        "FleetgaugeNeverWrote",
        f"{_LAST_WRITE} == 0",
        NEVER_WROTE_FOR,
        CRITICAL,
        f"agent on {WHO} has written nothing since it started",
        f"The agent on {WHO} has run for {NEVER_WROTE_FOR} without one successful write to"
        " its store: check its store URL, credentials and the store itself.",
        (_LAST_WRITE,),
        AGENT_ALERT_LABELS,
    ),
)


# --- the resources --------------------------------------------------------------------
def _resource_alert(
    name: str, m: Measurement, f: Field, threshold: float, severity: str, what: str
) -> Alert:
    """Alert when ``m.f`` (a percentage, exposed as a 0-1 ratio) stays above ``threshold``.

    ``what`` names the resource in the annotations; it may use ``m``'s device tags.
    """
    metric, factor = catalogue.prometheus_name(m, f)
    if f.unit != catalogue.PERCENT or factor != 0.01:
        raise ValueError(f"{m.name}.{f.name} is not a percentage")
    return Alert(
        name,
        f"avg_over_time({metric}[{RESOURCE_WINDOW}]) > {threshold:g}",
        RESOURCE_FOR,
        severity,
        f"{what} on {WHO} above {threshold:.0%}",
        f"{what} on {WHO} has been {{{{ $value | humanizePercentage }}}} on average"
        f" over {RESOURCE_WINDOW} (threshold {threshold:.0%}).",
        (metric,),
        (catalogue.WORKER, catalogue.ENVIRONMENT, *m.device_tags, *TARGET_LABELS),
    )


CPU_THRESHOLD = 0.95
MEMORY_THRESHOLD = 0.9
GPU_THRESHOLD = 0.95
GPU_MEMORY_THRESHOLD = 0.95
DISK_THRESHOLD = 0.9

_CPU, _MEMORY, _GPU, _DISK = (
    catalogue.CPU,
    catalogue.MEMORY,
    catalogue.GPU_MEASUREMENT,
    catalogue.DISK,
)
RESOURCE_ALERTS = (
    _resource_alert(
        "FleetgaugeCpuBusy",
        _CPU,
        _CPU.get_field("usage_percent"),
        CPU_THRESHOLD,
        WARNING,
        "CPU use",
    ),
    _resource_alert(
        "FleetgaugeMemoryFull",
        _MEMORY,
        _MEMORY.get_field("used_percent"),
        MEMORY_THRESHOLD,
        WARNING,
        "Memory use",
    ),
    _resource_alert(
        "FleetgaugeGpuBusy",
        _GPU,
        _GPU.get_field("utilization_percent"),
        GPU_THRESHOLD,
        INFO,
        f"Utilization of GPU {_l(catalogue.GPU)}",
    ),
    _resource_alert(
        "FleetgaugeGpuMemoryFull",
        _GPU,
        _GPU.get_field("memory_used_percent"),
        GPU_MEMORY_THRESHOLD,
        WARNING,
        f"Memory use of GPU {_l(catalogue.GPU)}",
    ),
    _resource_alert(
        "FleetgaugeDiskFull",
        _DISK,
        _DISK.get_field("used_percent"),
        DISK_THRESHOLD,
        WARNING,
        f"Disk space used at {_l(catalogue.MOUNT)}",
    ),
)

# --- GPU health -------------------------------------------------------------------------
GPU_EVENT_WINDOW = "10m"
"""An XID or uncorrectable ECC error alerts for this long after it happened."""
GPU_THROTTLED_FOR = "5m"
GPU_MISSING_LOOKBACK = "1h"
_GPU_LABELS = (catalogue.WORKER, catalogue.ENVIRONMENT, catalogue.GPU, *TARGET_LABELS)
_GPU_WHO = f"GPU {_l(catalogue.GPU)} of {WHO}"


def _gpu_metric(field: str) -> str:
    return catalogue.prometheus_name(_GPU, _GPU.get_field(field))[0]


_XID = catalogue.GPU_XID_METRIC
_ECC = _gpu_metric("ecc_uncorrected_volatile_errors")
_PENDING, _FAILED = _gpu_metric("remapped_rows_pending"), _gpu_metric("remapped_rows_failure")
_THERMAL_HW = _gpu_metric("throttle_thermal_hardware")
_THERMAL_SW = _gpu_metric("throttle_thermal_software")
_POWER_CAP = _gpu_metric("throttle_power_cap")
_GPUS = catalogue.GPUS_METRIC
_UTILIZATION = _gpu_metric("utilization_percent")
_GPU_PROCESSES = catalogue.GPU_PROCESSES_METRIC
GPU_IDLE_WINDOW = "1h"
GPU_IDLE_BELOW = 0.05
GPU_IDLE_SHARE = 0.5
"""A GPU is held but idle when a process held memory on it for the whole window and its
utilisation was under GPU_IDLE_BELOW for at least GPU_IDLE_SHARE of it (the dashboard's
default ``gpu_idle`` threshold too)."""
_ON_GPU = f"on({', '.join(_GPU_LABELS)})"

GPU_ALERTS = (
    Alert(
        "FleetgaugeGpuXidError",
        # a new (gpu, xid) series starts at 1, which increase() cannot see: "unless ... offset"
        f"({_XID} unless {_XID} offset {GPU_EVENT_WINDOW})"
        f" or increase({_XID}[{GPU_EVENT_WINDOW}]) > 0",
        "0m",
        CRITICAL,
        f"XID {_l('xid')} error on {_GPU_WHO}",
        f"NVML reported XID {_l('xid')} on {_GPU_WHO} in the last {GPU_EVENT_WINDOW}: see the"
        " gpu_xid event for what it means (79: the GPU fell off the bus; 48, 63, 64, 94, 95:"
        " memory errors; 13, 31, 43: the application's kernels).",
        (_XID,),
        (*_GPU_LABELS, "xid"),
    ),
    Alert(
        "FleetgaugeGpuUncorrectableEcc",
        f"increase({_ECC}[{GPU_EVENT_WINDOW}]) > 0",
        "0m",
        CRITICAL,
        f"Uncorrectable ECC errors on {_GPU_WHO}",
        f"{_GPU_WHO} counted {_COUNT} uncorrectable ECC errors in the last"
        f" {GPU_EVENT_WINDOW}: the job on it may have computed with bad memory; drain it.",
        (_ECC,),
        _GPU_LABELS,
    ),
    Alert(
        "FleetgaugeGpuRowRemapPending",
        f"{_PENDING} == 1 or {_FAILED} == 1",
        "0m",
        WARNING,
        f"Memory row remapping needs attention on {_GPU_WHO}",
        f"{_GPU_WHO} has a row remap waiting for a GPU reset, or a remap that failed"
        " (then the board should be replaced).",
        (_PENDING, _FAILED),
        _GPU_LABELS,
    ),
    Alert(
        "FleetgaugeGpuThermalThrottling",
        f"{_THERMAL_HW} == 1 or {_THERMAL_SW} == 1",
        GPU_THROTTLED_FOR,
        WARNING,
        f"{_GPU_WHO} is slowed down by heat",
        f"The clocks of {_GPU_WHO} have been held down for heat for {GPU_THROTTLED_FOR}:"
        " check its cooling and the temperatures.",
        (_THERMAL_HW, _THERMAL_SW),
        _GPU_LABELS,
    ),
    Alert(
        "FleetgaugeGpuPowerThrottling",
        f"{_POWER_CAP} == 1",
        GPU_THROTTLED_FOR,
        INFO,
        f"{_GPU_WHO} runs at its power cap",
        f"The clocks of {_GPU_WHO} have been held down by its power limit for"
        f" {GPU_THROTTLED_FOR} (normal under a heavy load; a lowered limit slows jobs).",
        (_POWER_CAP,),
        _GPU_LABELS,
    ),
    Alert(
        "FleetgaugeGpuIdleButAllocated",
        # the SHARE-quantile of its utilisation is under BELOW: it was under BELOW that often
        f"quantile_over_time({GPU_IDLE_SHARE:g}, {_UTILIZATION}[{GPU_IDLE_WINDOW}])"
        f" < {GPU_IDLE_BELOW:g}"
        f" and {_ON_GPU} min_over_time({_GPU_PROCESSES}[{GPU_IDLE_WINDOW}]) > 0",
        "0m",
        WARNING,
        f"{_GPU_WHO} is held but idle",
        f"A process has held memory on {_GPU_WHO} for the last {GPU_IDLE_WINDOW}, while its"
        f" utilisation was under {GPU_IDLE_BELOW:.0%} for at least {GPU_IDLE_SHARE:.0%} of"
        " that time (that share of it at or under {{ $value | humanizePercentage }}): a job"
        " holds the GPU without using it. See the Resources page's idle card for who.",
        (_UTILIZATION, _GPU_PROCESSES),
        _GPU_LABELS,
    ),
    Alert(
        "FleetgaugeGpuMissing",
        f"{_GPUS} < max_over_time({_GPUS}[{GPU_MISSING_LOOKBACK}])",
        "0m",
        CRITICAL,
        f"A GPU of {WHO} is gone",
        f"{WHO} sees {_COUNT} GPU(s), fewer than in the last {GPU_MISSING_LOOKBACK}: a GPU"
        " fell off the bus (see the gpu_lost event); its jobs are failing.",
        (_GPUS,),
        (catalogue.WORKER, catalogue.ENVIRONMENT, *TARGET_LABELS),
    ),
)

GROUPS: dict[str, tuple[Alert, ...]] = {
    "fleetgauge-agent": AGENT_ALERTS,
    "fleetgauge-resources": RESOURCE_ALERTS,
    "fleetgauge-gpu-health": GPU_ALERTS,
}
ALERTS: tuple[Alert, ...] = tuple(a for alerts in GROUPS.values() for a in alerts)

HEADER = (
    "# Alerting rules for fleetgauge agents, generated by `python -m fleetgauge.agent.stack`\n"
    "# from fleetgauge/catalogue.py (agent/stack/prometheus.py): edit those, not this file.\n"
    f"# The agents must be scraped in the job {JOB!r}.\n"
)


_NO_WRAP = 1 << 20
"""YAML line width: one line per expression and annotation, never folded mid-template."""


def render() -> str:
    """The rule file's text: deterministic YAML, groups and rules in declaration order."""
    groups = [
        {"name": name, "rules": [a.rule() for a in alerts]} for name, alerts in GROUPS.items()
    ]
    body = yaml.safe_dump({"groups": groups}, sort_keys=False, allow_unicode=True, width=_NO_WRAP)
    return HEADER + body


def files() -> dict[str, str]:
    """``{RULES_PATH: text}`` for ``python -m fleetgauge.agent.stack``."""
    return {RULES_PATH: render()}
