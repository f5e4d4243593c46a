"""GPU health over a range: which GPUs had XID errors, uncorrectable ECC errors or throttling.

Read in two small queries whatever the range: the ``gpu`` throttle and ECC fields in a
single bucket per (worker, GPU), whose mean of a 0/1 field is the share of the range it
held and whose max - min of a counter is what it counted in the range; and the
``gpu_xid`` events of the range. A GPU with nothing to report is left out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetgauge import catalogue
from fleetgauge.dashboard.data.resources import resource_filter
from fleetgauge.stores import StoreReader

__all__ = ["GpuTrouble", "read_gpu_health", "read_heat_intervals", "XID_EVENT"]

XID_EVENT = catalogue.GPU_XID_EVENT
THERMAL = ("throttle_thermal_software", "throttle_thermal_hardware")
POWER = "throttle_power_cap"
ECC = "ecc_uncorrected_volatile_errors"
MAX_EVENTS = 10_000
"""XID events read per range at most (a GPU in an XID storm still shows; the count stops)."""


@dataclass
class GpuTrouble:
    """What one GPU went through in the range."""

    worker: str
    gpu: str
    xids: list[int] = field(default_factory=list)
    ecc_errors: float = 0.0
    thermal_share: float = 0.0
    """Share of the range its clocks were held down for heat (0 to 1)."""
    power_share: float = 0.0
    """Share of the range it ran at its power cap."""

    @property
    def level(self) -> str:
        if self.xids or self.ecc_errors:
            return "critical"
        return "warning" if self.thermal_share else "info"

    def _rank(self) -> tuple:
        order = ("info", "warning", "critical").index(self.level)
        return (order, len(self.xids), self.ecc_errors, self.thermal_share, self.power_share)

    @property
    def summary(self) -> str:
        """The worst of it, in words: ``XID 48``, ``slowed for heat 35 % of the time``."""
        if self.xids:
            codes = ", ".join(str(x) for x in sorted(set(self.xids)))
            times = f" ({len(self.xids)} times)" if len(self.xids) > 1 else ""
            return f"XID {codes}{times}"
        if self.ecc_errors:
            return f"{self.ecc_errors:.0f} uncorrectable ECC errors"
        if self.thermal_share:
            return f"slowed for heat {self.thermal_share:.0%} of the time"
        return f"at its power cap {self.power_share:.0%} of the time"


def read_gpu_health(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    environment: str | None = None,
    workers: Sequence[str] = (),
) -> tuple[list[GpuTrouble], int]:
    """GPUs with trouble in the range, worst first, and how many GPUs reported at all."""
    where = resource_filter(environment, workers)
    fields = [*THERMAL, POWER, ECC]
    b = store.read_buckets(
        catalogue.GPU_MEASUREMENT.name,
        fields,
        start_ns,
        end_ns,
        1,
        where,
        (catalogue.WORKER, catalogue.GPU),
    )
    found: dict[tuple[str, str], GpuTrouble] = {}
    seen: set[tuple[str, str]] = set()
    for s in b.series:
        key = (s.tags.get(catalogue.WORKER, ""), s.tags.get(catalogue.GPU, ""))
        seen.add(key)
        trouble = GpuTrouble(*key)
        shares = {}
        for name in (*THERMAL, POWER):
            fb = s.fields.get(name)
            n = sum(fb.count) if fb else 0
            shares[name] = (
                sum(m * c for m, c in zip(fb.mean, fb.count, strict=True) if c) / n if n else 0.0
            )
        trouble.thermal_share = max(shares[t] for t in THERMAL)
        trouble.power_share = shares[POWER]
        ecc = s.fields.get(ECC)
        if ecc and sum(ecc.count):
            lows = [v for v, c in zip(ecc.min, ecc.count, strict=True) if c]
            highs = [v for v, c in zip(ecc.max, ecc.count, strict=True) if c]
            trouble.ecc_errors = max(highs) - min(lows)
        found[key] = trouble
    xids: dict[tuple[str, str], list[int]] = defaultdict(list)
    event_filter = {catalogue.EVENT_NAME: [XID_EVENT]}
    if environment:
        event_filter[catalogue.ENVIRONMENT] = [environment]
    for i, p in enumerate(
        store.stream_points(catalogue.EVENT.name, start_ns, end_ns, event_filter)
    ):
        if i >= MAX_EVENTS:
            break
        worker = p.tags.get(catalogue.WORKER, "")
        if workers and worker not in workers:
            continue
        try:
            xid = int(json.loads(p.fields.get("metadata") or "{}").get("xid", -1))
        except (ValueError, TypeError, AttributeError):
            xid = -1
        xids[(worker, p.tags.get(catalogue.GPU, ""))].append(xid)
    for key, codes in xids.items():
        found.setdefault(key, GpuTrouble(*key)).xids = codes
        seen.add(key)
    troubled = [
        t for t in found.values() if t.xids or t.ecc_errors or t.thermal_share or t.power_share
    ]
    return sorted(troubled, key=lambda t: t._rank(), reverse=True), len(seen)


def read_heat_intervals(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    max_points: int,
    environment: str | None = None,
    workers: Sequence[str] = (),
) -> list[tuple[int, int]]:
    """[start, end) spans, on the graphs' buckets, in which any chosen GPU was slowed for
    heat; touching buckets are merged into one span."""
    where = resource_filter(environment, workers)
    b = store.read_buckets(
        catalogue.GPU_MEASUREMENT.name, list(THERMAL), start_ns, end_ns, max_points, where, ()
    )
    hot: set[int] = set()
    for s in b.series:
        for name in THERMAL:
            fb = s.fields.get(name)
            if fb is None:
                continue
            for t, high, n in zip(s.times, fb.max, fb.count, strict=True):
                if n and high:
                    hot.add(t)
    spans: list[tuple[int, int]] = []
    for t in sorted(hot):
        if spans and spans[-1][1] == t:
            spans[-1] = (spans[-1][0], t + b.step_ns)
        else:
            spans.append((t, t + b.step_ns))
    return spans
