"""Pure data -> plotly figure functions (figures as plain dicts: no validation cost).

Figures stay small: curves whose buckets are evenly spaced are sent as
``x0``/``dx`` plus y values (a missing bucket is ``null``, so the line breaks
where a worker sent nothing); sparser data (a zoom finer than the sampling
interval) gets explicit x values with a break only where a gap is at least
twice the usual spacing. Values are rounded to what a chart can show.
Times are milliseconds since the epoch, which plotly draws in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fleetgauge import catalogue
from fleetgauge.dashboard.data.pipeline import MetricView
from fleetgauge.dashboard.data.resources import Curve, ResourceView
from fleetgauge.dashboard.thresholds import Threshold
from fleetgauge.timeutil import NS_PER_S, format_duration

__all__ = [
    "PALETTE",
    "resource_figure",
    "empty_figure",
    "curve_xy",
    "format_value",
    "format_limit",
    "band_traces",
    "points_note",
    "fleet_note",
    "metric_figure",
    "compare_figure",
    "text",
]

Figure = dict[str, Any]
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
TOTAL_COLOUR = "#111111"
WARNING_COLOUR = "#e6a700"
CRITICAL_COLOUR = "#d62728"
_NS_PER_MS = 1_000_000


_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def text(value: str) -> str:
    """``value`` as Plotly shows it literally: ``<``, ``>`` and ``&`` escaped.

    Plotly reads tags in trace names, titles, hover and annotation text as
    markup (``<a href>`` becomes a link, ``<b>`` bold, ``<br>`` a line break);
    every name a client or the store supplies goes through here.
    """
    return str(value).translate(_MARKUP)


def _round(values: Sequence[float | None] | np.ndarray, digits: int) -> np.ndarray:
    """Values rounded to what a chart shows, as a float array (NaN: a break in the line).

    Arrays serialise straight to JSON (NaN as null) instead of being walked
    value by value when Dash encodes a callback's answer.
    """
    if not isinstance(values, np.ndarray):
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
    return np.round(values, digits)


def format_value(value: float, unit: str) -> str:
    """A value as a card or a summary shows it: 97.3 %, 12.5 MB/s."""
    if unit == catalogue.PERCENT:
        return f"{value:.1f} %"
    if unit == catalogue.BYTES_PER_SECOND:
        for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {prefix}B/s"
        return f"{value:.0f} B/s"
    return f"{value:.4g}"


def format_limit(value: float, unit: str) -> str:
    """A threshold as a card names it: 80 %, 100.0 MB/s."""
    if unit == catalogue.PERCENT:
        return f"{value:g} %"
    return format_value(value, unit)


def curve_xy(
    times: Sequence[int], step_ns: int, *columns: Sequence[float]
) -> tuple[dict, list[np.ndarray]]:
    """x keys of a trace and its y columns, with NaN (null in JSON) where the curve breaks.

    The curve breaks only where the worker really sent nothing: a gap longer than
    twice its own interval (the spacing of its buckets, at least one bucket: a
    1 s worker drawn on 0.7 s buckets leaves every other bucket empty and is one
    line). Returns ``({"x0": .., "dx": ..}, columns)`` when every bucket of the
    range is filled or a break, else ``({"x": [...]}, columns)`` with a null at
    each break.
    """
    if not times:
        return {"x": []}, [np.array([]) for _ in columns]
    t = np.asarray(times, dtype=np.int64)
    gaps = np.diff(t)
    # the worker's interval: most of its gaps (a quarter may be gaps, or the longer of the
    # two spacings a sample interval between one and two buckets leaves)
    interval = max(step_ns, int(np.percentile(gaps, 75, method="lower"))) if len(gaps) else 0
    breaks = np.flatnonzero(gaps > 2 * interval) + 1
    if interval == step_ns and not np.any((gaps > step_ns) & (gaps <= 2 * interval)):
        index = (t - t[0]) // step_ns  # every bucket filled but at breaks: x0 and dx
        out = []
        for col in columns:
            filled = np.full(int(index[-1]) + 1, np.nan)
            filled[index] = np.asarray(col, dtype=float)
            out.append(filled)
        return {"x0": int(t[0]) // _NS_PER_MS, "dx": step_ns // _NS_PER_MS}, out
    xs: list[int | None] = (t // _NS_PER_MS).tolist()
    out = [np.asarray(col, dtype=float) for col in columns]
    for at in breaks[::-1]:
        xs.insert(int(at), None)
        out = [np.insert(col, at, np.nan) for col in out]
    return {"x": xs}, out


def band_traces(curve: Curve, step_ns: int, colour: str, digits: int, group: str) -> list[dict]:
    """The min-max band around a curve: a lower edge and an upper edge filled down to it."""
    x, (lo, hi) = curve_xy(curve.times, step_ns, curve.lo, curve.hi)
    common = {
        "type": "scatter",
        "mode": "lines",
        "line": {"width": 0, "color": colour},
        "legendgroup": group,
        "showlegend": False,
        "hoverinfo": "skip",
        **x,
    }
    return [
        {**common, "name": f"{text(curve.name)} min", "y": _round(lo, digits)},
        {
            **common,
            "name": f"{text(curve.name)} max",
            "y": _round(hi, digits),
            "fill": "tonexty",
            "fillcolor": _translucent(colour),
        },
    ]


def _translucent(colour: str, alpha: float = 0.12) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _line(
    curve: Curve,
    step_ns: int,
    colour: str,
    digits: int,
    width: float,
    dash: str,
    spread: bool = False,
) -> dict:
    """A curve's line; with ``spread``, each point also carries its bucket's min and max
    (``customdata``) for the hover."""
    spread = spread and len(curve.lo) == len(curve.hi) == len(curve.mean)
    columns = (curve.mean, curve.lo, curve.hi) if spread else (curve.mean,)
    x, (mean, *bounds) = curve_xy(curve.times, step_ns, *columns)
    name = text(f"{curve.name} ({curve.note})" if curve.note else curve.name)
    trace = {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "legendgroup": curve.name,
        "line": {"width": width, "color": colour, "dash": dash},
        "y": _round(mean, digits),
        "meta": {"worker": curve.name},
        **x,
    }
    if bounds:
        trace["customdata"] = np.column_stack([_round(b, digits) for b in bounds])
    return trace


def _width(step_ns: int) -> str:
    step_s = step_ns / NS_PER_S
    return f"{step_s / 60:g} min" if step_s >= 60 else f"{step_s:g} s"


def fleet_note(view: ResourceView) -> str:
    """What a fleet graph draws: how many workers the band covers, which are drawn and why."""
    band = view.band
    assert band is not None
    n, shown = view.workers, len(view.curves)
    kind = "mean" if view.resource.is_percent else "sum"
    return (
        f"all {n:,} workers: {kind}, p10-p90 and min-max per"
        f" {format_duration(band.step_ns / NS_PER_S)};"
        + (
            f" top {shown} of {n:,} by sustained {view.resource.title}"
            if shown < n
            else f" each of the {n:,} drawn"
        )
    )


def points_note(view: ResourceView) -> str:
    """The "N of M points" line: what the graph draws and what it summarises."""
    if view.band is not None:
        return fleet_note(view)
    width = _width(view.step_ns)
    source = "raw samples" if view.level == "raw" else f"{view.level} rollups"
    if view.plotted == view.samples:
        return f"{view.plotted:,} of {view.samples:,} points (every sample)"
    return (
        f"{view.plotted:,} of {view.samples:,} points: {width} buckets of {source},"
        " band = min to max"
    )


def _threshold_shapes(t: Threshold) -> list[dict]:
    shapes = []
    for value, colour in ((t.warning, WARNING_COLOUR), (t.critical, CRITICAL_COLOUR)):
        if value is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": value,
                    "y1": value,
                    "line": {"color": colour, "width": 1, "dash": "dot"},
                }
            )
    return shapes


def resource_figure(view: ResourceView, threshold: Threshold, revision: str = "") -> Figure:
    """One graph: per-worker curves with bands, the aggregate curve, threshold lines."""
    r = view.resource
    digits = 1 if r.is_percent else 0
    data: list[dict] = [] if view.band is None else fleet_traces(view, digits)
    bucketed = view.band is None and (view.level != "raw" or view.plotted != view.samples)
    for i, curve in enumerate(view.curves):
        colour = PALETTE[i % len(PALETTE)]
        if bucketed:
            data += band_traces(curve, view.step_ns, colour, digits, curve.name)
        data.append(_line(curve, view.step_ns, colour, digits, 1.5, "solid", bucketed))
    if view.total is not None and len(view.curves) > 1:
        data.append(_line(view.total, view.step_ns, TOTAL_COLOUR, digits, 2.5, "dash"))
    # hovers say the unit, the whole name (plotly cuts names at 15 characters) and, for
    # a bucket of several samples, their min and max
    if r.is_percent:
        value, unit = "%{{{}:.1f}}", " %"
    else:
        value, unit = "%{{{}:.4s}}", " " + _axis_title(r.unit)
    for trace in data:
        if trace.get("hoverinfo") == "skip":
            continue
        hover = value.format("y") + unit
        if "customdata" in trace:
            lo, hi = value.format("customdata[0]"), value.format("customdata[1]")
            hover += f" (min {lo}, max {hi})"
        trace["hovertemplate"] = f"{hover}<extra>%{{fullData.name}}</extra>"
    yaxis: dict[str, Any] = {"title": {"text": _axis_title(r.unit)}, "rangemode": "tozero"}
    if r.is_percent:
        yaxis["range"] = [0, 105]
    else:
        yaxis["tickformat"] = ".3s"
    return {
        "data": data,
        "layout": {
            "title": {"text": f"{r.title}<br><sup>{points_note(view)}</sup>", "x": 0.01},
            "hoverlabel": {"namelength": -1},
            "xaxis": {
                "type": "date",
                "title": {"text": "time (UTC)"},
                "range": [view.start_ns // _NS_PER_MS, view.end_ns // _NS_PER_MS],
            },
            "yaxis": yaxis,
            "shapes": _threshold_shapes(threshold) if r.is_percent else [],
            "legend": {"itemclick": "toggle", "itemdoubleclick": "toggleothers"},
            "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
            "height": 340,
            "hovermode": "x",
            "uirevision": revision or r.key,
        },
    }


BAND_COLOUR = "#555555"


def fleet_traces(view: ResourceView, digits: int) -> list[dict]:
    """The fleet's band (min-max, then p10-p90 darker) and its aggregate line."""
    band = view.band
    assert band is not None
    n = view.workers
    kind = "mean" if view.resource.is_percent else "sum"
    traces = []
    for name, lo, hi, alpha in (
        (f"min-max of {n:,} workers", band.low, band.high, 0.10),
        (f"p10-p90 of {n:,} workers", band.p10, band.p90, 0.22),
    ):
        edges = Curve(name, band.times, band.aggregate, lo, hi, band.workers)
        lower, upper = band_traces(edges, band.step_ns, BAND_COLOUR, digits, name)
        upper["fillcolor"] = _translucent(BAND_COLOUR, alpha)
        upper["showlegend"] = True
        upper["name"] = text(name)
        traces += [lower, upper]
    aggregate = Curve(f"all {n:,} workers ({kind})", band.times, band.aggregate, [], [], [])
    traces.append(_line(aggregate, band.step_ns, TOTAL_COLOUR, digits, 2.5, "dash"))
    return traces


