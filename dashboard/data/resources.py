"""Store reads shaped for the resources page: curves per worker, an aggregate, verdicts.

Plain functions over a ``Store`` (no Dash here), so they are tested and
benchmarked without a browser. Reads are bucketed on the store to about the
chart's width and come from the rollup tiers when the range is long.

How devices and workers combine (a worker may have several GPUs, mounts or
interfaces):

- a worker's curve is the mean over its devices for percentages and the sum for
  rates, with a band from the lowest to the highest value any device had in the
  bucket (for rates: the sums of the lows and of the highs);
- the aggregate curve is the mean of the workers' curves for percentages and
  their sum for rates;
- verdicts judge each device on its own (one full disk is a full disk however
  empty the others are) and a worker takes its worst device.

At fleet size (more than ``ALL_WORKERS_AT_MOST`` workers in the view) a graph of
one curve per worker is unreadable and its reads grow with the fleet. Then every
worker is read once at about ``FLEET_POINTS`` buckets (from the coarsest tier
that serves the range), as a grid: counts and sums in a matrix of groups by
buckets, judged in array operations with no curve built per worker. That read
judges every worker for the cards, ranks them, and gives the fleet's band (per
bucket: the aggregate, the 10th and 90th percentiles and the lowest and highest
of the workers' values). Full curves are read for the top N workers only
(``DEFAULT_TOP``, by the value the cards judge), at half the chart's points or
more when a coarser tier then serves them.

A device's *sustained* value is the level it stayed at or above for the
configured share of the range (with a share of 0.25: the upper quartile of its
bucket means, buckets without a sample counting as 0); it is "over" a
threshold when that value is. One spike therefore never makes a worker over,
and neither does a worker seen for a minute of the day; a quarter of the range
does.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np

from fleetgauge import catalogue
from fleetgauge.catalogue import TIERS
from fleetgauge.dashboard.data.listings import RESOURCE_FIELDS, RESOURCE_NAMES, list_environments
from fleetgauge.dashboard.thresholds import RESOURCES, Resource, Threshold, Thresholds
from fleetgauge.stores import StoreReader
from fleetgauge.stores.buckets import Buckets, BucketSeries, Grid
from fleetgauge.stores.planning import plan_read

__all__ = [
    "ALL_WORKERS_AT_MOST",
    "DEFAULT_TOP",
    "MOST_DRAWN",
    "FLEET_POINTS",
    "FleetBand",
    "FleetRead",
    "fleet_band",
    "fleet_read",
    "Curve",
    "Verdict",
    "ResourceView",
    "read_resource",
    "read_resources",
    "ResourcesPage",
    "read_resources_page",
    "list_workers",
    "resource_filter",
    "sustained",
    "done",
]

OK, WARNING, CRITICAL = "ok", "warning", "critical"
T = TypeVar("T")
ALL_WORKERS_AT_MOST = 12
"""Up to this many workers in a view every one is drawn; past it, the fleet's band and the top N."""
DEFAULT_TOP = 10
"""Workers drawn as curves of their own at fleet size, unless the page asks for another N."""
MOST_DRAWN = 50
"""At most this many curves of their own at fleet size: the top N asked for, or a selection."""
FLEET_POINTS = 120
"""At most this many buckets in the read that judges and ranks every worker and draws the
fleet's band."""
FLEET_MIN_BUCKETS = 24
"""...and, from the coarsest rollup tier that gives at least this many (a day: 1 h buckets)."""
FLEET_FEWEST_BUCKETS = 6
"""...or down to this many, from a coarser tier, when the fleet is too large for that read."""
FLEET_CELLS = 30_000
"""At most this many buckets (workers x buckets) a measurement in the read of every worker:
its rows are what SQLite steps through and influxd encodes (about 1 µs each)."""


