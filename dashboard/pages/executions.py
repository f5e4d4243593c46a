"""Executions page: a table of the runs started in the range, and a comparison of chosen ones.

The table lists the executions (newest first, 25 a page, paged on the server: a
range of 10,000 executions reads every metric only for the page shown) with the
columns the user picks among metadata, inputs, simple metrics (last value) and list
metrics reduced by the chosen mode; it sorts by any column (click a header: a metric
is read for every execution listed, from the store's summaries) and filters by
pipeline, status and a filter (:mod:`fleetgauge.read.filters`, the grammar of
``search_executions`` and ``fleetgauge export executions --filter``; one that
does not parse is shown with a caret under the spot). Ticking rows (on any page)
and pressing Compare puts those executions
in the URL (``run=``) and draws, for every list metric, one chart with a line
per execution against step (or wall time), with their events as markers.

A parallel-coordinates chart draws the table's executions (the newest 1,000 of
them): an axis per chosen input and one for the chosen metric (``axis=`` and ``by=``
in the URL); dragging along an axis keeps only the executions within the ranges in
the table.
"""

from __future__ import annotations

import re

import dash
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from fleetgauge import catalogue
from fleetgauge.dashboard import components, figures
from fleetgauge.dashboard.data import executions as data
from fleetgauge.dashboard.site import current
from fleetgauge.read import executions as ex
from fleetgauge.read.filters import FilterError
from fleetgauge.stores import StoreError
from fleetgauge.timeutil import format_duration

dash.register_page(
    __name__, path="/executions", name="Executions", title="fleetgauge · executions", order=2
)

PAGE = "executions"
WIDTH, REFRESH, TICK = components.page_ids(PAGE)
components.register_page_controls(PAGE)

__all__ = ["layout", "load", "selection_to_url", "compare_to_url", "PAGE_SIZE"]

PAGE_SIZE = data.PAGE_SIZE
MAX_AXES = 8
"""Input axes of the parallel-coordinates chart when none are chosen."""
TABLE = "executions-table"
_NUMERIC = (int, float)