HEAT_COLOUR = "rgba(214, 39, 40, 0.12)"


def shade(figure: Figure, spans: Sequence[tuple[int, int]], label: str) -> None:
    """Shade the [start, end) ``spans`` (ns) across ``figure``'s height, the first one
    labelled (a throttled GPU, ...)."""
    shapes = figure["layout"].setdefault("shapes", [])
    for i, (t0, t1) in enumerate(spans):
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": t0 // _NS_PER_MS,
                "x1": t1 // _NS_PER_MS,
                "y0": 0,
                "y1": 1,
                "fillcolor": HEAT_COLOUR,
                "line": {"width": 0},
                "layer": "below",
                "name": label,
                **(
                    {"label": {"text": label, "textposition": "top left", "font": {"size": 10}}}
                    if i == 0
                    else {}
                ),
            }
        )


def _axis_title(unit: str) -> str:
    return {catalogue.PERCENT: "%", catalogue.BYTES_PER_SECOND: "bytes/s"}.get(unit, unit)


def empty_figure(title: str, message: str) -> Figure:
    """A graph that says why it is empty instead of drawing nothing."""
    return {
        "data": [],
        "layout": {
            "title": {"text": text(title), "x": 0.01},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "annotations": [
                {"text": text(message), "showarrow": False, "xref": "paper", "yref": "paper"}
            ],
            "height": 200,
            "margin": {"l": 20, "r": 20, "t": 50, "b": 20},
        },
    }


