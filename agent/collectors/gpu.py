"""GPU collector: use of each NVIDIA GPU and GPU memory per process, read through NVML.

``gpu`` (tag ``gpu`` = NVML index, plus ``gpu_uuid``, ``gpu_name``, ``gpu_pci_bus_id`` and
``gpu_driver_version``): utilisation, memory, temperatures, power and energy, clocks, PCIe,
ECC and remapped rows, throttle reasons (see the catalogue).
``gpu_process`` (tags ``gpu``, ``pid``, ``process``): GPU memory of each compute or graphics
process, where the driver reports it, and its share of the GPU's SM and memory time
(``nvmlDeviceGetProcessUtilization``, averaged over the driver's samples since the last
sample); a process registered with the agent also gets its deployment, pipeline and
execution (:mod:`fleetgauge.agent.collectors.process`), one that is not keeps its pid and
command name. ``gpu_mig`` (tags ``gpu``, ``gpu_instance``,
``compute_instance``): the memory of each MIG instance of a GPU in MIG mode. What is read
from one GPU is in :mod:`fleetgauge.agent.collectors.nvml_device`.

Failures never stop the agent. NVML is started at the first sample; when that fails (no
``nvidia-ml-py``, no ``libnvidia-ml.so``, no driver, no GPU, any NVML error) one line is
logged on ``fleetgauge.agent.gpu`` (info when the machine simply has no GPU, warning
otherwise) and nothing is reported. Start-up is retried quietly every ``retry_s`` seconds
(default 10 minutes): a driver loaded after the agent is picked up without a restart, and
a GPU-less worker pays one failed library load per retry, not per sample. A field a card
does not support is left out; a GPU that fell off the bus (``GPU_IS_LOST``) is skipped,
with one warning per GPU.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from fleetgauge.agent.collectors.gpu_events import GpuEvents
from fleetgauge.agent.collectors.nvml_device import GpuLost, NvmlDevice
from fleetgauge.agent.collectors.process import ProcessRegistry
from fleetgauge.catalogue import (
    COMPUTE_INSTANCE,
    GPU,
    GPU_DRIVER_VERSION,
    GPU_INSTANCE,
    GPU_MEASUREMENT,
    GPU_MIG,
    GPU_NAME,
    GPU_PCI_BUS_ID,
    GPU_PROCESS,
    GPU_UUID,
    PID,
    PROCESS,
    Point,
)
from fleetgauge.procinfo import command_of

__all__ = ["GpuCollector"]

PROCESS_MEMORY_USED_BYTES, PROCESS_SM_PERCENT, PROCESS_MEMORY_PERCENT = GPU_PROCESS.field_names
log = logging.getLogger("fleetgauge.agent.gpu")


class GpuCollector:
    """Reports one ``gpu`` point per GPU and one ``gpu_process`` point per process on it."""

    name = GPU_MEASUREMENT.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = 600.0,
        processes: ProcessRegistry | None = None,
    ) -> None:
        """``nvml`` is the ``pynvml`` module (imported at the first sample when None) or a
        fake with the same functions; ``retry_s`` spaces start-up attempts after a failure;
        ``processes`` (the registered ones) gives a GPU process its deployment and the
        ``/proc`` its command name is read from."""
        self._processes = processes if processes is not None else ProcessRegistry()
        self._tags, self._nvml, self._clock, self._retry_s = dict(tags), nvml, clock, retry_s
        self._gpus: list[tuple[NvmlDevice, dict[str, str]]] | None = None  # None: not started
        self._retry_at = float("-inf")
        self._reported_failure = False
        self._lost: set[int] = set()
        self._driver: str | None = None
        self._emit: Callable[[list[Point]], object] | None = None
        self.events: GpuEvents | None = None

    def collect(self, now_ns: int) -> list[Point]:
        """One point per GPU and per GPU process; empty while NVML is unavailable."""
        if self._gpus is None and (self._clock() < self._retry_at or not self._start()):
            return []
        points: list[Point] = []
        for gpu, tags in self._gpus or ():
            try:
                fields, processes, migs = gpu.fields(), gpu.processes(), gpu.mig_instances()
                shares = gpu.process_utilization() if processes else {}
            except GpuLost:
                if gpu.index not in self._lost:
                    log.warning("GPU %d is lost (fell off the bus); skipping it", gpu.index)
                    self._lost.add(gpu.index)
                    if self.events is not None:
                        self.events.gpu_lost(gpu.index)
                continue
            if fields:
                points.append(Point(GPU_MEASUREMENT.name, tags, fields, now_ns))
            for gpu_instance, compute_instance, mig_fields in migs:
                mig_tags = {
                    **self._tags,
                    GPU: tags[GPU],
                    GPU_INSTANCE: str(gpu_instance),
                    COMPUTE_INSTANCE: str(compute_instance),
                }
                points.append(Point(GPU_MIG.name, mig_tags, mig_fields, now_ns))
            for pid, used in processes.items():
                points.append(self._process_point(tags[GPU], pid, used, shares, now_ns))
        return points

    def _process_point(
        self,
        gpu: str,
        pid: int,
        used: int,
        shares: Mapping[int, tuple[float, float]],
        now_ns: int,
    ) -> Point:
        """One process's use of one GPU, under its registration's tags when it has one."""
        tags = {**self._tags, GPU: gpu, PID: str(pid)}
        registered = self._processes.tags_of(pid)
        if registered is not None:
            tags.update(registered)
        command = command_of(pid, self._processes.proc_root)
        if command:
            tags[PROCESS] = command
        fields = {PROCESS_MEMORY_USED_BYTES: used}
        if pid in shares:
            fields[PROCESS_SM_PERCENT], fields[PROCESS_MEMORY_PERCENT] = shares[pid]
        return Point(GPU_PROCESS.name, tags, fields, now_ns)

    def watch_events(self, emit: Callable[[list[Point]], object]) -> Collector:
        """Have GPU events (XID, ECC, a GPU lost) handed to ``emit`` as they happen, from
        when NVML starts; returns what exposes their counts on ``/metrics``."""
        self._emit = emit
        return _EventMetrics(self)

    def close(self) -> None:
        """Shut NVML down; the collector reports nothing afterwards."""
        if self.events is not None:
            self.events.stop()
            self.events = None
        if self._gpus is not None:
            self._shutdown()
        self._gpus, self._retry_at = None, float("inf")

    def _start(self) -> bool:
        """Start NVML and open the GPUs; on failure log once and wait ``retry_s``."""
        self._retry_at = self._clock() + self._retry_s
        try:
            nvml = self._nvml = self._nvml or importlib.import_module("pynvml")
        except ImportError as e:
            return self._unavailable(f"nvidia-ml-py is not installed ({e})", quiet=True)
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            no_gpu = (nvml.NVML_ERROR_LIBRARY_NOT_FOUND, nvml.NVML_ERROR_DRIVER_NOT_LOADED)
            return self._unavailable(f"NVML did not start: {e}", quiet=e.value in no_gpu)
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError:
            count = 0
        try:
            self._driver = nvml.nvmlSystemGetDriverVersion() or None
        except nvml.NVMLError:
            self._driver = None
        gpus = [(gpu, self._gpu_tags(gpu)) for gpu in map(self._open, range(count)) if gpu]
        if not gpus:
            self._shutdown()
            return self._unavailable(f"no usable GPU ({count} found)", quiet=count == 0)
        if self._reported_failure:
            log.info("GPU monitoring started: %d GPU(s)", len(gpus))
        self._gpus = gpus
        if self._emit is not None:
            self.events = GpuEvents(nvml, gpus, self._tags, self._emit, time.time_ns)
            self.events.start()
        return True

    def _open(self, index: int) -> NvmlDevice | None:
        try:
            return NvmlDevice(self._nvml, index, self._clock)
        except GpuLost:
            return None

    def _gpu_tags(self, gpu: NvmlDevice) -> dict[str, str]:
        tags = {**self._tags, GPU: str(gpu.index)}
        for key, value in (
            (GPU_UUID, gpu.uuid),
            (GPU_NAME, gpu.name),
            (GPU_PCI_BUS_ID, gpu.pci_bus_id),
            (GPU_DRIVER_VERSION, self._driver),
        ):
            if value:
                tags[key] = value
        return tags

    def _unavailable(self, reason: str, *, quiet: bool) -> bool:
        if not self._reported_failure:
            level = logging.INFO if quiet else logging.WARNING
            log.log(level, "no GPU metrics: %s; retrying every %gs", reason, self._retry_s)
            self._reported_failure = True
        return False

    def _shutdown(self) -> None:
        """Release our nvmlInit (NVML counts them: other users in the process keep theirs)."""
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass  # the driver went away meanwhile


class _EventMetrics(Collector):
    """``/metrics`` families of the GPU events, once NVML has started (none before)."""

    def __init__(self, gpu: GpuCollector) -> None:
        self._gpu = gpu

    def collect(self) -> Iterator[Metric]:
        if (events := self._gpu.events) is not None:
            yield from events.collect()