def layout(**query: object) -> html.Div:
    """The page for the view in the URL; the table and charts arrive through :func:`load`."""
    state = components.view_of_query(query)
    statuses = [{"label": s, "value": s} for s in catalogue.SHOWN_STATUSES]
    return html.Div(
        [
            components.controls(state, PAGE),
            html.Div(
                [
                    components.dropdown(
                        "exec-pipeline",
                        "Pipeline",
                        [{"label": p, "value": p} for p in [state.pipeline] if p],
                        state.pipeline,
                        False,
                        "any pipeline",
                    ),
                    components.dropdown(
                        "exec-status", "Status", statuses, state.status, False, "any"
                    ),
                    html.Div(
                        [
                            html.Span("Filter", className="control-title"),
                            dcc.Input(
                                id="exec-filter",
                                type="text",
                                value=state.filter or "",
                                debounce=True,  # on Enter or leaving the box
                                placeholder="input.batch_size = 128 and metric.accuracy > 0.9",
                                spellCheck=False,
                            ),
                        ],
                        className="control filter",
                    ),
                    html.Div(
                        [
                            html.Span("List metrics as", className="control-title"),
                            dcc.RadioItems(
                                id="exec-mode",
                                options=[{"label": m, "value": m} for m in ex.MODES],
                                value=state.mode,
                                inline=True,
                            ),
                        ],
                        className="control mode",
                    ),
                    components.download_link(PAGE),
                ],
                className="controls",
            ),
            html.Div(
                [
                    components.dropdown(
                        "exec-columns",
                        "Columns",
                        [{"label": ex.column_label(c), "value": c} for c in state.col],
                        list(state.col),
                        True,
                        "the metadata, every input and every metric",
                    ),
                ],
                className="controls columns",
            ),
            html.Pre(id="exec-filter-error", className="filter-error"),
            html.Div(id="exec-count", className="note"),
            dash_table.DataTable(
                id=TABLE,
                columns=[],
                data=[],
                row_selectable="multi",
                selected_rows=[],
                markdown_options={"link_target": "_self"},  # the id opens its page here
                sort_action="custom",  # on the server, over every page, by the values
                sort_mode="single",
                sort_by=[],
                page_action="custom",  # a page at a time from the server
                page_current=0,
                page_size=PAGE_SIZE,
                page_count=1,
                style_table={"overflowX": "auto"},  # the tick box and id stay put: style.css
                style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px"},
                style_header={"fontWeight": "600"},
                style_cell_conditional=[  # names and text read from the left, numbers right
                    {"if": {"column_type": "text"}, "textAlign": "left"},
                    {"if": {"column_id": "id"}, "textAlign": "left"},
                    {"if": {"column_id": "duration_s"}, "textAlign": "right"},
                ],
            ),
            html.Div(
                [
                    html.Button("Compare", id="compare", n_clicks=0),
                    html.Span("against", className="control-title"),
                    dcc.RadioItems(
                        id="exec-x",
                        options=[
                            {"label": "step", "value": "step"},
                            {"label": "wall time (UTC)", "value": "time"},
                        ],
                        value=state.x,
                        inline=True,
                    ),
                    html.Span(
                        "tick executions in the table, then Compare", className="control-title"
                    ),
                ],
                className="controls compare",
            ),
            html.Div(id="compare-charts"),
            html.Div(
                [
                    components.dropdown(
                        "exec-axes",
                        "Parallel coordinates of",
                        [{"label": ex.column_label(c), "value": c} for c in state.axis],
                        list(state.axis),
                        True,
                        f"the first {MAX_AXES} inputs",
                    ),
                    components.dropdown(
                        "exec-by",
                        "against",
                        [{"label": ex.column_label(state.by), "value": state.by}]
                        if state.by
                        else [],
                        state.by,
                        False,
                        "the first metric",
                    ),
                ],
                className="controls parallel",
            ),
            dcc.Graph(id="exec-parallel", config={"displaylogo": False}, className="graph"),
            html.Div(id="exec-brush-note", className="note"),
            dcc.Store(id="exec-brush", data={}),
            dcc.Store(id="exec-ticked", data=list(state.run)),
        ]
    )


def _chosen_columns(state, available: list[str]) -> list[str]:
    """The URL's columns (the list-metric ones in the current mode), else the defaults; the
    id, then the metric columns: what a user came for is in view at 1,000 px."""
    if not state.col:
        chosen = available
    else:
        chosen = []
        for c in state.col:
            if c.startswith("list."):
                c = c.rsplit(".", 1)[0] + "." + state.mode
            if c not in chosen:
                chosen.append(c)
    metrics = [c for c in chosen if c.startswith(("metric.", "list.", "resource."))]
    first = [c for c in chosen if c == "execution_id"]
    return first + metrics + [c for c in chosen if c not in metrics and c not in first]


def _table_value(column: str, value: object) -> object:
    if column in ("start", "end") and isinstance(value, str):
        return value[:19].replace("T", " ")  # to the second: the CSV keeps every digit
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, _NUMERIC):
        return value
    return str(value)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def _link(execution_id: str) -> str:
    """A markdown link to the execution's page (the id shown as it is, whatever it holds)."""
    shown = _MARKDOWN.sub(r"\\\1", execution_id)
    return f"[{shown}]({components.execution_href(execution_id)})"


def _table(records: list[ex.ExecutionRecord], columns: list[str]) -> tuple[list[dict], list[dict]]:
    rows = []
    for r in records:
        row = {"id": r.execution_id}
        for c in columns:
            row[c] = _table_value(c, ex.cell(r, c))
            if c == "duration_s" and row[c] is not None:
                row[c + components.SORT_KEY] = row[c]
                row[c] = format_duration(row[c])
            elif c == "execution_id":
                row[c + components.SORT_KEY] = r.execution_id
                row[c] = _link(r.execution_id)
        rows.append(row)
    specs = []
    for c in columns:
        if c == "duration_s":
            specs.append({"name": ex.column_label(c), "id": c, "type": "text"})
            continue
        if c == "execution_id":
            name = ex.column_label(c)
            specs.append({"name": name, "id": c, "type": "text", "presentation": "markdown"})
            continue
        cells = [row[c] for row in rows if row[c] is not None]
        numeric = bool(cells) and all(isinstance(v, _NUMERIC) for v in cells)
        spec = {"name": ex.column_label(c), "id": c, "type": "numeric" if numeric else "text"}
        if numeric and (c.startswith(("list.", "metric.", "resource.")) or c == "duration_s"):
            spec["format"] = {"specifier": ".4~g"}
        specs.append(spec)
    return specs, rows