def _window_label(window_ns: int) -> str:
    minutes = window_ns / (60 * NS_PER_S)
    return f"{minutes / 60:g} h" if minutes >= 60 else f"{minutes:g} min"


def rate_figure(view: MetricView, revision: str = "") -> Figure:
    """A 0/1 metric: per deployment, the share of 1s over the rolling window, with how
    many values it held; events as markers. Single 0s and 1s would hide the drift."""
    window = _window_label(view.rate_window_ns)
    data: list[dict] = []
    for i, d in enumerate(view.deployments):
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{text(d.label)} share of 1s",
                "legendgroup": d.label,
                "x": [t // _NS_PER_MS for t in d.times],
                "y": _round([100 * r for r in d.rate], 2),
                "customdata": d.rate_count,
                "hovertemplate": f"%{{y:.1f}} % of %{{customdata:,}} values in the {window}"
                " before<extra>%{fullData.name}</extra>",
                "line": {"width": 2, "color": PALETTE[i % len(PALETTE)]},
                "meta": {"deployment": d.deployment, "worker": d.worker, "kind": "rate"},
            }
        )
    figure = metric_figure(view, revision)
    figure["data"] = data + [t for t in figure["data"] if t.get("meta", {}).get("kind") == "events"]
    layout = figure["layout"]
    layout["title"]["text"] = (
        f"{text(view.metric)}: share of 1s over a rolling {window}<br><sup>"
        f"{view.plotted:,} of {view.samples:,} points, every value 0 or 1</sup>"
    )
    layout["yaxis"] = {"title": {"text": "share of 1s (%)"}, "range": [0, 105]}
    layout["hoverlabel"] = {"namelength": -1}
    return figure


