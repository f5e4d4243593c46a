"""Pipeline metrics page: one metric's values per deployment, summary, events, CSV download."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, clientside_callback, dcc, html, no_update

from fleetgauge.dashboard import components, figures
from fleetgauge.dashboard.data import listings
from fleetgauge.dashboard.data import pipeline as data
from fleetgauge.dashboard.site import current, points_for
from fleetgauge.dashboard.state import RATE_LABELS, RATE_WINDOWS
from fleetgauge.read import usage
from fleetgauge.stores import StoreError
from fleetgauge.timeutil import format_time_ms

dash.register_page(
    __name__, path="/pipeline", name="Pipeline metrics", title="fleetgauge · pipeline", order=1
)

PAGE = "pipeline"
WIDTH, REFRESH, TICK = components.page_ids(PAGE)
components.register_page_controls(PAGE)

__all__ = ["layout", "load", "selection_to_url", "zoom_to_url"]

DEFAULT_OVERLAY = 8
"""Deployments overlaid when none is chosen: the first ones by name."""


def layout(**query: object) -> html.Div:
    """The page for the view in the URL; data arrives through :func:`load`."""
    state = components.view_of_query(query)
    return html.Div(
        [
            components.controls(state, PAGE),
            html.Div(
                [
                    components.dropdown(
                        "deployments",
                        "Deployments",
                        _options(list(state.deployment)),
                        list(state.deployment),
                        True,
                        "pick one or more to compare",
                    ),
                    components.dropdown(
                        "pipeline-workers",
                        "Workers",
                        _options(list(state.worker)),
                        list(state.worker),
                        True,
                        "all, combined",
                    ),
                    components.dropdown(
                        "pipeline",
                        "Pipeline",
                        _options([state.pipeline] if state.pipeline else []),
                        state.pipeline,
                        False,
                        "any pipeline",
                    ),
                    components.dropdown(
                        "metric",
                        "Metric",
                        _options([state.metric] if state.metric else []),
                        state.metric,
                        False,
                        "pick a metric",
                    ),
                    components.dropdown(
                        "rate-window",
                        "Rate window (0/1 metrics)",
                        [{"label": label, "value": key} for key, label in RATE_LABELS.items()],
                        state.rate_window,
                        False,
                        "auto",
                    ),
                    components.download_link(PAGE),
                ],
                className="controls",
            ),
            dcc.Store(id="metric-url"),
            html.Div(id="summary", className="summary"),
            dcc.Graph(id="metric-graph", config={"displaylogo": False}, className="graph"),
            html.Div(id="footprint", className="summary footprint"),
        ]
    )


def _summary_table(view: data.MetricView) -> html.Table:
    first = "deployment (on worker)" if view.split else "deployment"
    head = [first, "count", "mean", "min", "max", "last", "last at (UTC)"]
    rows = []
    for d in view.deployments:
        s = d.summary
        if s is None:
            continue
        rows.append(
            html.Tr(
                [
                    html.Td(d.label),
                    html.Td(f"{s.count:,}"),
                    html.Td(f"{s.mean:.4g}"),
                    html.Td(f"{s.min:.4g}"),
                    html.Td(f"{s.max:.4g}"),
                    html.Td(f"{s.last:.4g}"),
                    html.Td(format_time_ms(s.last_ns)),
                ],
                className="summary-row",
            )
        )
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)])


_GIB = 2**30


def _footprint_table(found: list[usage.DeploymentUsage], priced: bool) -> list:
    """Per deployment: predictions, what its processes used, and what it cost."""
    if not found:
        return []
    head = ["deployment", "predictions", "per second", "CPU core-hours", "GPU-hours"]
    head += ["peak GPU memory", "cost", "cost per 1,000 predictions"]
    rows = []
    for u in found:
        memory = "-"
        if u.peak_gpu_memory_bytes is not None:
            memory = f"{u.peak_gpu_memory_bytes / _GIB:.1f} GiB"
            if u.gpu_memory_total_bytes:
                memory += f" of {u.gpu_memory_total_bytes / _GIB:.0f}"
        cells = [
            u.deployment,
            f"{u.predictions:,}",
            f"{u.predictions_per_second:.3g}",
            f"{u.cpu_seconds / 3600:.3g}",
            f"{u.gpu_seconds / 3600:.3g}",
            memory,
            "-" if u.cost is None else f"{u.cost:.4g}",
            "-" if u.cost_per_1000_predictions is None else f"{u.cost_per_1000_predictions:.4g}",
        ]
        rows.append(html.Tr([html.Td(c) for c in cells], className="footprint-row"))
    note = (
        "Cost from the site's prices (--price, --prices)."
        if priced
        else "No prices given: start the dashboard with --price gpu-hour=AMOUNT (or"
        " cpu-core-hour, worker-hour) or --prices FILE for the cost columns."
    )
    return [
        html.H4("Footprint and cost in this range"),
        html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(rows)]),
        html.Div(
            note + " GPU time of a shared GPU is split by SM share, an idle GPU's by the"
            " memory held; resources are those of the processes registered for the deployment.",
            className="note",
        ),
    ]


def _options(values: list[str]) -> list[dict]:
    return [{"label": v, "value": v} for v in values]


@callback(
    Output("deployments", "options", allow_duplicate=True),
    Input("deployments", "search_value"),
    State("deployments", "value"),
    components.SEARCH,
    prevent_initial_call=True,
)
def find_deployments(typed, selected, search):
    """The deployments whose names contain what the user types (the list is capped)."""
    if typed is None:
        return no_update
    state = components.view_of(search)
    start_ns, end_ns = components.window_of(state)
    try:
        with current().pool.store() as store:
            deployments = data.list_deployments(store, start_ns, end_ns, state.env)
    except StoreError as e:
        components.report_store_error(e)
        return no_update
    return components.capped_options(deployments, selected or [], typed)


@callback(
    Output("metric-graph", "figure"),
    Output("summary", "children"),
    Output("footprint", "children"),
    Output("deployments", "options"),
    Output("pipeline-workers", "options"),
    Output("pipeline", "options"),
    Output("metric", "options"),
    Output("metric", "value"),
    Output(f"{PAGE}-download", "href"),
    Input(WIDTH, "data"),
    Input(REFRESH, "n_clicks"),
    Input(TICK, "n_intervals"),
    components.SEARCH,
)
def load(width, _refresh, _tick, search):
    """Options, chart and summary for the view in the URL (a zoom is a custom range there)."""
    state = components.view_of(search)
    start_ns, end_ns = components.window_of(state)
    site = current()
    try:
        with site.pool.store() as store:
            environments = listings.list_environments(store, start_ns, end_ns)
            deployments, pipelines, names, workers = data.metric_options(
                store, start_ns, end_ns, state.env, state.deployment, state.pipeline
            )
            metric = state.metric or (names[0] if names else None)
            chosen = state.deployment or tuple(deployments[:DEFAULT_OVERLAY])
            view, footprint = None, []
            if chosen:
                prices = site.config.prices
                found = usage.deployment_usage(
                    store, start_ns, end_ns, list(chosen), prices, state.env
                )
                footprint = _footprint_table(found, not prices.empty)
            if metric and chosen:
                view = data.read_metric(
                    store,
                    metric,
                    chosen,
                    start_ns,
                    end_ns,
                    points_for(width),
                    state.env,
                    state.pipeline,
                    rate_window_ns=RATE_WINDOWS.get(state.rate_window, 0),
                    workers=state.worker,
                )
    except StoreError as e:
        components.report_store_error(e)
        return (no_update,) * 9
    components.clear_banner(
        state,
        components.unknown_names("environment", [state.env or ""], environments),
        components.unknown_names("deployment", state.deployment, deployments),
        components.unknown_names("worker", state.worker, workers),
        components.unknown_names("metric", [state.metric or ""], names),
    )
    components.set_environments(environments, state.env)
    if view is None or not view.deployments:
        why = "pick a metric" if not metric else "no values of this metric in this range"
        if not names:
            why = "no pipeline metrics recorded in this range"
        figure, summary = figures.empty_figure("Pipeline metric", why), []
    else:
        draw = figures.rate_figure if view.rate_window_ns else figures.metric_figure
        figure, summary = draw(view), _summary_table(view)
    return (
        figure,
        summary,
        footprint,
        components.capped_options(deployments, state.deployment),
        components.capped_options(workers, state.worker),
        _options(sorted({*pipelines, *([state.pipeline] if state.pipeline else [])})),
        _options(sorted({*names, *([state.metric] if state.metric else [])})),
        metric,
        components.download_href(
            "metrics",
            state,
            start_ns,
            end_ns,
            deployment=state.deployment,
            worker=state.worker,
            pipeline=[state.pipeline] if state.pipeline else [],
            metric=[metric] if metric else [],
        ),
    )


# The metric shown without one in the URL (the first recorded) goes into the URL in place
# (history.replaceState, then the event dcc.Location listens to), not as a new history
# entry: Back would land on the URL without it, which would push it again. Held there, a
# metric recorded later cannot switch the page away from the one a user looks at.
clientside_callback(
    """function (metric) {
        const params = new URLSearchParams(window.location.search);
        if (!metric || params.get('metric')) { return window.dash_clientside.no_update; }
        params.set('metric', metric);
        const url = window.location.pathname + '?' + params.toString() + window.location.hash;
        window.history.replaceState(window.history.state, '', url);
        window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
        return window.dash_clientside.no_update;
    }""",
    Output("metric-url", "data"),
    Input("metric", "value"),
)


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("metric-graph", "relayoutData"),
    components.SEARCH,
    prevent_initial_call=True,
)
def zoom_to_url(relayout, search):
    """A zoom of the chart becomes the view's custom range; anything else changes nothing.

    Plotly reports every layout change (its first autosize too): were the chart
    read again on each, a read still under way when one arrives would have its
    answer dropped by Dash for the newer call, and a slow store would leave the
    chart empty.
    """
    new = components.zoom_search(relayout, search)
    return no_update if new is None or new == search else new


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("deployments", "value"),
    Input("pipeline-workers", "value"),
    Input("pipeline", "value"),
    Input("metric", "value"),
    Input("rate-window", "value"),
    components.SEARCH,
    prevent_initial_call=True,
)
def selection_to_url(deployments, workers, pipeline, metric, window, search):
    """The deployment, worker, pipeline, metric and rate window choice into the URL."""
    state = components.view_of(search)
    new = state.with_(
        deployment=tuple(deployments or ()),
        worker=tuple(workers or ()),
        pipeline=pipeline or None,
        metric=metric or None,
        rate_window=window or "auto",
    )
    if new == state:
        return no_update
    return components.search_of(new)