@callback(
    Output(TABLE, "columns"),
    Output(TABLE, "data"),
    Output(TABLE, "selected_rows"),
    Output(TABLE, "page_count"),
    Output("exec-count", "children"),
    Output("exec-pipeline", "options"),
    Output("exec-columns", "options"),
    Output("compare-charts", "children"),
    Output(f"{PAGE}-download", "href"),
    Output("exec-filter-error", "children"),
    Output("exec-parallel", "figure"),
    Output("exec-axes", "options"),
    Output("exec-by", "options"),
    Output("exec-brush-note", "children"),
    Input(WIDTH, "data"),
    Input(REFRESH, "n_clicks"),
    Input(TICK, "n_intervals"),
    components.SEARCH,
    Input(TABLE, "page_current"),
    Input(TABLE, "sort_by"),
    Input("exec-brush", "data"),
    State("exec-ticked", "data"),
)
def load(_width, _refresh, _tick, search, page, sort_by, brush, ticked):
    """Table page, options and charts for the view in the URL, the page and sort of the
    table and the ranges brushed on the parallel-coordinates chart."""
    state = components.view_of(search)
    start_ns, end_ns = components.window_of(state)
    sort = (sort_by[0]["column_id"], sort_by[0]["direction"] == "desc") if sort_by else None
    ranges = (brush or {}).get("ranges") if (brush or {}).get("search") == search else None
    try:
        with current().pool.store() as store:
            view = data.read_executions_view(
                store,
                start_ns,
                end_ns,
                state.env,
                state.pipeline,
                state.status,
                state.run,
                state.filter,
                mode=state.mode,
                by=state.by,
            )
            known = ex.columns_of(view.records, state.mode)  # inputs of all, metrics read
            figure, axes, bys = _parallel(view, known, state)
            keep = _kept(figure, ranges) if ranges else None
            _keep_brush(figure, ranges or {})
            shown, listed = data.read_page(store, view.records, page or 0, PAGE_SIZE, sort, keep)
    except FilterError as e:
        note = "No executions shown: the filter does not parse (see above)."
        empty = figures.parallel_figure([], [], None, ex.cell)
        lost = ([], [], [], 1, note, no_update, no_update, [], no_update, str(e))
        return (*lost, empty, no_update, no_update, "")
    except StoreError as e:
        components.report_store_error(e)
        return (no_update,) * 14
    components.clear_banner(
        state, components.unknown_names("environment", [state.env or ""], view.environments)
    )
    components.set_environments(view.environments, state.env)
    available = ex.columns_of(view.records, state.mode)  # and now the page's metrics
    columns = _chosen_columns(state, available)
    specs, rows = _table(shown, columns)
    pages = max(1, -(-listed // PAGE_SIZE))
    total = len(view.records)
    note = f"{total} execution{'s' * (total != 1)} started in this range, newest first"
    if state.filter:
        note = note.replace(" started", " passing the filter started", 1)
    if pages > 1:
        note += f"; page {min(page or 0, pages - 1) + 1} of {pages}"
    brushed = ""
    if keep is not None:
        brushed = (
            f"{listed} of {len(view.drawn)} executions drawn within the ranges on the axes"
            " (click an axis outside its range to clear it)"
        )
    pipelines = sorted({*view.pipelines, *([state.pipeline] if state.pipeline else [])})
    options = [
        {"label": ex.column_label(c), "value": c} for c in dict.fromkeys(available + columns)
    ]
    charts = _compare_charts(view.compared, view.events, state.x, state.run)
    charts += _resource_charts(view.compared, view.curves, state.run)
    chosen = set(ticked if ticked is not None else state.run)
    redrawn = dash.ctx.triggered_id not in ("exec-brush", TABLE)  # a brush stays drawn
    return (
        specs,
        rows,
        [i for i, row in enumerate(rows) if row["id"] in chosen],
        pages,
        note,
        [{"label": p, "value": p} for p in pipelines],
        options,
        charts,
        _download_href(state, start_ns, end_ns, columns),
        "",
        figure if redrawn else no_update,
        axes,
        bys,
        brushed,
    )


def _parallel(view, available: list[str], state) -> tuple[dict, list[dict], list[dict]]:
    """The parallel-coordinates figure and the options of its two dropdowns."""
    inputs = [c for c in available if c.startswith("input.")]
    metrics = [c for c in available if c.startswith(("metric.", "list.", "resource."))]
    metrics += [c for c in ("duration_s",) if c in available]
    metrics += [c for c in [view.by] if c and c not in metrics]
    axes = [c for c in state.axis if c in inputs] or inputs[:MAX_AXES]
    figure = figures.parallel_figure(view.drawn, axes, view.by, ex.cell)
    return (
        figure,
        [{"label": ex.column_label(c), "value": c} for c in inputs],
        [{"label": ex.column_label(c), "value": c} for c in metrics],
    )


_RANGE_KEY = re.compile(r"dimensions\[(\d+)\]\.constraintrange")


def _ranges(value: object) -> list[list[float]] | None:
    """The ranges of one ``constraintrange`` change (None: cleared): plotly sends one value
    per trace, a range ``[lo, hi]`` or a list of ranges."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list | type(None)):
        value = value[0]  # the one trace's value
    if not value:
        return None
    if isinstance(value[0], int | float):
        value = [value]
    return [[float(lo), float(hi)] for lo, hi in value]


def _keep_brush(figure: dict, ranges: dict[str, list]) -> None:
    """The brushed ranges drawn on a figure drawn anew (a refresh keeps them in view)."""
    dimensions = (figure.get("data") or [{}])[0].get("dimensions") or []
    for index, drawn in ranges.items():
        if int(index) < len(dimensions) and drawn:
            dimensions[int(index)]["constraintrange"] = drawn[0] if len(drawn) == 1 else drawn


def _kept(figure: dict, brush: dict[str, list]) -> set[str] | None:
    """Ids of the executions inside every brushed range; None when nothing is brushed."""
    if not brush or not figure or not figure.get("data"):
        return None
    trace = figure["data"][0]
    ids = trace["meta"]["ids"]
    keep = set(ids)
    for index, ranges in brush.items():
        values = trace["dimensions"][int(index)]["values"]
        keep &= {
            i for i, v in zip(ids, values, strict=True) if any(lo <= v <= hi for lo, hi in ranges)
        }
    return keep


@callback(
    Output("exec-brush", "data"),
    Input("exec-parallel", "restyleData"),
    State("exec-brush", "data"),
    components.SEARCH,
    prevent_initial_call=True,
)
def brush_rows(restyle, brush, search):
    """A range dragged along an axis: remembered for this view, so the table keeps only
    the executions inside every range (see :func:`load`)."""
    if not restyle:
        return no_update
    brush = brush or {}
    ranges = dict(brush.get("ranges") or {}) if brush.get("search") == search else {}
    changed = False
    for key, value in (restyle[0] or {}).items():
        match = _RANGE_KEY.fullmatch(key)
        if match is None:
            continue
        changed = True
        found = _ranges(value)
        if found is None:
            ranges.pop(match.group(1), None)
        else:
            ranges[match.group(1)] = found
    if not changed:
        return no_update
    return {"search": search, "ranges": ranges}


@callback(
    Output("exec-ticked", "data"),
    Input(TABLE, "selected_rows"),
    State(TABLE, "data"),
    State("exec-ticked", "data"),
    prevent_initial_call=True,
)
def tick_rows(selected, rows, ticked):
    """Ticked executions, kept across pages: this page's ticks replace this page's.

    By row index with the data beside it: a new page sets both at once, where the ids
    the table derives from them would arrive with the page before's data."""
    rows = rows or []
    on_page = {row["id"] for row in rows}
    kept = [i for i in ticked or () if i not in on_page]
    return kept + [rows[i]["id"] for i in selected or () if i < len(rows)]


def _compare_charts(compared, events, x: str, wanted) -> list:
    if not wanted:
        return []
    if not compared:
        return [
            html.Div("The executions to compare did not start in this range.", className="note")
        ]
    order = {execution_id: i for i, execution_id in enumerate(wanted)}
    compared = sorted(compared, key=lambda r: order.get(r.execution_id, len(order)))
    links = html.Div(
        [
            html.Span("Open an execution's page: ", className="control-title"),
            *(
                html.A(
                    r.execution_id,
                    href=components.execution_href(r.execution_id),
                    className="run-link",
                )
                for r in compared
            ),
        ],
        className="note compare-links",
    )
    metrics = sorted({name for r in compared for name in r.list_metrics})
    if not metrics:
        return [links, html.Div("These executions recorded no list metrics.", className="note")]
    return [
        links,
        *(
            dcc.Graph(
                id={"type": "compare-graph", "metric": name},
                figure=figures.compare_figure(name, compared, events, x),
                config={"displaylogo": False},
                className="graph",
            )
            for name in metrics
        ),
    ]


def _resource_charts(compared, curves, wanted) -> list:
    """What the compared executions' processes used, a chart per resource they reported."""
    if not wanted or not compared:
        return []
    order = {execution_id: i for i, execution_id in enumerate(wanted)}
    compared = sorted(compared, key=lambda r: order.get(r.execution_id, len(order)))
    reported = {c.field for found in curves.values() for c in found}
    if not reported:
        return [
            html.Div(
                "No resources were recorded for these executions: their processes did not"
                " register with an agent (the SDK does it when the values carry the"
                " execution's id).",
                className="note",
            )
        ]
    return [
        dcc.Graph(
            id={"type": "resource-graph", "field": name},
            figure=figures.resource_compare_figure(name, compared, curves),
            config={"displaylogo": False},
            className="graph",
        )
        for name in figures.RESOURCE_TITLES
        if name in reported
    ]


def _download_href(state, start_ns: int, end_ns: int, columns: list[str]) -> str:
    filters: dict[str, list[str]] = {"column": columns}
    if state.pipeline:
        filters["pipeline"] = [state.pipeline]
    if state.status:
        filters["status"] = [state.status]
    if state.filter:
        filters["filter"] = [state.filter]
    return components.download_href("executions", state, start_ns, end_ns, **filters)


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("exec-pipeline", "value"),
    Input("exec-status", "value"),
    Input("exec-mode", "value"),
    Input("exec-columns", "value"),
    Input("exec-x", "value"),
    Input("exec-filter", "value"),
    Input("exec-axes", "value"),
    Input("exec-by", "value"),
    components.SEARCH,
    prevent_initial_call=True,
)
def selection_to_url(pipeline, status, mode, columns, x, where, axes, by, search):
    """The filters, mode, columns and x axis into the URL."""
    state = components.view_of(search)
    mode = mode or "last"
    chosen = [
        c.rsplit(".", 1)[0] + "." + mode if c.startswith("list.") else c for c in columns or ()
    ]
    new = state.with_(
        pipeline=pipeline or None,
        status=status or None,
        mode=mode,
        col=tuple(dict.fromkeys(chosen)),
        x=x or "step",
        filter=(where or "").strip() or None,
        axis=tuple(axes or ()),
        by=by or None,
    )
    if new == state:
        return no_update
    return components.search_of(new)


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("compare", "n_clicks"),
    State("exec-ticked", "data"),
    components.SEARCH,
    prevent_initial_call=True,
)
def compare_to_url(_clicks, selected, search):
    """The ticked executions (of every page) into the URL: the comparison is drawn from
    there."""
    state = components.view_of(search)
    new = state.with_(run=tuple(selected or ()))
    if new == state:
        return no_update
    return components.search_of(new)