def metric_figure(view: MetricView, revision: str = "") -> Figure:
    """Every value (or buckets of them) per deployment, a rolling mean, events as markers."""
    data: list[dict] = []
    for i, d in enumerate(view.deployments):
        colour = PALETTE[i % len(PALETTE)]
        ms = [t // _NS_PER_MS for t in d.times]
        if not d.bucketed:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{text(d.label)} values",
                    "legendgroup": d.label,
                    "x": ms,
                    "y": _round(d.values, 6),
                    "marker": {"size": 4, "color": colour, "opacity": 0.45},
                    "meta": {"deployment": d.deployment, "worker": d.worker, "kind": "values"},
                }
            )
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": f"{text(d.label)} {'mean' if d.bucketed else 'rolling mean'}",
                "legendgroup": d.label,
                "x": ms,
                "y": _round(d.rolling, 6),
                "line": {"width": 2, "color": colour},
                "meta": {"deployment": d.deployment, "worker": d.worker, "kind": "mean"},
            }
        )
    if view.events:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "events",
                "x": [e.time_ns // _NS_PER_MS for e in view.events],
                "y": [1] * len(view.events),
                "yaxis": "y2",
                "text": [text(f"{e.name} ({e.deployment}) {e.metadata}") for e in view.events],
                "hoverinfo": "text+x",
                "marker": {"symbol": "triangle-down", "size": 11, "color": TOTAL_COLOUR},
                "meta": {"kind": "events"},
            }
        )
    if view.plotted == view.samples:
        note = f"{view.plotted:,} of {view.samples:,} points (every value)"
    else:
        note = (
            f"{view.plotted:,} of {view.samples:,} points: bucket means (min and max in the table)"
        )
    return {
        "data": data,
        "layout": {
            "title": {"text": f"{text(view.metric)}<br><sup>{note}</sup>", "x": 0.01},
            "xaxis": {
                "type": "date",
                "title": {"text": "time (UTC)"},
                "range": [view.start_ns // _NS_PER_MS, view.end_ns // _NS_PER_MS],
            },
            "yaxis": {"title": {"text": text(view.metric)}},
            "yaxis2": {"overlaying": "y", "range": [0, 1.05], "visible": False, "fixedrange": True},
            "legend": {"itemclick": "toggle", "itemdoubleclick": "toggleothers"},
            "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
            "height": 420,
            "hovermode": "closest",
            "uirevision": revision or view.metric,
        },
    }


def _step_at(steps: Sequence[int], times_ns: Sequence[int], t: int) -> int | None:
    """The step recorded last at or before ``t`` (None before the first one)."""
    at = None
    for step, when in zip(steps, times_ns, strict=True):
        if when <= t:
            at = step
    return at


def _whole_tick(last: float) -> int:
    """A whole tick spacing (1, 2, 5, 10, 20, ...) giving at most about ten ticks to ``last``."""
    tick = 1
    while last / tick > 10:
        for factor in (2, 2.5, 2):  # 1, 2, 5, 10, 20, 50, ...
            tick = int(tick * factor)
            if last / tick <= 10:
                break
    return tick


def compare_figure(metric: str, executions: Sequence[Any], events: Sequence[Any], x: str) -> Figure:
    """One line per execution of list metric ``metric`` against step or wall time.

    ``executions`` are ``fleetgauge.read.executions.ExecutionRecord``; ``events`` their
    events (points), drawn as markers on the line of their execution: at their
    time, or at the step recorded last before it. A legend click hides an
    execution with its markers.
    """
    data: list[dict] = []
    for i, r in enumerate(executions):
        lm = r.list_metrics.get(metric)
        if lm is None:
            continue
        colour = PALETTE[i % len(PALETTE)]
        xs = lm.steps if x == "step" else [t // _NS_PER_MS for t in lm.times_ns]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": text(r.execution_id),
                "legendgroup": r.execution_id,
                "x": list(xs),
                "y": _round(lm.values, 6),
                "line": {"width": 2, "color": colour},
                "marker": {"size": 5},
                "meta": {"execution_id": r.execution_id, "kind": "line"},
            }
        )
        marks = [e for e in events if e.tags.get(catalogue.EXECUTION_ID) == r.execution_id]
        ex, ey, hover = [], [], []
        for e in marks:
            step = _step_at(lm.steps, lm.times_ns, e.time_ns)
            if step is None:
                continue
            value = lm.values[lm.steps.index(step)]
            ex.append(step if x == "step" else e.time_ns // _NS_PER_MS)
            ey.append(value)
            label = f"{e.tags.get(catalogue.EVENT_NAME, '')} {e.fields.get('metadata') or ''}"
            hover.append(text(label))
        if ex:
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{text(r.execution_id)} events",
                    "legendgroup": r.execution_id,
                    "showlegend": False,
                    "x": ex,
                    "y": ey,
                    "text": hover,
                    "hoverinfo": "text+x",
                    "marker": {"symbol": "star", "size": 13, "color": colour},
                    "meta": {"execution_id": r.execution_id, "kind": "events"},
                }
            )
    axis: dict[str, Any] = {"title": {"text": "step"}, "zeroline": False}
    if x == "step":  # steps are whole numbers: ticks on whole numbers, never 0.5
        last = max((v for d in data for v in d["x"] if isinstance(v, int | float)), default=0)
        axis.update(tick0=0, dtick=_whole_tick(last))
    else:
        axis = {"type": "date", "title": {"text": "time (UTC)"}}
    lines = sum(1 for d in data if d["meta"]["kind"] == "line")
    return {
        "data": data,
        "layout": {
            "title": {
                "text": f"{text(metric)}<br><sup>{lines} executions, events as stars</sup>",
                "x": 0.01,
            },
            "xaxis": axis,
            "yaxis": {"title": {"text": text(metric)}},
            "legend": {"title": {"text": "execution (click to hide)"}},
            "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
            "height": 360,
        },
    }


