"""One GPU read through NVML: the fields of the ``gpu`` measurement and memory per process.

Kept apart from :mod:`fleetgauge.agent.collectors.gpu`, which owns NVML's start-up, retries and
logging. Only the fields the catalogue holds are asked for, and a read the device answers
"not supported" (or the installed driver lacks) is remembered and never asked again: NVML
calls serialise through the GPU's firmware, so a sample costs only what the board has.
Any other NVML error leaves that value out of this sample only, except ``GPU_IS_LOST``,
which raises :class:`GpuLost` so the caller skips the whole device.

Units become the catalogue's: MHz clocks in hertz, milliwatts in watts, millijoules in
joules, PCIe KB/s in bytes/s; the clock-event (throttle) bitmask becomes one 0/1 field
per reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from fleetgauge.agent.collectors.rates import RateTracker
from fleetgauge.catalogue import GPU_MEASUREMENT, GPU_MIG

__all__ = ["GpuLost", "NvmlDevice", "THROTTLE_REASONS", "NVML_SOURCES"]

F = {name: name for name in GPU_MEASUREMENT.field_names}  # a typo here fails at import
MIG_FIELDS = GPU_MIG.field_names  # memory used, total, percent
MHZ = 1_000_000
KIB = 1024
ALL_LINKS = 0xFFFFFFFF  # scopeId UINT_MAX: an NVLink field summed over every link
PSTATE_UNKNOWN = 32  # NVML_PSTATE_UNKNOWN

THROTTLE_REASONS = {
    F["throttle_power_cap"]: "nvmlClocksEventReasonSwPowerCap",
    F["throttle_thermal_software"]: "nvmlClocksEventReasonSwThermalSlowdown",
    F["throttle_thermal_hardware"]: "nvmlClocksEventReasonHwThermalSlowdown",
    F["throttle_hardware_slowdown"]: "nvmlClocksEventReasonHwSlowdown",
    F["throttle_sync_boost"]: "nvmlClocksEventReasonSyncBoost",
    F["throttle_idle"]: "nvmlClocksEventReasonGpuIdle",
    F["throttle_applications_clocks"]: "nvmlClocksEventReasonApplicationsClocksSetting",
}
"""0/1 field -> the pynvml constant of its bit in the clock-event reasons mask."""


_NVLINK = "nvmlDeviceGetFieldValues(NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_{}, all links), per second"
NVML_SOURCES = {
    F["utilization_percent"]: "nvmlDeviceGetUtilizationRates().gpu",
    F["memory_used_bytes"]: "nvmlDeviceGetMemoryInfo().used",
    F["memory_total_bytes"]: "nvmlDeviceGetMemoryInfo().total",
    F["memory_used_percent"]: "nvmlDeviceGetMemoryInfo(): used / total",
    F["temperature_celsius"]: "nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)",
    F["power_draw_watts"]: "nvmlDeviceGetPowerUsage() / 1000",
    F["power_limit_watts"]: "nvmlDeviceGetEnforcedPowerLimit() / 1000",
    F["memory_utilization_percent"]: "nvmlDeviceGetUtilizationRates().memory",
    F["sm_clock_hertz"]: "nvmlDeviceGetClockInfo(NVML_CLOCK_SM) x 10^6",
    F["sm_clock_max_hertz"]: "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM) x 10^6",
    F["memory_clock_hertz"]: "nvmlDeviceGetClockInfo(NVML_CLOCK_MEM) x 10^6",
    F["memory_clock_max_hertz"]: "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM) x 10^6",
    F["graphics_clock_hertz"]: "nvmlDeviceGetClockInfo(NVML_CLOCK_GRAPHICS) x 10^6",
    F["graphics_clock_max_hertz"]: "nvmlDeviceGetMaxClockInfo(NVML_CLOCK_GRAPHICS) x 10^6",
    F["memory_temperature_celsius"]: "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)",
    F["energy_joules"]: "nvmlDeviceGetTotalEnergyConsumption() / 1000",
    F["performance_state"]: "nvmlDeviceGetPerformanceState()",
    F["fan_speed_percent"]: "nvmlDeviceGetFanSpeed()",
    F[
        "pcie_receive_bytes_per_second"
    ]: "nvmlDeviceGetPcieThroughput(NVML_PCIE_UTIL_RX_BYTES) x 1024",
    F[
        "pcie_transmit_bytes_per_second"
    ]: "nvmlDeviceGetPcieThroughput(NVML_PCIE_UTIL_TX_BYTES) x 1024",
    F["pcie_replays"]: "nvmlDeviceGetPcieReplayCounter()",
    F["nvlink_receive_bytes_per_second"]: _NVLINK.format("RX"),
    F["nvlink_transmit_bytes_per_second"]: _NVLINK.format("TX"),
    F["encoder_utilization_percent"]: "nvmlDeviceGetEncoderUtilization()[0]",
    F["decoder_utilization_percent"]: "nvmlDeviceGetDecoderUtilization()[0]",
    F["ecc_corrected_volatile_errors"]: "nvmlDeviceGetTotalEccErrors(CORRECTED, VOLATILE)",
    F["ecc_uncorrected_volatile_errors"]: "nvmlDeviceGetTotalEccErrors(UNCORRECTED, VOLATILE)",
    F["ecc_corrected_aggregate_errors"]: "nvmlDeviceGetTotalEccErrors(CORRECTED, AGGREGATE)",
    F["ecc_uncorrected_aggregate_errors"]: "nvmlDeviceGetTotalEccErrors(UNCORRECTED, AGGREGATE)",
    F["remapped_rows_correctable"]: "nvmlDeviceGetRemappedRows()[0]",
    F["remapped_rows_uncorrectable"]: "nvmlDeviceGetRemappedRows()[1]",
    F["remapped_rows_pending"]: "nvmlDeviceGetRemappedRows()[2]",
    F["remapped_rows_failure"]: "nvmlDeviceGetRemappedRows()[3]",
    **{
        field: f"nvmlDeviceGetCurrentClocksEventReasons() & {bit}"
        for field, bit in THROTTLE_REASONS.items()
    },
}
GPM_METRICS = {
    F["sm_active_percent"]: "NVML_GPM_METRIC_SM_UTIL",
    F["sm_occupancy_percent"]: "NVML_GPM_METRIC_SM_OCCUPANCY",
    F["tensor_active_percent"]: "NVML_GPM_METRIC_ANY_TENSOR_UTIL",
    F["dram_bandwidth_percent"]: "NVML_GPM_METRIC_DRAM_BW_UTIL",
}
"""GPM field -> the pynvml constant of its metric (GPUs from Hopper on)."""
NVML_SOURCES |= {
    field: f"nvmlGpmMetricsGet({metric}) between two samples"
    for field, metric in GPM_METRICS.items()
}
"""Where each ``gpu`` field comes from in NVML (the README's GPU field table)."""


class GpuLost(Exception):
    """The GPU fell off the bus (NVML_ERROR_GPU_IS_LOST)."""


class NvmlDevice:
    """An opened GPU: its NVML index, handle, UUID and product name (None when unknown)."""

    def __init__(self, nvml: Any, index: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Open GPU ``index`` of an initialised ``nvml`` module; raises GpuLost when the GPU
        cannot be opened (lost, or hidden from this container). ``clock`` times the NVLink
        counters' rates."""
        self._nvlink = RateTracker(clock)
        # NVMLLibraryMismatchError: an unversioned call that the installed driver lacks
        self._mismatch = getattr(nvml, "NVMLLibraryMismatchError", nvml.NVMLError)
        self._errors = (nvml.NVMLError, self._mismatch)
        self._not_supported = {
            nvml.NVML_ERROR_NOT_SUPPORTED,
            getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", nvml.NVML_ERROR_NOT_SUPPORTED),
        }
        self.unsupported: set[Hashable] = set()
        """Reads this device refused as not supported: never asked again."""
        self._gpm_samples: list[Any] | None = None  # None: GPM support not asked yet
        self._utilization_seen = 0  # the driver's timestamp of the last process sample read
        self._gpm_taken = False
        self._max_hz: dict[int, float] = {}  # clock type -> its maximum (_max_clock)
        self._mig_slots: int | None = None  # MIG device slots, once NVML has said
        self._nvml, self.index = nvml, index
        self.handle = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
        if self.handle is None:
            raise GpuLost(index)
        self.uuid: str | None = self._call(nvml.nvmlDeviceGetUUID, self.handle)
        self.name: str | None = self._call(nvml.nvmlDeviceGetName, self.handle)
        pci = self._call(nvml.nvmlDeviceGetPciInfo, self.handle)
        bus_id = getattr(pci, "busId", None)
        self.pci_bus_id: str | None = (
            bus_id.decode(errors="replace") if isinstance(bus_id, bytes) else bus_id
        ) or None

    def fields(self) -> dict[str, float]:
        """Use and health of the GPU now, as ``gpu`` fields in the catalogue's units."""
        nvml, call, h, f = self._nvml, self._call, self.handle, {}
        if (util := call(nvml.nvmlDeviceGetUtilizationRates, h)) is not None:
            f[F["utilization_percent"]] = float(util.gpu)
            f[F["memory_utilization_percent"]] = float(util.memory)
        if (memory := call(nvml.nvmlDeviceGetMemoryInfo, h)) is not None:
            f[F["memory_used_bytes"]], f[F["memory_total_bytes"]] = memory.used, memory.total
            if memory.total > 0:
                f[F["memory_used_percent"]] = 100.0 * memory.used / memory.total
        if (
            celsius := call(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
        ) is not None:
            f[F["temperature_celsius"]] = float(celsius)
        if (celsius := self._field_value(nvml.NVML_FI_DEV_MEMORY_TEMP)) is not None:
            f[F["memory_temperature_celsius"]] = float(celsius)
        if (milliwatts := call(nvml.nvmlDeviceGetPowerUsage, h)) is not None:
            f[F["power_draw_watts"]] = milliwatts / 1000.0
        if (milliwatts := call(nvml.nvmlDeviceGetEnforcedPowerLimit, h)) is not None:
            f[F["power_limit_watts"]] = milliwatts / 1000.0
        if (millijoules := call(nvml.nvmlDeviceGetTotalEnergyConsumption, h)) is not None:
            f[F["energy_joules"]] = millijoules / 1000.0
        for clock, name in (
            (nvml.NVML_CLOCK_SM, "sm"),
            (nvml.NVML_CLOCK_MEM, "memory"),
            (nvml.NVML_CLOCK_GRAPHICS, "graphics"),
        ):
            if (mhz := call(nvml.nvmlDeviceGetClockInfo, h, clock)) is not None:
                f[F[f"{name}_clock_hertz"]] = float(mhz * MHZ)
            if (hz := self._max_clock(clock)) is not None:
                f[F[f"{name}_clock_max_hertz"]] = hz
        if (pstate := call(nvml.nvmlDeviceGetPerformanceState, h)) not in (None, PSTATE_UNKNOWN):
            f[F["performance_state"]] = float(pstate)
        if (fan := call(nvml.nvmlDeviceGetFanSpeed, h)) is not None:
            f[F["fan_speed_percent"]] = float(fan)
        for counter, name in (
            (nvml.NVML_PCIE_UTIL_RX_BYTES, "pcie_receive_bytes_per_second"),
            (nvml.NVML_PCIE_UTIL_TX_BYTES, "pcie_transmit_bytes_per_second"),
        ):
            if (kib_per_s := call(nvml.nvmlDeviceGetPcieThroughput, h, counter)) is not None:
                f[F[name]] = float(kib_per_s * KIB)
        f |= self._nvlink_rates()
        if (replays := call(nvml.nvmlDeviceGetPcieReplayCounter, h)) is not None:
            f[F["pcie_replays"]] = float(replays)
        if (encoder := call(nvml.nvmlDeviceGetEncoderUtilization, h)) is not None:
            f[F["encoder_utilization_percent"]] = float(encoder[0])
        if (decoder := call(nvml.nvmlDeviceGetDecoderUtilization, h)) is not None:
            f[F["decoder_utilization_percent"]] = float(decoder[0])
        f |= self._ecc() | self._remapped_rows() | self._throttle() | self._gpm()
        return f

    def _max_clock(self, clock: int) -> float | None:
        """A clock's maximum in hertz: fixed for a board, so asked until NVML answers, then
        kept (three calls fewer a sample)."""
        hz = self._max_hz.get(clock)
        if hz is None:
            mhz = self._call(self._nvml.nvmlDeviceGetMaxClockInfo, self.handle, clock)
            if mhz is not None:
                hz = self._max_hz[clock] = float(mhz * MHZ)
        return hz

    def _gpm(self) -> dict[str, float]:
        """SM active, occupancy, tensor active and DRAM bandwidth over the interval, from two
        GPM samples (this one and the last); absent on a GPU without GPM, and on the first."""
        nvml = self._nvml
        if self._gpm_samples is None:
            support = self._call(nvml.nvmlGpmQueryDeviceSupport, self.handle)
            if support is None or not support.isSupportedDevice:
                self._gpm_samples = []
                return {}
            alloc = self._call(nvml.nvmlGpmSampleAlloc)
            other = self._call(nvml.nvmlGpmSampleAlloc)
            self._gpm_samples = [alloc, other] if alloc is not None and other is not None else []
            self._gpm_taken = False
        if not self._gpm_samples:
            return {}
        previous, current = self._gpm_samples
        if self._call(nvml.nvmlGpmSampleGet, self.handle, current) is None:
            self._gpm_taken = False
            return {}
        self._gpm_samples.reverse()  # this sample is the previous one of the next sample
        if not self._gpm_taken:
            self._gpm_taken = True
            return {}
        get = nvml.c_nvmlGpmMetricsGet_t()
        get.version = nvml.NVML_GPM_METRICS_GET_VERSION
        get.numMetrics = len(GPM_METRICS)
        get.sample1, get.sample2 = previous, current
        for i, metric in enumerate(GPM_METRICS.values()):
            get.metrics[i].metricId = getattr(nvml, metric)
        if self._call(nvml.nvmlGpmMetricsGet, get) is None:
            return {}
        return {
            field: float(get.metrics[i].value)
            for i, field in enumerate(GPM_METRICS)
            if get.metrics[i].nvmlReturn == nvml.NVML_SUCCESS
        }

    def _nvlink_rates(self) -> dict[str, float]:
        """NVLink bytes/s over all links, from the KiB counters between two samples; absent
        on a GPU without NVLink and on the first sample."""
        nvml = self._nvml
        rx = self._field_value(nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, ALL_LINKS)
        tx = self._field_value(nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, ALL_LINKS)
        if rx is None or tx is None:
            return {}
        rates = self._nvlink.update({"nvlink": (rx, tx)}).get("nvlink")
        if rates is None:
            return {}
        return {
            F["nvlink_receive_bytes_per_second"]: rates[0] * KIB,
            F["nvlink_transmit_bytes_per_second"]: rates[1] * KIB,
        }

    def _ecc(self) -> dict[str, float]:
        nvml, f = self._nvml, {}
        for kind, kind_name in (
            (nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"),
            (nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected"),
        ):
            for counter, counter_name in (
                (nvml.NVML_VOLATILE_ECC, "volatile"),
                (nvml.NVML_AGGREGATE_ECC, "aggregate"),
            ):
                count = self._call(nvml.nvmlDeviceGetTotalEccErrors, self.handle, kind, counter)
                if count is not None:
                    f[F[f"ecc_{kind_name}_{counter_name}_errors"]] = float(count)
        return f

    def _remapped_rows(self) -> dict[str, float]:
        rows = self._call(self._nvml.nvmlDeviceGetRemappedRows, self.handle)
        if rows is None:
            return {}
        correctable, uncorrectable, pending, failure = rows
        return {
            F["remapped_rows_correctable"]: float(correctable),
            F["remapped_rows_uncorrectable"]: float(uncorrectable),
            F["remapped_rows_pending"]: float(bool(pending)),
            F["remapped_rows_failure"]: float(bool(failure)),
        }

    def _throttle(self) -> dict[str, float]:
        """The clock-event reasons as 0/1 fields (drivers before 535 call them throttle
        reasons: the same bits, under the older function)."""
        nvml = self._nvml
        mask = self._call(nvml.nvmlDeviceGetCurrentClocksEventReasons, self.handle)
        if mask is None and ("nvmlDeviceGetCurrentClocksEventReasons",) in self.unsupported:
            mask = self._call(nvml.nvmlDeviceGetCurrentClocksThrottleReasons, self.handle)
        if mask is None:
            return {}
        return {
            field: float(bool(mask & getattr(nvml, bit))) for field, bit in THROTTLE_REASONS.items()
        }

    def _field_value(self, field_id: int, scope: int | None = None) -> float | int | None:
        """One ``nvmlDeviceGetFieldValues`` value (of ``scope``: a link, ...); a field the
        device refuses is remembered."""
        key = ("nvmlDeviceGetFieldValues", field_id)
        if key in self.unsupported:
            return None
        asked = field_id if scope is None else (field_id, scope)
        values = self._call(self._nvml.nvmlDeviceGetFieldValues, self.handle, [asked])
        if not values:
            return None
        v = values[0]
        if v.nvmlReturn != self._nvml.NVML_SUCCESS:
            if v.nvmlReturn in self._not_supported:
                self.unsupported.add(key)
            elif v.nvmlReturn == self._nvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(self.index)
            return None
        return _field_number(self._nvml, v)

    def mig_instances(self) -> list[tuple[int, int, dict[str, float]]]:
        """With MIG mode on: (GPU-instance id, compute-instance id, memory fields) of each
        MIG instance; empty otherwise (or where the board has no MIG)."""
        nvml, h = self._nvml, self.handle
        mode = self._call(nvml.nvmlDeviceGetMigMode, h)
        if not mode or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
            return []
        out = []
        if self._mig_slots is None:
            self._mig_slots = self._call(nvml.nvmlDeviceGetMaxMigDeviceCount, h)
        for slot in range(self._mig_slots or 0):
            mig = self._once(nvml.nvmlDeviceGetMigDeviceHandleByIndex, h, slot)
            if mig is None:  # an empty slot (NVML_ERROR_NOT_FOUND)
                continue
            gpu_instance = self._once(nvml.nvmlDeviceGetGpuInstanceId, mig)
            compute_instance = self._once(nvml.nvmlDeviceGetComputeInstanceId, mig)
            memory = self._once(nvml.nvmlDeviceGetMemoryInfo, mig)
            if gpu_instance is None or compute_instance is None or memory is None:
                continue
            fields = {
                MIG_FIELDS[0]: float(memory.used),
                MIG_FIELDS[1]: float(memory.total),
            }
            if memory.total > 0:
                fields[MIG_FIELDS[2]] = 100.0 * memory.used / memory.total
            out.append((gpu_instance, compute_instance, fields))
        return out

    def _once(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` for a MIG instance, or None on an NVML error (nothing remembered:
        instances come and go); raises GpuLost when the GPU is lost."""
        try:
            return fn(*args)
        except self._errors as e:
            if getattr(e, "value", None) == self._nvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(self.index) from e
            return None

    def processes(self) -> dict[int, int]:
        """GPU memory bytes per pid, compute and graphics processes together (a pid in both
        counts once); processes whose use the driver cannot tell are left out."""
        nvml, used = self._nvml, {}
        for listing in (
            nvml.nvmlDeviceGetComputeRunningProcesses,
            nvml.nvmlDeviceGetGraphicsRunningProcesses,
        ):
            for p in self._call(listing, self.handle) or ():
                if p.usedGpuMemory is not None:
                    used[p.pid] = max(used.get(p.pid, 0), p.usedGpuMemory)
        return used

    def process_utilization(self) -> dict[int, tuple[float, float]]:
        """Per pid, its mean share of the GPU's SM and memory-controller time (percent) over
        the samples the driver took since the last call; empty when it took none."""
        sums: dict[int, list[float]] = {}
        for s in self._call(self._process_samples, self.handle) or ():
            self._utilization_seen = max(self._utilization_seen, s.timeStamp)
            total = sums.setdefault(s.pid, [0.0, 0.0, 0])
            total[0] += s.smUtil
            total[1] += s.memUtil
            total[2] += 1
        return {pid: (sm / n, memory / n) for pid, (sm, memory, n) in sums.items()}

    def _process_samples(self, handle: Any) -> Any:
        # (NVML_ERROR_NOT_FOUND when the driver took no sample since then: nothing to report)
        return self._nvml.nvmlDeviceGetProcessUtilization(handle, self._utilization_seen)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None on an NVML error (remembered when it says the device or
        the driver cannot do it at all); raises GpuLost when the GPU is lost."""
        # most calls pass the handle alone: their key needs no scan of the arguments
        if len(args) <= 1:
            key: tuple = (fn.__name__,)
        else:
            key = (fn.__name__, *[a for a in args[1:] if isinstance(a, int)])
        if key in self.unsupported:
            return None
        try:
            return fn(*args)
        except self._errors as e:
            code = getattr(e, "value", None)
            if code == self._nvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(self.index) from e
            if code in self._not_supported or isinstance(e, self._mismatch):
                self.unsupported.add(key)
            return None


def _field_number(nvml: Any, v: Any) -> float | int | None:
    """The number in a ``c_nvmlFieldValue_t``, by its value type."""
    kinds = {
        nvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
    }
    member = kinds.get(v.valueType)
    return None if member is None else getattr(v.value, member)
