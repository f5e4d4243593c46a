"""Network collector: receive and transmit bytes per second per interface.

``network`` (tag ``interface``): rates from the kernel's byte counters over the real time
between samples (:class:`RateTracker`): an interface's first sample and a sample after its
counters reset give no point. Loopback (``lo``) carries only local traffic and is skipped
unless ``include_loopback`` is set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from fleetgauge.agent.collectors.rates import RateTracker
from fleetgauge.catalogue import INTERFACE, NETWORK, Point

__all__ = ["NetworkCollector", "is_loopback"]

RECEIVE_BYTES_PER_SECOND, TRANSMIT_BYTES_PER_SECOND = NETWORK.field_names


def is_loopback(interface: str) -> bool:
    """Whether an interface name is the loopback one ('lo' on Linux, 'lo0' on BSD/macOS)."""
    return interface == "lo" or (interface.startswith("lo") and interface[2:].isdigit())


class NetworkCollector:
    """Reports one ``network`` point per interface."""

    name = NETWORK.name  # a collector is named after its main measurement

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        include_loopback: bool = False,
        io_counters: Callable[[], Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``io_counters`` returns psutil's per-interface counters; tests pass fakes."""
        if io_counters is None:
            import psutil

            io_counters = partial(psutil.net_io_counters, pernic=True)
        self._io_counters, self._include_loopback = io_counters, include_loopback
        self._tags = dict(tags)
        self._interface_tags: dict[str, dict[str, str]] = {}
        self._rates = RateTracker(clock)
        self._rates.update(self._read())

    def _read(self) -> dict[str, tuple[int, int]]:
        try:
            counters = self._io_counters()
        except OSError:
            return {}
        return {
            name: (c.bytes_recv, c.bytes_sent)
            for name, c in counters.items()
            if self._include_loopback or not is_loopback(name)
        }

    def collect(self, now_ns: int) -> list[Point]:
        """Bytes per second each interface received and sent since the previous sample."""
        rates = self._rates.update(self._read())
        for gone in self._interface_tags.keys() - rates.keys():
            del self._interface_tags[gone]
        points = []
        for name, (received, sent) in rates.items():
            tags = self._interface_tags.get(name)
            if tags is None:
                tags = self._interface_tags[name] = {**self._tags, INTERFACE: name}
            fields = {RECEIVE_BYTES_PER_SECOND: received, TRANSMIT_BYTES_PER_SECOND: sent}
            points.append(Point(NETWORK.name, tags, fields, now_ns))
        return points