RESOURCE_TITLES = {
    "process.cpu_cores": ("CPU", "cores", 1.0),
    "process.rss_bytes": ("Resident memory", "GiB", 2.0**-30),
    "gpu_process.memory_used_bytes": ("GPU memory", "GiB", 2.0**-30),
    "gpu_process.sm_utilization_percent": ("GPU share (SM time)", "% of the GPU", 1.0),
}
"""The resource charts of compared executions: title, unit and scale per curve field."""


def resource_compare_figure(
    field: str, executions: Sequence[Any], curves: Mapping[str, Sequence[Any]]
) -> Figure:
    """One line per process of each execution, of one resource ``field`` against the time
    since the execution started (so runs started at different times line up).

    ``curves`` maps an execution id to its ``fleetgauge.read.executions.ResourceCurve``s.
    """
    title, unit, scale = RESOURCE_TITLES[field]
    data: list[dict] = []
    for i, r in enumerate(executions):
        colour = PALETTE[i % len(PALETTE)]
        for c in curves.get(r.execution_id, ()):
            if c.field != field:
                continue
            # (a bucket may start a little before the execution did: drawn at its start)
            minutes = [max(0, t - r.start_ns) / (60 * 1e9) for t in c.times_ns]
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": text(f"{r.execution_id}: {c.label}"),
                    "legendgroup": r.execution_id,
                    "x": _round(minutes, 4),
                    "y": _round([v * scale for v in c.values], 4),
                    "line": {"width": 2, "color": colour},
                    "meta": {"execution_id": r.execution_id, "kind": "resource"},
                }
            )
    return {
        "data": data,
        "layout": {
            "title": {"text": f"{title}<br><sup>per process, {unit}</sup>", "x": 0.01},
            "xaxis": {"title": {"text": "minutes since the execution started"}},
            "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
            "legend": {"title": {"text": "execution: process"}},
            "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
            "height": 320,
        },
    }


