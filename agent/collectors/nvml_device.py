"""One GPU read through NVML: the fields of the ``gpu`` measurement and memory per process.

Kept apart from :mod:`fleetgauge.agent.collectors.gpu`, which owns NVML's start-up, retries and
logging. Only the fields the catalogue holds are asked for (NVML calls serialise through
the GPU's firmware). Any NVML error on one call leaves that value out, except
``GPU_IS_LOST``, which raises :class:`GpuLost` so the caller skips the whole device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetgauge.catalogue import GPU_MEASUREMENT

__all__ = ["GpuLost", "NvmlDevice"]

(
    UTILIZATION_PERCENT,
    MEMORY_USED_BYTES,
    MEMORY_TOTAL_BYTES,
    MEMORY_USED_PERCENT,
    TEMPERATURE_CELSIUS,
    POWER_DRAW_WATTS,
    POWER_LIMIT_WATTS,
) = GPU_MEASUREMENT.field_names


class GpuLost(Exception):
    """The GPU fell off the bus (NVML_ERROR_GPU_IS_LOST)."""


class NvmlDevice:
    """An opened GPU: its NVML index, handle, UUID and product name (None when unknown)."""

    def __init__(self, nvml: Any, index: int) -> None:
        """Open GPU ``index`` of an initialised ``nvml`` module; raises GpuLost when the GPU
        cannot be opened (lost, or hidden from this container)."""
        # NVMLLibraryMismatchError: an unversioned call that the installed driver lacks
        self._errors = (nvml.NVMLError, getattr(nvml, "NVMLLibraryMismatchError", nvml.NVMLError))
        self._nvml, self.index = nvml, index
        self.handle = self._call(nvml.nvmlDeviceGetHandleByIndex, index)
        if self.handle is None:
            raise GpuLost(index)
        self.uuid: str | None = self._call(nvml.nvmlDeviceGetUUID, self.handle)
        self.name: str | None = self._call(nvml.nvmlDeviceGetName, self.handle)

    def fields(self) -> dict[str, float | int]:
        """Use of the GPU now, as ``gpu`` fields; NVML's milliwatts become watts."""
        nvml, call, handle, fields = self._nvml, self._call, self.handle, {}
        if (util := call(nvml.nvmlDeviceGetUtilizationRates, handle)) is not None:
            fields[UTILIZATION_PERCENT] = float(util.gpu)
        if (memory := call(nvml.nvmlDeviceGetMemoryInfo, handle)) is not None:
            fields[MEMORY_USED_BYTES], fields[MEMORY_TOTAL_BYTES] = memory.used, memory.total
            if memory.total > 0:
                fields[MEMORY_USED_PERCENT] = 100.0 * memory.used / memory.total
        temperature = call(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        if temperature is not None:
            fields[TEMPERATURE_CELSIUS] = float(temperature)
        if (milliwatts := call(nvml.nvmlDeviceGetPowerUsage, handle)) is not None:
            fields[POWER_DRAW_WATTS] = milliwatts / 1000.0
        if (milliwatts := call(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)) is not None:
            fields[POWER_LIMIT_WATTS] = milliwatts / 1000.0
        return fields

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

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None on an NVML error; raises GpuLost when the GPU is lost."""
        try:
            return fn(*args)
        except self._errors as e:
            if getattr(e, "value", None) == self._nvml.NVML_ERROR_GPU_IS_LOST:
                raise GpuLost(self.index) from e
            return None
