"""Resources page (the landing page): over-use cards, per-worker graphs, CSV download."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dash
from dash import ALL, Input, Output, State, callback, ctx, dash_table, dcc, html, no_update

from fleetgauge.dashboard import components, figures
from fleetgauge.dashboard.data import gpu_health, gpu_idle
from fleetgauge.dashboard.data import resources as data
from fleetgauge.dashboard.site import current, points_for
from fleetgauge.dashboard.state import MAX_TOP
from fleetgauge.dashboard.thresholds import Threshold, Thresholds
from fleetgauge.stores import StoreError
from fleetgauge.timeutil import NS_PER_S, format_duration, format_time

dash.register_page(__name__, path="/", name="Resources", title="fleetgauge · resources", order=0)

PAGE = "resources"
WIDTH, REFRESH, TICK = components.page_ids(PAGE)
components.register_page_controls(PAGE)

__all__ = ["layout", "load", "zoom_to_url", "workers_to_url", "top_to_url", "row_to_url"]

CARD = "card"
GRAPH = "graph"
TOP = "resources-top"
TABLE = "worker-table"
TABLE_PAGE = 15


def layout(**query: object) -> html.Div:
    """The page for the view in the URL; data arrives through :func:`load`."""
    state = components.view_of_query(query)
    return html.Div(
        [
            components.controls(state, PAGE),
            html.Div(
                [
                    html.Label(
                        [
                            "Workers",
                            dcc.Dropdown(
                                id="workers",
                                options=[{"label": w, "value": w} for w in state.worker],
                                value=list(state.worker),
                                multi=True,
                                placeholder="all workers",
                            ),
                        ],
                        className="control workers",
                    ),
                    html.Label(
                        [
                            "Top workers",
                            dcc.Input(
                                id=TOP,
                                type="number",
                                min=1,
                                max=MAX_TOP,
                                step=1,
                                value=state.top,
                                debounce=True,
                                className="top-input",
                            ),
                        ],
                        className="control top",
                        title=f"past {data.ALL_WORKERS_AT_MOST} workers the graphs draw the"
                        " fleet's band and this many workers, those with the highest sustained"
                        " value",
                    ),
                    components.download_link(PAGE),
                    components.download_link(PAGE, "CSV per measurement (zip)", "-zip"),
                ],
                className="controls",
            ),
            dcc.Loading(html.Div(id="cards", className="cards"), type="dot"),
            dcc.Store(id="over"),
            html.Details(
                [
                    html.Summary("Workers: latest, mean and sustained value of each"),
                    dash_table.DataTable(
                        id=TABLE,
                        columns=[],
                        data=[],
                        sort_action="native",
                        sort_mode="single",
                        filter_action="native",
                        page_action="native",
                        page_size=TABLE_PAGE,
                        style_table={"overflowX": "auto"},
                        style_cell={
                            "fontFamily": "inherit",
                            "fontSize": "13px",
                            "padding": "4px 8px",
                        },
                        style_header={"fontWeight": "600"},
                        merge_duplicate_headers=True,
                        tooltip_delay=300,
                    ),
                ],
                open=True,
                className="worker-table",
                title="click a row to show only that worker; sort and filter by any column",
            ),
            html.Div(id="graphs"),
        ]
    )


def _what(worst: data.Verdict, view: data.ResourceView, share: float) -> list:
    """The value a card shows, named: sustained, or for a worker seen for less than the share
    of the range that makes a sustained value, how long it was seen and its peak."""
    unit = view.resource.unit
    span = view.end_ns - view.start_ns
    if worst.seen_ns < share * span:
        seen = format_duration(worst.seen_ns / NS_PER_S)
        return [
            html.Span(figures.format_value(worst.peak, unit), className="card-value"),
            f" peak, seen {seen} of {format_duration(span / NS_PER_S)}",
        ]
    value = figures.format_value(worst.value, unit)
    return [html.Span(value, className="card-value"), " sustained"]


def _card(view: data.ResourceView, threshold: Threshold, share: float) -> html.Button:
    r = view.resource
    over = view.over()
    level = max((v.level for v in over), key=_rank, default=data.OK)
    if not view.curves:
        body = [html.Div("no data in this range", className="card-main")]
        level = "empty"
    else:
        worst = view.verdicts[0]
        where = f" ({worst.device})" if worst.device else ""
        limit = "" if threshold.warning is None else figures.format_limit(threshold.warning, r.unit)
        n = len(view.verdicts)
        workers = f"{n} worker" if n == 1 else f"{n:,} workers"
        count = f"{len(over)} of {n:,} over {limit}" if limit else f"{workers}, no threshold set"
        body = [
            html.Div(count, className="card-main"),
            html.Div(
                ["worst: ", html.Span(worst.worker + where, className="card-worker"), " "]
                + _what(worst, view, share),
                className="card-worst",
            ),
        ]
    return html.Button(
        [html.Div(r.title, className="card-title"), *body],
        id={"type": CARD, "resource": r.key},
        className=f"card {level}",
        title="show only the workers over the threshold" if over else "",
        n_clicks=0,
    )


GPU_HEALTH = "gpu_health"
GPU_IDLE = "gpu_idle"


def _gpu_card(
    key: str, title: str, level: str, main: str, first: tuple[str, str, str] | None, tip: str
) -> html.Button:
    """A card about GPUs: a headline, the first GPU named (prefix, which, what) and a click
    that shows only the workers it is about."""
    body = [html.Div(main, className="card-main")]
    if first is not None:
        prefix, which, what = first
        body.append(
            html.Div(
                [
                    prefix,
                    html.Span(which, className="card-worker"),
                    " ",
                    html.Span(what, className="card-value"),
                ],
                className="card-worst",
            )
        )
    return html.Button(
        [html.Div(title, className="card-title"), *body],
        id={"type": CARD, "resource": key},
        className=f"card {level}",
        title=tip if first is not None else "",
        n_clicks=0,
    )


def _idle_card(idle: list[gpu_idle.IdleGpu], gpus: int, below: float) -> html.Button:
    """GPUs a process holds memory on while they stay (nearly) unused, most idle first."""
    if not idle:
        main = f"no GPU held but idle (under {below:g} %)"
        return _gpu_card(GPU_IDLE, "Idle but allocated GPUs", data.OK, main, None, "")
    g = idle[0]
    return _gpu_card(
        GPU_IDLE,
        "Idle but allocated GPUs",
        data.WARNING,
        f"{len(idle)} of {gpus} GPUs held but idle",
        ("", f"{g.worker} (gpu {g.gpu})", g.summary),
        "show only the workers with GPUs held but idle",
    )


def _gpu_health_card(troubles: list[gpu_health.GpuTrouble], gpus: int) -> html.Button:
    """GPUs with XID or ECC errors or throttling in the range, worst first."""
    if not troubles:
        return _gpu_card(GPU_HEALTH, "GPU health", data.OK, f"all {gpus} GPUs healthy", None, "")
    worst = troubles[0]
    return _gpu_card(
        GPU_HEALTH,
        "GPU health",
        {"critical": data.CRITICAL, "warning": data.WARNING}.get(worst.level, data.OK),
        f"{len(troubles)} of {gpus} GPUs with trouble",
        ("worst: ", f"{worst.worker} (gpu {worst.gpu})", worst.summary),
        "show only the workers whose GPUs had trouble",
    )


def _rank(level: str) -> int:
    return (data.OK, data.WARNING, data.CRITICAL).index(level)


def _graph(
    view: data.ResourceView, threshold: Threshold, heat: list[tuple[int, int]] = ()
) -> dcc.Graph:
    """A resource's graph; the GPU utilisation graph shades the spans a GPU was slowed for
    heat."""
    r = view.resource
    if view.curves:
        figure = figures.resource_figure(view, threshold)
        if r.key == "gpu" and heat:
            figures.shade(figure, heat, "GPU slowed for heat")
    else:
        figure = figures.empty_figure(r.title, "no data in this range")
    return dcc.Graph(
        id={"type": GRAPH, "resource": r.key},
        figure=figure,
        config={"displaylogo": False},
        className="graph",
    )


_LEVEL_COLOURS = {data.WARNING: "#fff3cd", data.CRITICAL: "#f8d7da"}


def _scale(view: data.ResourceView) -> tuple[float, str]:
    """What a table cell shows a value in: percentages as they are, rates in MB/s."""
    return (1.0, "%") if view.resource.is_percent else (1e6, "MB/s")


def worker_table(
    views: list[data.ResourceView], thresholds: Thresholds
) -> tuple[list[dict], list[dict], list[dict]]:
    """Rows, columns and over-use colouring of the worker table: one row per worker with,
    per resource, its latest, mean and sustained value, and when it was last seen."""
    rows: dict[str, dict] = {}
    newest = max((v.last_ns for view in views for v in view.verdicts), default=0)
    step = max((view.step_ns for view in views if view.verdicts), default=0)
    columns = [
        {"name": ["", "worker"], "id": "worker"},
        {"name": ["", "last seen (UTC)"], "id": "last_seen"},
        {"name": ["", "state"], "id": "state"},
    ]
    styles = []
    for view in views:
        r = view.resource
        if not view.verdicts:
            continue
        per, unit = _scale(view)
        title = f"{r.title} ({unit})"
        for what in ("latest", "mean", "sustained"):
            columns.append({"name": [title, what], "id": f"{r.key}_{what}", "type": "numeric"})
        t = thresholds.of(r.key)
        for level, limit in ((data.WARNING, t.warning), (data.CRITICAL, t.critical)):
            if limit is not None:
                styles.append(
                    {
                        "if": {
                            "filter_query": f"{{{r.key}_sustained}} >= {limit / per:g}",
                            "column_id": f"{r.key}_sustained",
                        },
                        "backgroundColor": _LEVEL_COLOURS[level],
                    }
                )
        for v in view.verdicts:
            row = rows.setdefault(v.worker, {"id": v.worker, "worker": v.worker, "last": 0})
            row["last"] = max(row["last"], v.last_ns)
            row[f"{r.key}_latest"] = round(v.latest / per, 2)
            row[f"{r.key}_mean"] = round(v.mean / per, 2)
            row[f"{r.key}_sustained"] = round(v.value / per, 2)
    out = []
    for worker in sorted(rows):
        row = rows[worker]
        last = row.pop("last")
        row["last_seen"] = format_time(last - last % NS_PER_S)[:19].replace("T", " ")
        row["state"] = "stale" if last < newest - step else "reporting"
        out.append(row)
    styles.append({"if": {"filter_query": '{state} = "stale"'}, "color": "#8a939b"})
    return out, columns, styles


@callback(
    Output("cards", "children"),
    Output("graphs", "children"),
    Output("over", "data"),
    Output("workers", "options"),
    Output(f"{PAGE}-download", "href"),
    Output(f"{PAGE}-download-zip", "href"),
    Output(TABLE, "data"),
    Output(TABLE, "columns"),
    Output(TABLE, "style_data_conditional"),
    Input(WIDTH, "data"),
    Input(REFRESH, "n_clicks"),
    Input(TICK, "n_intervals"),
    components.SEARCH,
)
def load(width, _refresh, _tick, search):
    """Read every resource for the view in the URL: cards, graphs, options, download link."""
    state = components.view_of(search)
    start_ns, end_ns = components.window_of(state)
    site = current()
    thresholds = site.config.thresholds
    try:
        with site.pool.store() as store, ThreadPoolExecutor(1) as pool:
            # the GPU reads are small: on a store that answers at once they run beside the views
            beside = pool.submit if store.concurrent_reads else data.done
            gpu = beside(
                _gpu_reads, store, start_ns, end_ns, points_for(width), state, thresholds.gpu_idle
            )
            page = data.read_resources_page(
                store,
                start_ns,
                end_ns,
                points_for(width),
                thresholds,
                state.env,
                state.worker,
                state.top,
            )
            (troubles, gpus), heat, (idle, used_gpus) = gpu.result()
    except StoreError as e:
        components.report_store_error(e)
        return [], [], {}, no_update, no_update, no_update, [], no_update, no_update
    views = page.views
    shown = [v for v in views if v.curves or not v.resource.optional]
    cards = [_card(v, thresholds.of(v.resource.key), thresholds.over_share) for v in shown]
    if gpus:
        cards.append(_gpu_health_card(troubles, gpus))
    if used_gpus:
        cards.append(_idle_card(idle, used_gpus, thresholds.gpu_idle.below))
    graphs = [_graph(v, thresholds.of(v.resource.key), heat) for v in shown]
    over = {v.resource.key: [o.worker for o in v.over()] for v in views}
    over[GPU_HEALTH] = sorted({t.worker for t in troubles})
    over[GPU_IDLE] = sorted({g.worker for g in idle})
    options = [{"label": w, "value": w} for w in sorted({*page.workers, *state.worker})]
    components.clear_banner(
        state,
        components.unknown_names("environment", [state.env or ""], page.environments),
        components.unknown_names("worker", state.worker, page.workers),
    )
    components.set_environments(page.environments, state.env)
    rows, columns, styles = worker_table(shown, thresholds)
    return (
        cards,
        graphs,
        over,
        options,
        components.download_href("resources", state, start_ns, end_ns, worker=state.worker),
        components.download_href("resources", state, start_ns, end_ns, "zip", worker=state.worker),
        rows,
        columns,
        styles,
    )


def _gpu_reads(store, start_ns, end_ns, points, state, rule):
    """GPU health (troubles, GPUs), heat intervals, and idle GPUs (idle, used GPUs)."""
    health = gpu_health.read_gpu_health(store, start_ns, end_ns, state.env, state.worker)
    heat = gpu_health.read_heat_intervals(store, start_ns, end_ns, points, state.env, state.worker)
    idle = gpu_idle.read_idle_gpus(
        store, start_ns, end_ns, rule.below, rule.share, state.env, state.worker
    )
    return health, heat, idle


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input({"type": GRAPH, "resource": ALL}, "relayoutData"),
    components.SEARCH,
    prevent_initial_call=True,
)
def zoom_to_url(_relayouts, search):
    """A zoom of any graph becomes the view's custom range: every graph is read again for
    it, at the finer resolution it allows, and a reload or a shared link shows it too."""
    # Graphs resizing (autosize) at the same moment arrive in the same call: any of the
    # triggers may be the zoom, not only the first.
    for trigger in ctx.triggered:
        new = components.zoom_search(trigger["value"], search)
        if new is not None:
            return no_update if new == search else new
    return no_update


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input(TABLE, "active_cell"),
    components.SEARCH,
    prevent_initial_call=True,
)
def row_to_url(cell, search):
    """A click on a worker's row shows only that worker."""
    worker = (cell or {}).get("row_id")
    state = components.view_of(search)
    if not worker or state.worker == (worker,):
        return no_update
    return components.search_of(state.with_(worker=(worker,)))


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input(TOP, "value"),
    components.SEARCH,
    prevent_initial_call=True,
)
def top_to_url(top, search):
    """How many workers a fleet graph draws, into the URL."""
    state = components.view_of(search)
    if not isinstance(top, int | float) or not 1 <= top <= MAX_TOP or int(top) == state.top:
        return no_update
    return components.search_of(state.with_(top=int(top)))


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("workers", "value"),
    Input({"type": CARD, "resource": ALL}, "n_clicks"),
    State("over", "data"),
    components.SEARCH,
    prevent_initial_call=True,
)
def workers_to_url(selected, clicks, over, search):
    """The worker selection, or a click on a card (its workers at fault), into the URL."""
    state = components.view_of(search)
    trigger = ctx.triggered_id
    if isinstance(trigger, dict):
        if not ctx.triggered[0]["value"]:
            return no_update
        workers = tuple((over or {}).get(trigger["resource"], ()))
        if not workers:
            return no_update
    else:
        workers = tuple(selected or ())
    if workers == state.worker:
        return no_update
    return components.search_of(state.with_(worker=workers))