@dataclass
class Curve:
    """One line of a graph: buckets with data only (a missing bucket is a gap)."""

    name: str
    times: list[int]
    mean: list[float]
    lo: list[float]
    hi: list[float]
    count: list[int]
    note: str = ""

    @property
    def samples(self) -> int:
        """Raw samples behind the curve."""
        return sum(self.count)


@dataclass
class Verdict:
    """How one worker did over the range: its worst device's sustained value and level."""

    worker: str
    device: str | None
    value: float
    level: str
    seen_ns: int = 0
    """How long the worker was seen in the range: its buckets with a sample, times their width."""
    peak: float = 0.0
    """The highest bucket mean of its worst device (what a briefly seen worker did)."""
    mean: float = 0.0
    """Its curve's mean over the buckets it was seen in (samples weigh)."""
    latest: float = 0.0
    """Its curve's last bucket mean."""
    last_ns: int = 0
    """The end of its last bucket with a sample: when it was last seen, to a bucket."""


@dataclass
class FleetBand:
    """Across workers, per bucket: their aggregate and the spread of their values.

    ``aggregate`` is the mean of the workers' values for percentages and their sum for
    rates; ``p10``/``p90`` the 10th and 90th percentiles (numpy's linear interpolation),
    ``low``/``high`` the extremes; ``workers`` how many had a value in the bucket.
    """

    times: list[int]
    aggregate: list[float]
    p10: list[float]
    p90: list[float]
    low: list[float]
    high: list[float]
    workers: list[int]
    step_ns: int


def fleet_band(curves: Sequence[Curve], is_percent: bool, step_ns: int) -> FleetBand | None:
    """The band of workers' curves (one per worker, bucket means as values)."""
    curves = [c for c in curves if c.times]
    if not curves:
        return None
    times = np.unique(np.concatenate([np.asarray(c.times, dtype=np.int64) for c in curves]))
    values = np.full((len(curves), len(times)), np.nan)
    for i, c in enumerate(curves):
        values[i, np.searchsorted(times, c.times)] = c.mean
    return _band(times, values, is_percent, step_ns)


