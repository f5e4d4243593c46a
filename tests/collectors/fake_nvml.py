"""A fake ``pynvml`` module for GPU collector tests: real API shape, fake hardware.

Same function names and signatures as nvidia-ml-py, returning the same ctypes structs
(``c_nvmlUtilization_t``, ``c_nvmlMemory_t``) and process objects (``nvmlFriendlyObject``
over ``c_nvmlProcessInfo_t``, ``usedGpuMemory`` None where the driver cannot tell), and
raising the real ``pynvml.NVMLError`` subclasses. Each fake GPU can be told to fail one
function with an NVML error code, or to be lost.
"""

from __future__ import annotations

import ctypes
import os
import queue
import time
from collections import Counter
from dataclasses import dataclass, field

import pynvml

GIB = 1024**3
H100_MAX_CLOCKS_MHZ = {
    pynvml.NVML_CLOCK_SM: 1980,
    pynvml.NVML_CLOCK_MEM: 2619,
    pynvml.NVML_CLOCK_GRAPHICS: 1980,
}
_NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId/computeInstanceId outside MIG


@dataclass
class FakeMig:
    """One MIG instance: its GPU- and compute-instance ids and memory."""

    gpu_instance: int
    compute_instance: int
    memory_total: int
    memory_used: int = 0


@dataclass
class FakeGpu:
    """What one GPU reports; ``errors`` maps an NVML function name to the error it raises."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: str = "00000000:18:00.0"
    utilization_percent: int = 0
    memory_total: int = 85899345920
    memory_used: int = 0
    temperature_celsius: int = 35
    power_usage_mw: int = 70000
    power_limit_mw: int = 700000
    memory_utilization_percent: int = 0
    clocks_mhz: dict[int, int] = field(default_factory=lambda: dict(H100_MAX_CLOCKS_MHZ))
    max_clocks_mhz: dict[int, int] = field(default_factory=lambda: dict(H100_MAX_CLOCKS_MHZ))
    memory_temperature_celsius: int | None = 40  # None: the board does not report it
    energy_mj: int = 1_000_000
    pstate: int = 0
    fan_speed_percent: int | None = None  # None: no fan (an SXM board)
    pcie_rx_kib: int = 0
    pcie_tx_kib: int = 0
    pcie_replays: int = 0
    encoder_percent: int = 0
    decoder_percent: int = 0
    ecc: dict[tuple[int, int], int] | None = field(default_factory=dict)  # None: ECC off
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    clocks_event_reasons: int = 0
    old_driver: bool = False  # before 535: no nvmlDeviceGetCurrentClocksEventReasons
    mig: list[FakeMig] | None = None  # None: MIG mode off; a list: on, with these instances
    mig_capable: bool = True  # False: NVML_ERROR_NOT_SUPPORTED for the MIG calls
    gpm: dict[str, float] | None = None  # GPM metric constant name -> value; None: no GPM
    nvlink_kib: tuple[int, int] | None = None  # rx, tx KiB counters, all links; None: no NVLink
    compute_processes: list[tuple[int, int | None]] = field(default_factory=list)
    graphics_processes: list[tuple[int, int | None]] = field(default_factory=list)
    process_samples: list[tuple[int, int, int, int]] = field(default_factory=list)
    """The driver's per-process utilisation samples: pid, timestamp (µs), SM %, memory %."""
    errors: dict[str, int] = field(default_factory=dict)
    lost: bool = False


@dataclass(frozen=True)
class FakeHandle:
    """Stands for the opaque ``c_nvmlDevice_t`` pointer."""

    index: int


@dataclass(frozen=True)
class FakeMigHandle:
    """A MIG device handle: its parent GPU's index (so a lost GPU loses it) and slot."""

    index: int
    slot: int


@dataclass
class FakeEventData:
    """``c_nvmlEventData_t``'s members (``device`` a handle, as NVML fills it in)."""

    device: FakeHandle
    eventType: int
    eventData: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