def parallel_figure(
    executions: Sequence[Any], axes: Sequence[str], metric: str | None, cell: Any
) -> Figure:
    """A parallel-coordinates chart: one axis per column of ``axes`` (inputs), the last
    for ``metric`` (the line colour too), one line per execution.

    ``cell(record, column)`` gives a value. Text columns become axes of their distinct
    values (ticks named); an execution without a value of a column sits below the
    axis's lowest tick, at "(none)". ``meta.ids`` holds the execution ids in line order,
    so a brushed range can be turned back into executions.
    """
    columns = [*axes, *([metric] if metric else [])]
    dimensions = []
    for column in columns:
        values = [cell(r, column) for r in executions]
        numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        label = text(column.split(".", 1)[1] if column.startswith("input.") else column)
        if len(numeric) == len([v for v in values if v is not None]) and numeric:
            low, high = min(numeric), max(numeric)
            missing = low - (high - low or 1) * 0.1
            has_missing = len(numeric) < len(values)
            dimension: dict[str, Any] = {
                "label": label,
                "values": [missing if v is None else float(v) for v in values],
                "range": [missing if has_missing else low, high],
            }
            if has_missing:
                ticks = [missing, low, high]
                dimension["tickvals"] = ticks
                dimension["ticktext"] = ["(none)", f"{low:.4g}", f"{high:.4g}"]
        else:
            shown = [
                "(none)" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                for v in values
            ]
            names = sorted(set(shown), key=lambda s: (s != "(none)", s))
            index = {name: i for i, name in enumerate(names)}
            dimension = {
                "label": label,
                "values": [index[s] for s in shown],
                "tickvals": list(range(len(names))),
                "ticktext": [text(n) for n in names],
                "range": [0, max(len(names) - 1, 1)],
            }
        dimensions.append(dimension)
    line: dict[str, Any] = {"color": PALETTE[0]}
    if metric and dimensions:
        line = {
            "color": dimensions[-1]["values"],
            "colorscale": "Viridis",
            "showscale": True,
            "colorbar": {"title": {"text": text(metric)}},
        }
    count = len(executions)
    return {
        "data": [
            {
                "type": "parcoords",
                "dimensions": dimensions,
                "line": line,
                "meta": {"ids": [r.execution_id for r in executions], "columns": columns},
            }
        ],
        "layout": {
            "title": {
                "text": f"Inputs against {text(metric or 'nothing chosen')}<br><sup>{count}"
                " executions of the table; drag along an axis to keep a range</sup>",
                "x": 0.01,
            },
            "margin": {"l": 80, "r": 80, "t": 90, "b": 30},
            "height": 420,
        },
    }
