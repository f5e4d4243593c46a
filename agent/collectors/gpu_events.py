"""GPU events the moment they happen: XID errors, ECC errors and a GPU falling off the bus.

A thread waits on NVML's event set (``nvmlEventSetWait_v2``, one second at a time so it
stops promptly) for the event types each GPU supports among those below, and hands each
event at once to the agent's delivery as an ``event`` point (name ``gpu_xid``,
``gpu_ecc_double_bit``, ...; source ``nvml``; tags ``gpu`` and ``gpu_uuid``; metadata with
the XID code and its meaning). The counts per (GPU, XID) and the number of GPUs still on
the bus are on ``/metrics`` (``fleetgauge_gpu_xid_errors_total``, ``fleetgauge_gpus``),
for alert rules.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from fleetgauge import catalogue
from fleetgauge.catalogue import Point

__all__ = ["GpuEvents", "XID_MEANINGS", "EVENT_TYPES"]

log = logging.getLogger("fleetgauge.agent.gpu")

EVENT_TYPES = {
    "nvmlEventTypeXidCriticalError": catalogue.GPU_XID_EVENT,
    "nvmlEventTypeDoubleBitEccError": catalogue.GPU_ECC_DOUBLE_BIT_EVENT,
    "nvmlEventTypeSingleBitEccError": catalogue.GPU_ECC_SINGLE_BIT_EVENT,
}
"""pynvml event type constant -> the event's name in the store."""
GPU_LOST = catalogue.GPU_LOST_EVENT
SOURCE = "nvml"
XID_MEANINGS = {
    13: "graphics engine exception",
    31: "GPU memory page fault",
    43: "GPU stopped processing",
    45: "preemptive cleanup, after earlier errors",
    48: "double-bit ECC error",
    61: "internal micro-controller breakpoint/warning",
    62: "internal micro-controller halt",
    63: "ECC page retirement or row remapping recorded",
    64: "ECC page retirement or row remapping failed",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
    119: "GSP RPC timeout",
    120: "GSP error",
}
"""What common XID codes mean (NVIDIA's XID catalogue); others are reported by number."""
WAIT_MS = 1000


class GpuEvents(Collector):
    """The event thread and the counts it keeps, exposed on ``/metrics``."""

    def __init__(
        self,
        nvml: Any,
        gpus: Sequence[tuple[Any, Mapping[str, str]]],
        identity: Mapping[str, str],
        emit: Callable[[list[Point]], object],
        clock_ns: Callable[[], int],
    ) -> None:
        """``gpus``: (NvmlDevice, the tags of its points) pairs; ``emit`` takes event points."""
        self._nvml, self._identity, self._emit, self._clock_ns = (
            nvml,
            dict(identity),
            emit,
            clock_ns,
        )
        self._tags = {gpu.index: tags for gpu, tags in gpus}
        self._xids: dict[tuple[str, str], int] = {}
        self._present = len(gpus)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._set = None
        self._thread: threading.Thread | None = None
        self._register([gpu for gpu, _ in gpus])

    def _register(self, gpus: Sequence[Any]) -> None:
        nvml = self._nvml
        try:
            self._set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as e:
            log.info("no GPU events: NVML cannot create an event set (%s)", e)
            return
        wanted = 0
        for name in EVENT_TYPES:
            wanted |= getattr(nvml, name)
        for gpu in gpus:
            try:
                supported = nvml.nvmlDeviceGetSupportedEventTypes(gpu.handle)
                if supported & wanted:
                    nvml.nvmlDeviceRegisterEvents(gpu.handle, supported & wanted, self._set)
            except nvml.NVMLError as e:
                log.info("no events from GPU %d: %s", gpu.index, e)

    def start(self) -> None:
        if self._set is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gpu-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT_MS / 1000 + 2)
        if self._set is not None:
            try:
                self._nvml.nvmlEventSetFree(self._set)
            except self._nvml.NVMLError:
                pass
            self._set = None

    def gpu_lost(self, index: int) -> None:
        """A GPU fell off the bus (seen by the sampler): an event, and one GPU fewer."""
        with self._lock:
            self._present -= 1
        self._event(GPU_LOST, index, {"meaning": XID_MEANINGS[79]})

    def _run(self) -> None:
        nvml = self._nvml
        while not self._stop.is_set():
            try:
                data = nvml.nvmlEventSetWait_v2(self._set, WAIT_MS)
            except nvml.NVMLError as e:
                if e.value != nvml.NVML_ERROR_TIMEOUT:
                    log.warning("waiting for GPU events failed: %s; waiting again in 1 s", e)
                    self._stop.wait(1.0)
                continue
            self._on(data)

    def _on(self, data: Any) -> None:
        nvml = self._nvml
        try:
            index = nvml.nvmlDeviceGetIndex(data.device)
        except nvml.NVMLError:
            index = -1
        kind = next(
            (
                name
                for constant, name in EVENT_TYPES.items()
                if data.eventType & getattr(nvml, constant)
            ),
            f"gpu_event_{data.eventType}",
        )
        metadata: dict[str, object] = {}
        if kind == catalogue.GPU_XID_EVENT:
            xid = int(data.eventData)
            metadata = {"xid": xid, "meaning": XID_MEANINGS.get(xid, "see NVIDIA's XID catalogue")}
            with self._lock:
                key = (str(index), str(xid))
                self._xids[key] = self._xids.get(key, 0) + 1
        self._event(kind, index, metadata)

    def _event(self, name: str, index: int, metadata: dict[str, object]) -> None:
        tags = {**self._identity, catalogue.EVENT_NAME: name, catalogue.EVENT_SOURCE: SOURCE}
        gpu_tags = self._tags.get(index, {})
        tags[catalogue.GPU] = str(index)
        if catalogue.GPU_UUID in gpu_tags:
            tags[catalogue.GPU_UUID] = gpu_tags[catalogue.GPU_UUID]
        fields = {"metadata": json.dumps({"gpu": index, **metadata}, sort_keys=True)}
        log.warning("GPU %d: %s %s", index, name, metadata or "")
        self._emit([Point(catalogue.EVENT.name, tags, fields, self._clock_ns())])

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = (catalogue.WORKER, catalogue.ENVIRONMENT)
        ids = tuple(self._identity.get(k, "") for k in labels)
        with self._lock:
            xids, present = dict(self._xids), self._present
        count = GaugeMetricFamily(
            catalogue.GPUS_METRIC, "GPUs on the bus (a GPU that fell off leaves it)", labels=labels
        )
        count.add_metric(ids, present)
        yield count
        errors = CounterMetricFamily(
            catalogue.GPU_XID_METRIC.removesuffix("_total"),
            "XID errors reported by NVML, per GPU and XID code",
            labels=(*labels, catalogue.GPU, "xid"),
        )
        for (gpu, xid), n in sorted(xids.items()):
            errors.add_metric((*ids, gpu, xid), n)
        yield errors