class FakeEventSet:
    """Stands for ``c_nvmlEventSet_t``: the event types registered per GPU, and a queue."""

    def __init__(self) -> None:
        self.registered: dict[int, int] = {}
        self.events: queue.Queue[FakeEventData] = queue.Queue()
        self.freed = False


SUPPORTED_EVENTS = (
    pynvml.nvmlEventTypeXidCriticalError
    | pynvml.nvmlEventTypeDoubleBitEccError
    | pynvml.nvmlEventTypeSingleBitEccError
    | pynvml.nvmlEventTypePState
)


class FakeNvml:
    """Module-like object with the pynvml functions the collector may call."""

    NVMLError = pynvml.NVMLError
    NVMLLibraryMismatchError = pynvml.NVMLLibraryMismatchError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_ERROR_UNINITIALIZED = pynvml.NVML_ERROR_UNINITIALIZED
    NVML_ERROR_INVALID_ARGUMENT = pynvml.NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NO_PERMISSION = pynvml.NVML_ERROR_NO_PERMISSION
    NVML_ERROR_DRIVER_NOT_LOADED = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_LIBRARY_NOT_FOUND = pynvml.NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST

    def __getattr__(self, name: str) -> object:
        """pynvml's constants (``NVML_*``, ``nvmlClocksEventReason*``): the real values."""
        if name.startswith(("NVML_", "nvmlClocks", "nvmlEventType", "c_nvml")):
            return getattr(pynvml, name)
        raise AttributeError(name)

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        init_error: int | None = None,
        xid_file: str | None = None,
        lost_file: str | None = None,
    ) -> None:
        """For an agent that runs this fake in another process: ``xid_file``, a file whose
        lines ``INDEX XID`` become XID events; ``lost_file``, a file whose lines name the
        GPUs (by index) that fell off the bus."""
        self.gpus = gpus
        self.xid_file, self._xid_lines_seen = xid_file, 0
        self.lost_file = lost_file
        self.event_sets: list[FakeEventSet] = []
        self._gpm_buffers: list[object] = []  # kept alive: NVML owns them until freed
        self._gpm_taken: dict[int, tuple[int, int]] = {}  # address -> (GPU index, sequence)
        self._gpm_sequence = 0
        self.init_error = init_error
        self.driver_version = "550.54.15"
        self.initialized = False
        self.calls: Counter[str] = Counter()

    # --- library --------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        self.calls["nvmlShutdown"] += 1
        self._require_init()
        self.initialized = False

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self._gpu(FakeHandle(index), "nvmlDeviceGetHandleByIndex")
        return FakeHandle(index)

    # --- device queries -------------------------------------------------------
    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return self._gpu(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return self._gpu(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> pynvml.nvmlPciInfo_t:
        gpu = self._gpu(handle, "nvmlDeviceGetPciInfo")
        info = pynvml.nvmlPciInfo_t()
        info.busId = gpu.pci_bus_id.encode()
        info.busIdLegacy = gpu.pci_bus_id[-12:].encode()
        return info

    def nvmlSystemGetDriverVersion(self) -> str:
        self._require_init()
        return self.driver_version

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> pynvml.c_nvmlUtilization_t:
        gpu = self._gpu(handle, "nvmlDeviceGetUtilizationRates")
        return pynvml.c_nvmlUtilization_t(
            gpu=gpu.utilization_percent, memory=gpu.memory_utilization_percent
        )

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version=None) -> pynvml.c_nvmlMemory_t:
        gpu = self._gpu(handle, "nvmlDeviceGetMemoryInfo")
        if isinstance(handle, FakeMigHandle):
            mig = gpu.mig[handle.slot]
            free = mig.memory_total - mig.memory_used
            return pynvml.c_nvmlMemory_t(total=mig.memory_total, free=free, used=mig.memory_used)
        free = gpu.memory_total - gpu.memory_used
        return pynvml.c_nvmlMemory_t(total=gpu.memory_total, free=free, used=gpu.memory_used)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTemperature")
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_celsius

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPowerUsage").power_usage_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeRunningProcesses")
        return [_process(pid, used) for pid, used in gpu.compute_processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeHandle) -> list:
        gpu = self._gpu(handle, "nvmlDeviceGetGraphicsRunningProcesses")
        return [_process(pid, used) for pid, used in gpu.graphics_processes]

    # --- health and depth -------------------------------------------------------
    def nvmlDeviceGetProcessUtilization(self, handle: FakeHandle, timeStamp: int) -> list:  # noqa: N803
        """Samples newer than ``timeStamp``; NVML_ERROR_NOT_FOUND when there are none."""
        gpu = self._gpu(handle, "nvmlDeviceGetProcessUtilization")
        newer = [s for s in gpu.process_samples if s[1] > timeStamp]
        if not newer:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return [
            pynvml.c_nvmlProcessUtilizationSample_t(
                pid=pid, timeStamp=t, smUtil=sm, memUtil=memory, encUtil=0, decUtil=0
            )
            for pid, t, sm, memory in newer
        ]

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        return self._clock(self._gpu(handle, "nvmlDeviceGetClockInfo").clocks_mhz, clock_type)

    def nvmlDeviceGetMaxClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetMaxClockInfo")
        return self._clock(gpu.max_clocks_mhz, clock_type)

    def nvmlDeviceGetFieldValues(self, handle: FakeHandle, fieldIds: list) -> ctypes.Array:
        gpu = self._gpu(handle, "nvmlDeviceGetFieldValues")
        values = (pynvml.c_nvmlFieldValue_t * len(fieldIds))()
        rx, tx = gpu.nvlink_kib if gpu.nvlink_kib is not None else (None, None)
        known = {
            pynvml.NVML_FI_DEV_MEMORY_TEMP: (gpu.memory_temperature_celsius, "uiVal"),
            pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: (rx, "ullVal"),
            pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: (tx, "ullVal"),
        }
        types = {"uiVal": pynvml.NVML_VALUE_TYPE_UNSIGNED_INT}
        types["ullVal"] = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
        for v, asked in zip(values, fieldIds, strict=True):
            field_id, scope = asked if isinstance(asked, tuple) else (asked, 0)
            v.fieldId, v.scopeId = field_id, scope
            value, member = known.get(field_id, (None, "uiVal"))
            if value is None:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
                continue
            v.nvmlReturn = pynvml.NVML_SUCCESS
            v.valueType = types[member]
            setattr(v.value, member, value)
        return values

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj

    def nvmlDeviceGetPerformanceState(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPerformanceState").pstate

    def nvmlDeviceGetFanSpeed(self, handle: FakeHandle) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetFanSpeed")
        if gpu.fan_speed_percent is None:  # a passively cooled (SXM) board has no fan
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.fan_speed_percent

    def nvmlDeviceGetPcieThroughput(self, handle: FakeHandle, counter: int) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetPcieThroughput")
        kib = {
            pynvml.NVML_PCIE_UTIL_RX_BYTES: gpu.pcie_rx_kib,
            pynvml.NVML_PCIE_UTIL_TX_BYTES: gpu.pcie_tx_kib,
        }
        if counter not in kib:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return kib[counter]

    def nvmlDeviceGetPcieReplayCounter(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetPcieReplayCounter").pcie_replays

    def nvmlDeviceGetEncoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu(handle, "nvmlDeviceGetEncoderUtilization")
        return [gpu.encoder_percent, 167_000]  # [utilisation, sampling period in µs]

    def nvmlDeviceGetDecoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu(handle, "nvmlDeviceGetDecoderUtilization")
        return [gpu.decoder_percent, 167_000]

    def nvmlDeviceGetTotalEccErrors(
        self, handle: FakeHandle, errorType: int, counterType: int
    ) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetTotalEccErrors")
        if gpu.ecc is None:  # ECC off, or a consumer board
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.ecc.get((errorType, counterType), 0)

    def nvmlDeviceGetRemappedRows(self, handle: FakeHandle) -> tuple[int, int, int, int]:
        return self._gpu(handle, "nvmlDeviceGetRemappedRows").remapped_rows

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons")
        if gpu.old_driver:  # before 535 the driver has only the throttle-reasons name
            raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
        return gpu.clocks_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        return self._gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").clocks_event_reasons

    def _clock(self, clocks: dict[int, int], clock_type: int) -> int:
        if clock_type not in clocks:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return clocks[clock_type]

    # --- GPM --------------------------------------------------------------------
    def nvmlGpmQueryDeviceSupport(self, handle: FakeHandle) -> pynvml.c_nvmlGpmSupport_t:
        gpu = self._gpu(handle, "nvmlGpmQueryDeviceSupport")
        return pynvml.c_nvmlGpmSupport_t(
            version=pynvml.NVML_GPM_SUPPORT_VERSION, isSupportedDevice=int(gpu.gpm is not None)
        )

    def nvmlGpmSampleAlloc(self) -> pynvml.c_nvmlGpmSample_t:
        self._require_init()
        self.calls["nvmlGpmSampleAlloc"] += 1
        buffer = pynvml.struct_c_nvmlGpmSample_t()
        self._gpm_buffers.append(buffer)
        return ctypes.pointer(buffer)

    def nvmlGpmSampleGet(self, device: FakeHandle, gpmSample) -> object:
        self._gpu(device, "nvmlGpmSampleGet")
        self._gpm_sequence += 1
        self._gpm_taken[ctypes.addressof(gpmSample.contents)] = (device.index, self._gpm_sequence)
        return gpmSample

    def nvmlGpmMetricsGet(self, metricsGet) -> object:
        self._require_init()
        self.calls["nvmlGpmMetricsGet"] += 1
        first = self._gpm_taken.get(ctypes.addressof(metricsGet.sample1.contents))
        second = self._gpm_taken.get(ctypes.addressof(metricsGet.sample2.contents))
        if first is None or second is None or first[0] != second[0] or first[1] >= second[1]:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        values = {getattr(pynvml, k): v for k, v in (self.gpus[first[0]].gpm or {}).items()}
        for i in range(metricsGet.numMetrics):
            m = metricsGet.metrics[i]
            if m.metricId in values:
                m.value, m.nvmlReturn = values[m.metricId], pynvml.NVML_SUCCESS
            else:
                m.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return metricsGet

    # --- MIG --------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        gpu = self._mig_capable(handle, "nvmlDeviceGetMigMode")
        mode = pynvml.NVML_DEVICE_MIG_DISABLE if gpu.mig is None else pynvml.NVML_DEVICE_MIG_ENABLE
        return [mode, mode]  # [current, pending]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        self._mig_capable(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeMigHandle:
        gpu = self._mig_capable(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if gpu.mig is None or not 0 <= index < len(gpu.mig):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return FakeMigHandle(handle.index, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeMigHandle) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetGpuInstanceId")
        if not isinstance(handle, FakeMigHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.mig[handle.slot].gpu_instance

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeMigHandle) -> int:
        gpu = self._gpu(handle, "nvmlDeviceGetComputeInstanceId")
        if not isinstance(handle, FakeMigHandle):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.mig[handle.slot].compute_instance

    def _mig_capable(self, handle: FakeHandle, function: str) -> FakeGpu:
        gpu = self._gpu(handle, function)
        if not gpu.mig_capable:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    # --- events -----------------------------------------------------------------
    def nvmlEventSetCreate(self) -> FakeEventSet:
        self._require_init()
        self.event_sets.append(FakeEventSet())
        return self.event_sets[-1]

    def nvmlDeviceGetSupportedEventTypes(self, handle: FakeHandle) -> int:
        self._gpu(handle, "nvmlDeviceGetSupportedEventTypes")
        return SUPPORTED_EVENTS

    def nvmlDeviceRegisterEvents(self, handle: FakeHandle, eventTypes: int, eventSet) -> None:
        self._gpu(handle, "nvmlDeviceRegisterEvents")
        if eventTypes & ~SUPPORTED_EVENTS:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        eventSet.registered[handle.index] = eventTypes

    def nvmlEventSetWait_v2(self, eventSet: FakeEventSet, timeoutms: int) -> FakeEventData:
        self._require_init()
        deadline = time.monotonic() + timeoutms / 1000
        poll = 0.02 if self.xid_file else timeoutms / 1000  # as the driver: no CPU while waiting
        while True:
            self._read_xid_file()
            try:
                return eventSet.events.get(timeout=min(poll, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise pynvml.NVMLError(pynvml.NVML_ERROR_TIMEOUT) from None

    def nvmlEventSetFree(self, eventSet: FakeEventSet) -> None:
        eventSet.freed = True

    def nvmlDeviceGetIndex(self, handle: FakeHandle) -> int:
        self._gpu(handle, "nvmlDeviceGetIndex")
        return handle.index

    def inject(self, index: int, event_type: int, data: int = 0) -> None:
        """The driver reports an event on GPU ``index`` (to the sets that registered it)."""
        for event_set in self.event_sets:
            if event_set.registered.get(index, 0) & event_type and not event_set.freed:
                event_set.events.put(FakeEventData(FakeHandle(index), event_type, data))

    def _read_xid_file(self) -> None:
        if self.xid_file is None or not os.path.exists(self.xid_file):
            return
        with open(self.xid_file) as f:
            lines = f.read().splitlines()
        for line in lines[self._xid_lines_seen :]:
            index, xid = (int(x) for x in line.split())
            self.inject(index, pynvml.nvmlEventTypeXidCriticalError, xid)
        self._xid_lines_seen = len(lines)

    # --- helpers --------------------------------------------------------------
    def _require_init(self) -> None:
        if not self.initialized:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: FakeHandle, function: str) -> FakeGpu:
        self._require_init()
        self.calls[function] += 1
        gpu = self.gpus[handle.index]
        if self.lost_file is not None and os.path.exists(self.lost_file):
            with open(self.lost_file) as f:
                gpu.lost = gpu.lost or str(handle.index) in f.read().split()
        if gpu.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if function in gpu.errors:
            raise pynvml.NVMLError(gpu.errors[function])
        return gpu


def _process(pid: int, used: int | None) -> pynvml.nvmlFriendlyObject:
    """A process entry as pynvml builds it (None stands for NVML_VALUE_NOT_AVAILABLE)."""
    info = pynvml.c_nvmlProcessInfo_t(
        pid=pid,
        usedGpuMemory=used if used is not None else 0,
        gpuInstanceId=_NO_INSTANCE,
        computeInstanceId=_NO_INSTANCE,
    )
    obj = pynvml.nvmlStructToFriendlyObject(info)
    if used is None:
        obj.usedGpuMemory = None
    return obj


def throttled_h100() -> FakeGpu:
    """A busy H100 held down by its power cap and the driver's thermal slowdown, with a few
    ECC errors, one uncorrectable, and a row remap pending."""
    return FakeGpu(
        "GPU-5d3a2f4e-8c1b-4e7a-9f20-6b1d0c3e7a91",
        utilization_percent=100,
        memory_utilization_percent=61,
        memory_used=70 * GIB,
        temperature_celsius=83,
        power_usage_mw=699_000,
        clocks_mhz={
            pynvml.NVML_CLOCK_SM: 1755,
            pynvml.NVML_CLOCK_MEM: 2619,
            pynvml.NVML_CLOCK_GRAPHICS: 1755,
        },
        memory_temperature_celsius=78,
        energy_mj=987_654_321,
        pcie_rx_kib=2_000_000,
        pcie_tx_kib=150_000,
        pcie_replays=3,
        decoder_percent=12,
        ecc={
            (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC): 5,
            (pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC): 41,
            (pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC): 1,
        },
        remapped_rows=(2, 1, 1, 0),
        clocks_event_reasons=pynvml.nvmlClocksEventReasonSwPowerCap
        | pynvml.nvmlClocksEventReasonSwThermalSlowdown,
        gpm={
            "NVML_GPM_METRIC_SM_UTIL": 71.5,
            "NVML_GPM_METRIC_SM_OCCUPANCY": 43.0,
            "NVML_GPM_METRIC_ANY_TENSOR_UTIL": 38.25,
            "NVML_GPM_METRIC_DRAM_BW_UTIL": 55.0,
        },
    )