def _band(times: Any, values: Any, is_percent: bool, step_ns: int) -> FleetBand | None:
    """The band of a workers x buckets matrix of values (NaN: no value); buckets without
    any worker are left out."""
    missing = np.isnan(values)
    held = ~missing.all(axis=0)
    if not held.all():
        times, values, missing = times[held], values[:, held], missing[:, held]
    if not len(times):
        return None
    present = len(values) - missing.sum(axis=0)
    if missing.any():
        aggregate = np.nanmean(values, axis=0) if is_percent else np.nansum(values, axis=0)
        p10, p90 = np.nanpercentile(values, [10, 90], axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    else:  # every worker in every bucket (the usual case): the plain functions, faster
        aggregate = values.mean(axis=0) if is_percent else values.sum(axis=0)
        p10, p90 = np.percentile(values, [10, 90], axis=0)
        low, high = values.min(axis=0), values.max(axis=0)
    return FleetBand(
        times.tolist(),
        aggregate.tolist(),
        p10.tolist(),
        p90.tolist(),
        low.tolist(),
        high.tolist(),
        present.tolist(),
        step_ns,
    )


@dataclass
class ResourceView:
    """Everything one card and one graph show for a resource over a range."""

    resource: Resource
    start_ns: int
    end_ns: int
    step_ns: int
    level: str
    curves: list[Curve] = field(default_factory=list)
    total: Curve | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    band: FleetBand | None = None
    """At fleet size: the band of every worker; ``curves`` then hold the top workers only."""

    @property
    def workers(self) -> int:
        """Workers in the view (drawn or not)."""
        return len(self.verdicts)

    @property
    def samples(self) -> int:
        """Raw samples (per device) the drawn curves summarise: the M of "N of M points"."""
        return sum(c.samples for c in self.curves)

    @property
    def plotted(self) -> int:
        """Points drawn on the worker curves: the N of "N of M points"."""
        return sum(len(c.times) for c in self.curves)

    def over(self) -> list[Verdict]:
        """Workers at warning level or worse, worst first."""
        return [v for v in self.verdicts if v.level != OK]


def resource_filter(
    environment: str | None, workers: Sequence[str] = ()
) -> dict[str, list[str]] | None:
    """The tag filter of a view: one environment (None: all) and the chosen workers."""
    where: dict[str, list[str]] = {}
    if environment:
        where[catalogue.ENVIRONMENT] = [environment]
    if workers:
        where[catalogue.WORKER] = list(workers)
    return where or None


def sustained(values: Sequence[float], share: float, buckets: int) -> float:
    """The highest level the values stayed at or above for ``share`` of ``buckets``.

    ``values`` are the bucket means a device has; the range has ``buckets``
    buckets in all, and those without a value count as 0 (a worker seen for a
    minute of a day is not over anything for that day).
    """
    ranked = sorted(values, reverse=True)
    k = max(1, math.ceil(share * max(buckets, len(ranked))))
    return ranked[k - 1] if k <= len(ranked) else 0.0


def _judge(value: float, t: Threshold) -> str:
    if t.critical is not None and value >= t.critical:
        return CRITICAL
    if t.warning is not None and value >= t.warning:
        return WARNING
    return OK


def _device_curve(s: BucketSeries, fields: Sequence[str]) -> Curve:
    """One device's curve; several fields (receive + transmit) are added up."""
    per_field = [s.fields[f] for f in fields]
    if len(per_field) == 1:
        fb = per_field[0]
        if 0 not in fb.count:  # a value in every bucket: the columns as they are
            return Curve("", s.times, fb.mean, fb.min, fb.max, fb.count)  # type: ignore[arg-type]
        keep = [i for i, n in enumerate(fb.count) if n]
        return Curve(
            "",
            [s.times[i] for i in keep],
            [fb.mean[i] for i in keep],  # type: ignore[misc]
            [fb.min[i] for i in keep],  # type: ignore[misc]
            [fb.max[i] for i in keep],  # type: ignore[misc]
            [fb.count[i] for i in keep],
        )
    counts = np.array([fb.count for fb in per_field], dtype=float)
    present = counts > 0  # per field and bucket
    keep = present.any(axis=0)

    def added(column: str) -> list[float]:
        values = np.array([getattr(fb, column) for fb in per_field], dtype=float)  # None: NaN
        return np.where(present, values, 0.0).sum(axis=0)[keep].tolist()

    return Curve(
        "",
        np.asarray(s.times)[keep].tolist(),
        added("mean"),
        added("min"),
        added("max"),
        counts.max(axis=0)[keep].astype(np.int64).tolist(),
    )


def combine(name: str, curves: Sequence[Curve], is_percent: bool, weighted: bool) -> Curve:
    """Curves at the same bucket times made one: mean (or sum) of means, min/max of bands.

    ``weighted`` weighs each curve's mean by its samples (devices of one worker);
    otherwise every curve counts once (workers in the aggregate). Rates add up,
    their bands too.
    """
    if len(curves) == 1:
        c = curves[0]
        return Curve(name, c.times, c.mean, c.lo, c.hi, c.count, c.note)
    times, at = np.unique(np.concatenate([c.times for c in curves]), return_inverse=True)
    size = len(times)
    mean, lo, hi, count = (
        np.concatenate([getattr(c, a) for c in curves]).astype(float)
        for a in ("mean", "lo", "hi", "count")
    )
    if is_percent:
        w = count if weighted else np.ones_like(mean)
        total = np.bincount(at, mean * w, size) / np.bincount(at, w, size)
        low, high = np.full(size, np.inf), np.full(size, -np.inf)
        np.minimum.at(low, at, lo)
        np.maximum.at(high, at, hi)
    else:
        total, low, high = (np.bincount(at, v, size) for v in (mean, lo, hi))
    return Curve(
        name,
        times.tolist(),
        total.tolist(),
        low.tolist(),
        high.tolist(),
        np.bincount(at, count, size).astype(int).tolist(),
    )


def _slots(curve: Curve, b: Buckets | Grid) -> int:
    """How many values the curve would have had over the whole range.

    One per bucket, or one per sampling interval when the buckets are finer
    than the samples (a zoom to an hour of one-a-minute samples: 60, not 1,000).
    """
    times = curve.times
    if len(times) < 2 or times[-1] - times[0] == (len(times) - 1) * b.step_ns:
        return max(1, (b.end_ns - b.start_ns) // b.step_ns)  # every gap is one step
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    spacing = max(b.step_ns, statistics.median_low(gaps))
    return max(1, (b.end_ns - b.start_ns) // spacing)


def _device_label(r: Resource, tags: dict[str, str]) -> str | None:
    parts = [f"{k} {tags[k]}" for k in r.device_tags if k in tags]
    return ", ".join(parts) or None


@dataclass(frozen=True)
class _Read:
    """One bucketed read that may serve several resources (GPU use and GPU memory)."""

    measurement: str
    fields: tuple[str, ...]
    group_by: tuple[str, ...]


def _reads(resources: Sequence[Resource]) -> list[_Read]:
    fields: dict[str, list[str]] = {}
    group_by: dict[str, tuple[str, ...]] = {}
    for r in resources:
        names = fields.setdefault(r.measurement.name, [])
        names += [f for f in r.fields if f not in names]
        group_by[r.measurement.name] = (catalogue.WORKER, *r.device_tags)
        if r.container_field:
            names = fields.setdefault(catalogue.CONTAINER.name, [])
            names += [r.container_field] if r.container_field not in names else []
            group_by[catalogue.CONTAINER.name] = (catalogue.WORKER,)
    return [_Read(m, tuple(f), group_by[m]) for m, f in fields.items()]


def read_resources(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    max_points: int,
    thresholds: Thresholds,
    environment: str | None = None,
    workers: Sequence[str] = (),
    level: str | None = None,
    resources: Sequence[Resource] = RESOURCES,
    top: int | None = None,
) -> list[ResourceView]:
    """One view per resource, in display order.

    Each measurement is read once for all the resources it serves (and the
    container limits once for CPU and memory); on a store that answers reads
    at once (InfluxDB) the measurements are read at the same time. With ``top``
    (fleet size: see the module docstring) every worker is read at about
    ``FLEET_POINTS`` buckets, and at ``max_points`` only the ``top`` workers of
    each resource.
    """
    where = resource_filter(environment, workers)
    if top is None:
        reads = [(rd, where) for rd in _reads(resources)]
        answers = _read_all(store, reads, start_ns, end_ns, max_points, level)
        limits = answers.get(catalogue.CONTAINER.name)
        return [_view(r, answers[r.measurement.name], limits, thresholds) for r in resources]
    views = _coarse_views(store, start_ns, end_ns, max_points, thresholds, where, resources)
    return _fleet_views(
        store, views, start_ns, end_ns, max_points, thresholds, environment, level, top
    )


def _coarse_views(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    max_points: int,
    thresholds: Thresholds,
    where: dict[str, list[str]] | None,
    resources: Sequence[Resource],
    enough: int = 0,
) -> list[ResourceView]:
    """Every worker's verdicts and the fleet's band, at the buckets of :func:`fleet_read`.

    A short range is first read at its coarsest tier's ``FLEET_FEWEST_BUCKETS`` or more
    (an hour: 6 of 10 min), which counts the workers. That read stands when the fleet has
    at most ``enough`` workers (the page then reads each in full) or when the finer read
    would pass ``FLEET_CELLS`` (1,000 workers x 60 one-minute buckets: the band is drawn
    per 10 min, as its note says); otherwise the finer read replaces it.
    """
    most = min(max_points, FLEET_POINTS)
    reads = [(rd, where) for rd in _reads(resources)]

    def judged(read: FleetRead) -> list[ResourceView]:
        a, b = read.start_ns, read.end_ns
        grids = _read_all(store, reads, a, b, read.points, read.level, grid=True)
        limits = grids.get(catalogue.CONTAINER.name)
        return [_grid_view(r, grids[r.measurement.name], limits, thresholds) for r in resources]

    finer = fleet_read(start_ns, end_ns, most)
    census = fleet_read(start_ns, end_ns, most, FLEET_FEWEST_BUCKETS)
    if census == finer or census.level is None:
        return judged(finer)
    views = judged(census)
    workers = len({v.worker for view in views for v in view.verdicts})  # as the page counts
    buckets = plan_read(finer.start_ns, finer.end_ns, finer.points).buckets
    if enough < workers and workers * buckets <= FLEET_CELLS:
        return judged(finer)
    return views


def _fleet_views(
    store: StoreReader,
    views: list[ResourceView],
    start_ns: int,
    end_ns: int,
    max_points: int,
    thresholds: Thresholds,
    environment: str | None,
    level: str | None,
    top: int,
) -> list[ResourceView]:
    """Coarse views made fleet views: their band, and full curves of their ``top`` workers
    over the range asked for (the coarse read may have widened it to its buckets)."""
    resources = [v.resource for v in views]
    drawn = {v.resource.key: [x.worker for x in v.verdicts[:top]] for v in views}
    wanted: dict[str, set[str]] = defaultdict(set)  # measurement -> workers any resource draws
    for r in resources:
        wanted[r.measurement.name].update(drawn[r.key])
        if r.container_field:
            wanted[catalogue.CONTAINER.name].update(drawn[r.key])
    reads = [  # one read per measurement, for its own workers
        (rd, resource_filter(environment, sorted(wanted[rd.measurement])))
        for rd in _reads(resources)
        if wanted[rd.measurement]
    ]
    if level is None:
        drawn_read = fleet_read(start_ns, end_ns, max_points, max(1, max_points // 2))
        start_ns, end_ns = drawn_read.start_ns, drawn_read.end_ns
        max_points, level = drawn_read.points, drawn_read.level
    detail = _read_all(store, reads, start_ns, end_ns, max_points, level)
    detail_limits = detail.get(catalogue.CONTAINER.name)
    for v in views:
        r = v.resource
        if r.measurement.name not in detail:
            v.curves = []
            continue
        fine = _view(r, detail[r.measurement.name], detail_limits, thresholds, False)
        by_name = {c.name: c for c in fine.curves}
        v.curves = [by_name[w] for w in drawn[r.key] if w in by_name]
        v.step_ns, v.level = fine.step_ns, fine.level  # the band keeps its own step
        v.start_ns, v.end_ns = fine.start_ns, fine.end_ns  # the chart's range
    return views


class FleetRead(NamedTuple):
    """A read of many workers: its buckets and level, and the range it reads."""

    points: int
    level: str | None
    start_ns: int
    end_ns: int


def fleet_read(start_ns: int, end_ns: int, most: int, fewest: int = FLEET_MIN_BUCKETS) -> FleetRead:
    """A read of many workers from the coarsest tier with ``fewest`` to ``most`` rows over
    the range widened to that tier's boundaries (a bucket per row: its rows are what the
    read costs, and the plan of any step would widen the range to its buckets as well),
    else ``most`` buckets as planned over the range itself.

    The read of every worker asks for ``FLEET_MIN_BUCKETS`` (or ``FLEET_FEWEST_BUCKETS``
    to count the workers); the full curves of the workers drawn at fleet size for half the
    chart's points (30 days on a 1,000 px chart: 720 rows of the 1 h tier a worker rather
    than 4,320 of the 10 min one).
    """
    for tier in sorted(TIERS, key=lambda t: t.width_ns, reverse=True):
        width = tier.width_ns
        start, end = start_ns - start_ns % width, -(-end_ns // width) * width
        rows = (end - start) // width
        if rows < fewest:
            continue
        if rows <= most:
            return FleetRead(rows, tier.name, start, end)
        break
    return FleetRead(most, None, start_ns, end_ns)


def _read_all(
    store: StoreReader,
    reads: Sequence[tuple[_Read, dict[str, list[str]] | None]],
    start_ns: int,
    end_ns: int,
    max_points: int,
    level: str | None,
    grid: bool = False,
) -> dict[str, Any]:
    """The answers of ``reads`` (each with its filter) by measurement, at once where the
    store allows: ``Buckets``, or with ``grid`` (judging and ranking) a ``Grid`` each."""

    def read(item: tuple[_Read, dict[str, list[str]] | None]) -> Any:
        rd, where = item
        method = store.read_grid if grid else store.read_buckets
        return method(
            rd.measurement, rd.fields, start_ns, end_ns, max_points, where, rd.group_by, level
        )

    if store.concurrent_reads and len(reads) > 1:
        with ThreadPoolExecutor(len(reads)) as pool:
            buckets = list(pool.map(read, reads))
    else:
        buckets = [read(item) for item in reads]
    return {rd.measurement: b for (rd, _), b in zip(reads, buckets, strict=True)}


@dataclass
class ResourcesPage:
    """What the resources page shows for a range: views, workers to offer, environments."""

    views: list[ResourceView]
    workers: list[str]
    environments: list[str]


def read_resources_page(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    max_points: int,
    thresholds: Thresholds,
    environment: str | None = None,
    workers: Sequence[str] = (),
    top: int = DEFAULT_TOP,
) -> ResourcesPage:
    """The views of every resource, the workers to offer and the environments of the range.

    Every worker in the view is read coarsely first (:func:`fleet_read`): up to
    ``ALL_WORKERS_AT_MOST`` of them, every curve is then read in full as before;
    past it, the views become fleet views of the ``top`` workers (of every selected one when
    the user selected more, up to ``MOST_DRAWN``). Unfiltered views
    name every worker already; only a worker filter needs the workers listed. On a
    store that answers reads at once the listings run beside the views' reads.
    """
    with ThreadPoolExecutor(2) as pool:
        beside = pool.submit if store.concurrent_reads else done
        environments = beside(list_environments, store, start_ns, end_ns)
        listed = beside(list_workers, store, start_ns, end_ns, environment) if workers else None
        where = resource_filter(environment, workers)
        coarse = _coarse_views(
            store, start_ns, end_ns, max_points, thresholds, where, RESOURCES, ALL_WORKERS_AT_MOST
        )
        named = sorted({v.worker for view in coarse for v in view.verdicts})
        if len(named) > ALL_WORKERS_AT_MOST:
            drawn = min(MOST_DRAWN, max(top, len(workers)))  # a selection is drawn whole
            views = _fleet_views(
                store, coarse, start_ns, end_ns, max_points, thresholds, environment, None, drawn
            )
        else:
            views = read_resources(
                store, start_ns, end_ns, max_points, thresholds, environment, workers
            )
        offered = listed.result() if listed is not None else named
        return ResourcesPage(views, offered, environments.result())


def done(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` run now, as a finished future (a store whose reads would only queue)."""
    future: Future[T] = Future()
    future.set_result(fn(*args))
    return future


def _view(
    r: Resource, b: Buckets, limits: Buckets | None, thresholds: Thresholds, total: bool = True
) -> ResourceView:
    """Curves, aggregate (unless not ``total``) and verdicts of one resource from its
    measurement's buckets.

    Workers whose agent reports a container limit are drawn and judged on their
    use against that limit (CPU and memory); their curve says so in its note.
    """
    view = ResourceView(r, b.start_ns, b.end_ns, b.step_ns, b.level)
    devices: dict[str, list[tuple[str | None, Curve]]] = defaultdict(list)
    for s in b.series:
        worker = s.tags.get(catalogue.WORKER)
        if worker is not None:
            curve = _device_curve(s, r.fields)
            if curve.times:
                devices[worker].append((_device_label(r, s.tags), curve))
    if r.container_field and limits is not None:
        for s in limits.series:
            curve = _device_curve(s, [r.container_field])
            if curve.times:
                curve.note = "of its container limit"
                devices[s.tags[catalogue.WORKER]] = [("container limit", curve)]
    threshold = thresholds.of(r.key)
    for worker in sorted(devices):
        parts = devices[worker]
        curve = combine(worker, [c for _, c in parts], r.is_percent, weighted=True)
        curve.note = parts[0][1].note
        view.curves.append(curve)
        value, peak, device = max(
            (
                (sustained(c.mean, thresholds.over_share, _slots(c, b)), max(c.mean), d)
                for d, c in parts
            ),
            key=lambda vpd: vpd[:2],
        )
        seen = min(b.end_ns - b.start_ns, len(curve.times) * b.step_ns)
        # kept buckets have samples; plain Python: np.average costs more on a day's 25 buckets
        mean = sum(map(operator.mul, curve.mean, curve.count)) / sum(curve.count)
        last = min(b.end_ns, curve.times[-1] + b.step_ns)
        level = _judge(value, threshold)
        view.verdicts.append(
            Verdict(worker, device, value, level, seen, peak, mean, curve.mean[-1], last)
        )
    view.verdicts.sort(key=lambda v: (-v.value, v.worker))
    if total and view.curves:
        name = "all selected (mean)" if r.is_percent else "all selected (sum)"
        view.total = combine(name, view.curves, r.is_percent, weighted=False)
    return view


def _device_grid(g: Grid, fields: Sequence[str]) -> tuple[Any, Any]:
    """Per row and bucket of a grid: the device's value (its fields' means added; NaN
    where it has none) and its count (the most samples of any field), as ``_device_curve``."""
    counts = [g.count[f] for f in fields]
    means = [g.total[f] / np.where(c > 0, c, 1.0) for f, c in zip(fields, counts, strict=True)]
    if len(fields) == 1:
        return np.where(counts[0] > 0, means[0], np.nan), counts[0]
    value = sum(np.where(c > 0, m, 0.0) for c, m in zip(counts, means, strict=True))
    count = np.maximum.reduce(counts)
    return np.where(count > 0, value, np.nan), count


def _grid_view(r: Resource, g: Grid, limits: Grid | None, thresholds: Thresholds) -> ResourceView:
    """Verdicts of every worker and the fleet's band from a grid, in array operations.

    The verdicts are those :func:`_view` gives from the same buckets as curves; no curve
    is built, and the band stands for the aggregate.
    """
    view = ResourceView(r, g.start_ns, g.end_ns, g.step_ns, g.level)
    value, count = _device_grid(g, r.fields)
    tags = [dict(k) for k in g.keys]
    workers = [t.get(catalogue.WORKER) for t in tags]
    labels = [_device_label(r, t) for t in tags]
    if r.container_field and limits is not None:  # a limit replaces the worker's devices
        lvalue, lcount = _device_grid(limits, [r.container_field])
        ours = lcount.any(axis=1)
        limited = [dict(k)[catalogue.WORKER] for k, o in zip(limits.keys, ours, strict=True) if o]
        replaced = set(limited)
        kept = [i for i, w in enumerate(workers) if w not in replaced]
        value = np.vstack([value[kept], lvalue[ours]])
        count = np.vstack([count[kept], lcount[ours]])
        workers = [workers[i] for i in kept] + limited
        labels = [labels[i] for i in kept] + ["container limit"] * len(limited)
    present = count > 0
    # rows of a worker with a value, by worker (devices in key order, as _view takes them)
    valued = present.any(axis=1).tolist()
    rows = sorted(
        (i for i, w in enumerate(workers) if w is not None and valued[i]),
        key=workers.__getitem__,
    )
    if not rows:
        return view
    value, count, present = value[rows], count[rows], present[rows]
    workers, labels = [workers[i] for i in rows], [labels[i] for i in rows]
    width, step = value.shape[1], g.step_ns

    # each device: its sustained value (the k-th highest of its bucket values) and its peak
    seen = present.sum(axis=1)
    slots = np.full(len(rows), max(1, (g.end_ns - g.start_ns) // step))
    first, last = present.argmax(axis=1), width - 1 - present[:, ::-1].argmax(axis=1)
    for i in np.flatnonzero(last - first != seen - 1):  # gaps: counted as _slots counts them
        slots[i] = _slots(Curve("", g.times[present[i]].tolist(), [], [], [], []), g)
    k = np.maximum(1, np.ceil(thresholds.over_share * np.maximum(slots, seen))).astype(np.int64)
    ranked = -np.sort(np.where(present, -value, np.inf), axis=1)  # highest first, absent last
    kth = np.take_along_axis(ranked, (np.minimum(k, width) - 1)[:, None], axis=1)[:, 0]
    sustained_value, peak = np.where(k <= seen, kth, 0.0), ranked[:, 0]

    # each worker: its devices combined (mean weighted by samples, or sum) and its worst
    starts = [i for i in range(len(rows)) if i == 0 or workers[i] != workers[i - 1]]
    weight = np.add.reduceat(count, starts, axis=0)
    if r.is_percent:
        summed = np.add.reduceat(np.where(present, value * count, 0.0), starts, axis=0)
        curve = summed / np.where(weight > 0, weight, 1.0)
    else:
        curve = np.add.reduceat(np.where(present, value, 0.0), starts, axis=0)
    held = weight > 0
    group = np.repeat(np.arange(len(starts)), np.diff([*starts, len(rows)]))
    worst = np.lexsort((np.arange(len(rows)), -peak, -sustained_value, group))[starts]
    buckets = held.sum(axis=1)
    means = (np.where(held, curve, 0.0) * weight).sum(axis=1) / weight.sum(axis=1)
    final = width - 1 - held[:, ::-1].argmax(axis=1)
    latest = curve[np.arange(len(starts)), final]
    ends = np.minimum(g.end_ns, g.times[final] + step)
    threshold, span = thresholds.of(r.key), g.end_ns - g.start_ns
    for w, row, n, mean, now, end in zip(
        starts, worst.tolist(), buckets.tolist(), means.tolist(), latest.tolist(),
        ends.tolist(), strict=True,
    ):  # fmt: skip
        v = float(sustained_value[row])
        view.verdicts.append(
            Verdict(
                workers[w], labels[row], v, _judge(v, threshold), min(span, n * step),
                float(peak[row]), mean, now, int(end),
            )
        )  # fmt: skip
    view.verdicts.sort(key=lambda v: (-v.value, v.worker))
    view.band = _band(g.times, np.where(held, curve, np.nan), r.is_percent, step)
    return view


def read_resource(
    store: StoreReader,
    r: Resource,
    start_ns: int,
    end_ns: int,
    max_points: int,
    thresholds: Thresholds,
    environment: str | None = None,
    workers: Sequence[str] = (),
    level: str | None = None,
) -> ResourceView:
    """The view of one resource (a zoomed graph): :func:`read_resources` for one."""
    return read_resources(
        store, start_ns, end_ns, max_points, thresholds, environment, workers, level, [r]
    )[0]


def list_workers(
    store: StoreReader, start_ns: int, end_ns: int, environment: str | None = None
) -> list[str]:
    """Workers that sent any resource sample in [start, end), sorted."""
    where = resource_filter(environment)
    return store.tag_values(
        catalogue.WORKER, start_ns, end_ns, RESOURCE_NAMES, where, RESOURCE_FIELDS
    )
