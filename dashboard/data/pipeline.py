"""Store reads for the pipeline-metrics page: values per deployment, summary, events.

A window with few values (up to ``raw_limit`` in all) is drawn value by value
with a rolling mean; a busier one is bucketed on the store like the resource
graphs: a line of bucket means and "N of M points" (a min-max band would only
span 0 to 1 for the usual 0/1 scores). The summary (count, mean,
min, max, last) is exact either way: the buckets and rollups keep counts,
sums, minimums and maximums, and the last value is read from the last bucket.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetgauge import catalogue
from fleetgauge.dashboard.state import RATE_WINDOWS
from fleetgauge.stores import StoreReader
from fleetgauge.stores.base import Where

__all__ = [
    "Summary",
    "DeploymentValues",
    "MetricView",
    "EventMark",
    "read_metric",
    "metric_options",
    "list_deployments",
    "RAW_LIMIT",
]

RAW_LIMIT = 5000
"""Most values drawn one by one; above it the chart shows buckets."""
MAX_EVENTS = 500
VALUE = catalogue.PIPELINE_METRIC.get_field("value").name
METADATA = catalogue.EVENT.get_field("metadata").name


@dataclass
class Summary:
    """What the values in the window add up to."""

    count: int
    mean: float
    min: float
    max: float
    last: float
    last_ns: int


@dataclass
class DeploymentValues:
    """One deployment's values in the window: raw points or buckets, and the summary."""

    deployment: str
    worker: str = ""
    """Set when the view is split by worker: the values this worker's agent took."""
    times: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    rolling: list[float] = field(default_factory=list)
    bucketed: bool = False
    summary: Summary | None = None
    counts: list[int] = field(default_factory=list)
    """Values behind each point: 1 for a raw value, the count of a bucket."""
    rate: list[float] = field(default_factory=list)
    """A 0/1 metric: the share of 1s over the rolling window ending at each point."""
    rate_count: list[int] = field(default_factory=list)
    """...and how many values that window held."""

    @property
    def label(self) -> str:
        """How the legend and the summary name this line."""
        return f"{self.deployment} on {self.worker}" if self.worker else self.deployment


@dataclass
class EventMark:
    """One event to mark on the chart."""

    time_ns: int
    name: str
    deployment: str
    metadata: str


@dataclass
class MetricView:
    """The chart and summary of one metric for the chosen deployments in a window."""

    metric: str
    start_ns: int
    end_ns: int
    step_ns: int
    level: str
    deployments: list[DeploymentValues]
    events: list[EventMark]
    rate_window_ns: int = 0
    """Above 0: every value is 0 or 1, and the chart shows their rate over this window."""
    split: bool = False
    """One line per deployment and worker (workers were chosen), not per deployment."""

    @property
    def samples(self) -> int:
        """Values in the window (the M of "N of M points")."""
        return sum(d.summary.count for d in self.deployments if d.summary)

    @property
    def plotted(self) -> int:
        """Points drawn (the N)."""
        return sum(len(d.times) for d in self.deployments)


def _where(
    environment: str | None,
    deployments: Sequence[str] = (),
    pipeline: str | None = None,
    metric: str | None = None,
    workers: Sequence[str] = (),
) -> Where | None:
    where: dict[str, list[str]] = {}
    if environment:
        where[catalogue.ENVIRONMENT] = [environment]
    if deployments:
        where[catalogue.DEPLOYMENT] = list(deployments)
    if workers:
        where[catalogue.WORKER] = list(workers)
    if pipeline:
        where[catalogue.PIPELINE] = [pipeline]
    if metric:
        where[catalogue.METRIC] = [metric]
    return where or None


def list_deployments(
    store: StoreReader, start_ns: int, end_ns: int, environment: str | None
) -> list[str]:
    """Deployments with a pipeline metric value in the window."""
    m = [catalogue.PIPELINE_METRIC.name]
    return store.tag_values(catalogue.DEPLOYMENT, start_ns, end_ns, m, _where(environment))


def metric_options(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    environment: str | None,
    deployments: Sequence[str] = (),
    pipeline: str | None = None,
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Deployments, pipelines (of the chosen deployments), metrics (of both) and the
    workers whose agents took them, in the window."""
    m = [catalogue.PIPELINE_METRIC.name]
    found = list_deployments(store, start_ns, end_ns, environment)
    chosen = _where(environment, deployments)
    pipelines = store.tag_values(catalogue.PIPELINE, start_ns, end_ns, m, chosen)
    both = _where(environment, deployments, pipeline)
    metrics = store.tag_values(catalogue.METRIC, start_ns, end_ns, m, both)
    workers = store.tag_values(catalogue.WORKER, start_ns, end_ns, m, both)
    return found, pipelines, metrics, workers


def rolling_mean(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def rolling_rate(
    times: Sequence[int], sums: Sequence[float], counts: Sequence[int], window_ns: int
) -> tuple[list[float], list[int]]:
    """The share of 1s, and the number of values, in the ``window_ns`` ending at each
    time (sums and counts per time: a raw value is its own sum with count 1)."""
    rates, held = [], []
    total, n, first = 0.0, 0, 0
    for i, t in enumerate(times):
        total += sums[i]
        n += counts[i]
        while times[first] <= t - window_ns:
            total -= sums[first]
            n -= counts[first]
            first += 1
        rates.append(total / n if n else float("nan"))
        held.append(n)
    return rates, held


def auto_rate_window(start_ns: int, end_ns: int, windows: dict[str, int]) -> int:
    """The shortest window of ``windows`` holding at least a 40th of the range."""
    wanted = (end_ns - start_ns) / 40
    return next((w for w in sorted(windows.values()) if w >= wanted), max(windows.values()))


def _binary(d: DeploymentValues, lows: Sequence[float], highs: Sequence[float]) -> bool:
    if not d.bucketed:
        return all(v in (0.0, 1.0) for v in d.values)
    return all(v in (0.0, 1.0) for v in (*lows, *highs))


def _last(store: StoreReader, where: Where | None, start_ns: int, end_ns: int) -> tuple[int, float]:
    last = (start_ns, float("nan"))
    for p in store.stream_points(catalogue.PIPELINE_METRIC.name, start_ns, end_ns, where):
        last = (p.time_ns, p.fields[VALUE])
    return last


def read_metric(
    store: StoreReader,
    metric: str,
    deployments: Sequence[str],
    start_ns: int,
    end_ns: int,
    max_points: int,
    environment: str | None = None,
    pipeline: str | None = None,
    raw_limit: int = RAW_LIMIT,
    rate_window_ns: int = 0,
    workers: Sequence[str] = (),
) -> MetricView:
    """Values of ``metric`` per deployment in [start, end), with summaries and events.

    With ``workers``, only the values those workers' agents took, one line per
    deployment and worker (the split a user asks for when one worker misbehaves).

    When every value is 0 or 1 (a score, "correct", "fraud"), each deployment also gets
    its rate: the share of 1s over ``rate_window_ns`` (0: chosen from the range) ending
    at each point, which is what such a metric's drift looks like.
    """
    where = _where(environment, deployments, pipeline, metric, workers)
    group_by = (catalogue.DEPLOYMENT, catalogue.WORKER) if workers else (catalogue.DEPLOYMENT,)
    b = store.read_buckets(
        catalogue.PIPELINE_METRIC.name, [VALUE], start_ns, end_ns, max_points, where, group_by
    )
    view = MetricView(metric, start_ns, end_ns, b.step_ns, b.level, [], [], split=bool(workers))
    total = sum(sum(s.fields[VALUE].count) for s in b.series)
    raw = total <= raw_limit
    binary = True
    for s in b.series:
        fb = s.fields[VALUE]
        keep = [i for i, n in enumerate(fb.count) if n]
        if not keep:
            continue
        worker = s.tags.get(catalogue.WORKER, "") if workers else ""
        d = DeploymentValues(s.tags.get(catalogue.DEPLOYMENT, ""), worker)
        count = sum(fb.count[i] for i in keep)
        total_sum = sum(fb.mean[i] * fb.count[i] for i in keep)  # type: ignore[operator]
        one = _where(environment, [d.deployment], pipeline, metric, [d.worker] if workers else ())
        if raw:
            for p in store.stream_points(catalogue.PIPELINE_METRIC.name, start_ns, end_ns, one):
                d.times.append(p.time_ns)
                d.values.append(p.fields[VALUE])
            d.rolling = rolling_mean(d.values, max(5, len(d.values) // 50))
            d.counts = [1] * len(d.values)
            last_ns, last = d.times[-1], d.values[-1]
        else:
            last_ns, last = _last(store, one, max(start_ns, s.times[keep[-1]]), end_ns)
        d.summary = Summary(
            count,
            total_sum / count,
            min(fb.min[i] for i in keep),  # type: ignore[type-var]
            max(fb.max[i] for i in keep),  # type: ignore[type-var]
            last,
            last_ns,
        )
        if not raw:
            d.bucketed = True
            d.times = [s.times[i] for i in keep]
            d.values = [fb.mean[i] for i in keep]  # type: ignore[misc]
            d.counts = [fb.count[i] for i in keep]
            d.rolling = d.values
        lows, highs = [fb.min[i] for i in keep], [fb.max[i] for i in keep]
        binary = binary and _binary(d, lows, highs)  # type: ignore[arg-type]
        view.deployments.append(d)
    if binary and view.deployments:
        view.rate_window_ns = rate_window_ns or auto_rate_window(start_ns, end_ns, RATE_WINDOWS)
        for d in view.deployments:
            sums = [v * n for v, n in zip(d.values, d.counts, strict=True)]
            d.rate, d.rate_count = rolling_rate(d.times, sums, d.counts, view.rate_window_ns)
    view.events = read_events(store, start_ns, end_ns, environment, deployments)
    return view


def read_events(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    environment: str | None,
    deployments: Sequence[str],
    limit: int = MAX_EVENTS,
) -> list[EventMark]:
    """The first ``limit`` events of the deployments in the window."""
    marks = []
    where = _where(environment, deployments)
    for p in store.stream_points(catalogue.EVENT.name, start_ns, end_ns, where):
        metadata = p.fields.get(METADATA) or ""
        try:
            metadata = json.dumps(json.loads(metadata), sort_keys=True) if metadata else ""
        except ValueError:
            pass
        marks.append(
            EventMark(
                p.time_ns,
                p.tags.get(catalogue.EVENT_NAME, ""),
                p.tags.get(catalogue.DEPLOYMENT, ""),
                metadata,
            )
        )
        if len(marks) >= limit:
            break
    return marks
