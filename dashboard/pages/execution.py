"""One execution's page (``/executions/<execution_id>``): what it was, got, did and said.

A header (pipeline, id, worker, status, start, end, duration, tags) and four tabs:
**Inputs / Outputs** (name, type, value and where it came from), **Metrics** (the
simple metrics as a table, one chart per list metric against step or wall time
with the execution's events as stars), **Logs** (its log lines, newest or oldest
first, by level, text and time window, refreshed every 5 s while it runs) and
**Resources** (what its processes used over its duration). The tab and the log
filters are in the URL (``tab``, ``level``, ``q``, ``order``, ``from``, ``to``), so
any of them can be bookmarked and shared. Every row of the Executions table and
every compared execution links here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlencode

import dash
from dash import Input, Output, callback, dash_table, dcc, html, no_update

from fleetgauge import catalogue
from fleetgauge.dashboard import components, figures
from fleetgauge.dashboard.data import executions as data
from fleetgauge.dashboard.site import current
from fleetgauge.dashboard.state import parse_search
from fleetgauge.read import executions as ex
from fleetgauge.read import logs as log_reads
from fleetgauge.stores import StoreError
from fleetgauge.timeutil import EARLIEST_NS, LATEST_NS, format_duration, format_time, parse_time

dash.register_page(
    __name__,
    path_template="/executions/<execution_id>",
    name="Execution",
    title="fleetgauge · execution",
    order=3,
    nav=False,
)

__all__ = ["layout", "TABS", "LOG_LIMIT"]

TABS = {"io": "Inputs / Outputs", "metrics": "Metrics", "logs": "Logs", "resources": "Resources"}
LOG_LIMIT = 1000
"""Log lines shown at most: the newest (or oldest) that pass the filters."""
ORDERS = {"newest": "newest first", "oldest": "oldest first"}
REFRESH_MS = 5000
"""How often the logs of a running execution are read again."""
_LOG_KEYS = ("level", "q", "order", "from", "to")


def _query(query: dict[str, object]) -> dict[str, str]:
    """This page's keys of a query (the first value of each; empty ones left out)."""
    found = {}
    for key in ("tab", "env", *_LOG_KEYS):
        value = query.get(key)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value:
            found[key] = str(value)
    return found


def layout(execution_id: str = "", **query: object) -> html.Div:
    """The page of one execution; the store is read by :func:`load` and :func:`load_logs`."""
    wanted = _query(query)
    tab = wanted.get("tab") if wanted.get("tab") in TABS else "io"
    level = wanted.get("level") if wanted.get("level") in catalogue.LOG_LEVELS else None
    order = wanted.get("order") if wanted.get("order") in ORDERS else "newest"
    levels = [{"label": f"{name} and graver", "value": name} for name in catalogue.LOG_LEVELS]
    back = dash.get_relative_path("/executions")
    return html.Div(
        [
            dcc.Store(id="run-key", data={"id": unquote(execution_id), "env": wanted.get("env")}),
            html.Div(html.A("← all executions", href=back, id="run-back"), className="note"),
            html.Div(id="run-header", className="run-header"),
            dcc.Tabs(
                id="run-tab",
                value=tab,
                children=[
                    dcc.Tab(label=TABS["io"], value="io", children=html.Div(id="run-io")),
                    dcc.Tab(
                        label=TABS["metrics"],
                        value="metrics",
                        children=[
                            dcc.RadioItems(
                                id="run-x",
                                options=[
                                    {"label": "against step", "value": "step"},
                                    {"label": "against wall time (UTC)", "value": "time"},
                                ],
                                value="step",
                                inline=True,
                                className="controls",
                            ),
                            html.Div(id="run-metrics"),
                        ],
                    ),
                    dcc.Tab(
                        label=TABS["logs"],
                        value="logs",
                        children=[
                            html.Div(
                                [
                                    components.dropdown(
                                        "run-level", "Level", levels, level, False, "any level"
                                    ),
                                    _text_box("run-q", "Search", wanted.get("q"), "text"),
                                    _text_box("run-from", "From", wanted.get("from"), "UTC"),
                                    _text_box("run-to", "To", wanted.get("to"), "UTC"),
                                    dcc.RadioItems(
                                        id="run-order",
                                        options=[
                                            {"label": v, "value": k} for k, v in ORDERS.items()
                                        ],
                                        value=order,
                                        inline=True,
                                    ),
                                ],
                                className="controls",
                            ),
                            html.Div(id="run-log-note", className="note"),
                            html.Div(id="run-logs"),
                        ],
                    ),
                    dcc.Tab(
                        label=TABS["resources"],
                        value="resources",
                        children=html.Div(id="run-resources"),
                    ),
                ],
            ),
            dcc.Interval(id="run-tick", interval=REFRESH_MS, disabled=True),
        ]
    )


def _text_box(id_: str, title: str, value: str | None, hint: str) -> html.Div:
    return html.Div(
        [
            html.Span(title, className="control-title"),
            dcc.Input(id=id_, type="text", value=value or "", debounce=True, placeholder=hint),
        ],
        className="control",
    )


def _header(r: ex.ExecutionRecord) -> list:
    rows = [
        ("Pipeline", r.pipeline or "(none)"),
        ("Status", html.Span(r.status, className=f"status status-{r.status}")),
        ("Worker", r.worker or "(unknown)"),
        ("Environment", r.environment),
        ("Start", format_time(r.start_ns)),
        ("End", "—" if r.end_ns is None else format_time(r.end_ns)),
        ("Duration", "running" if r.duration_s is None else format_duration(r.duration_s)),
        (
            "Tags",
            [html.Span(f"{k} = {v}", className="tag") for k, v in r.tags.items()] or "(none)",
        ),
    ]
    items: list[Any] = []
    for name, value in rows:
        items += [html.Dt(name), html.Dd(value, id=f"run-{name.lower()}")]
    return [html.H2(["Execution ", html.Code(r.execution_id, id="run-title")]), html.Dl(items)]


def _type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "text"


def _io_table(r: ex.ExecutionRecord) -> Any:
    rows = [
        {
            "kind": kind,
            "name": name,
            "type": _type(value),
            "value": "null"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value),
            "source": source,
        }
        for kind, values, source in (
            ("input", {k: v for k, v in r.inputs.items() if k not in r.defaulted}, "given"),
            ("input", {k: r.inputs[k] for k in r.defaulted}, "a default (not given)"),
            ("output", r.outputs, "given when it ended"),
        )
        for name, value in values.items()
    ]
    if not rows:
        return html.Div("This execution recorded no inputs and no outputs.", className="note")
    return dash_table.DataTable(
        id="run-io-table",
        columns=[
            {"name": h, "id": c}
            for c, h in (
                ("kind", "input / output"),
                ("name", "name"),
                ("type", "type"),
                ("value", "value"),
                ("source", "where it came from"),
            )
        ],
        data=rows,
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "left"},
        style_header={"fontWeight": "600"},
    )


def _metrics(r: ex.ExecutionRecord, events: list, x: str) -> list:
    parts: list[Any] = []
    if r.metrics:
        parts.append(
            dash_table.DataTable(
                id="run-metric-table",
                columns=[{"name": "metric", "id": "name"}, {"name": "last value", "id": "value"}],
                data=[{"name": k, "value": v} for k, v in r.metrics.items()],
                style_cell={"fontFamily": "inherit", "fontSize": "13px", "textAlign": "left"},
                style_header={"fontWeight": "600"},
            )
        )
    for name in r.list_metrics:
        parts.append(
            dcc.Graph(
                id={"type": "run-graph", "metric": name},
                figure=figures.compare_figure(name, [r], events, x),
                config={"displaylogo": False},
                className="graph",
            )
        )
    return parts or [html.Div("This execution recorded no metrics.", className="note")]


def _resources(r: ex.ExecutionRecord, curves: list) -> list:
    reported = {c.field for c in curves}
    graphs = [
        dcc.Graph(
            id={"type": "run-resource-graph", "field": name},
            figure=figures.resource_compare_figure(name, [r], {r.execution_id: curves}),
            config={"displaylogo": False},
            className="graph",
        )
        for name in figures.RESOURCE_TITLES
        if name in reported
    ]
    return graphs or [
        html.Div(
            "No resources were recorded: its processes did not register with an agent.",
            className="note",
        )
    ]


@callback(
    Output("run-header", "children"),
    Output("run-io", "children"),
    Output("run-metrics", "children"),
    Output("run-resources", "children"),
    Output("run-tick", "disabled"),
    Input("run-key", "data"),
    Input("run-x", "value"),
)
def load(key, x):
    """Header and tabs of the execution in the URL."""
    execution_id, env = key["id"], key.get("env")
    try:
        with current().pool.store() as store:
            view = data.read_run_view(store, execution_id, env)
    except StoreError as e:
        components.report_store_error(e)
        return (no_update,) * 5
    if view is None:
        missing = html.Div(
            [
                html.H2(["Execution ", html.Code(execution_id, id="run-title")]),
                html.P(
                    "No execution of this id was recorded: no start, and no value, event or log"
                    " line carries it.",
                    className="note",
                    id="run-missing",
                ),
            ]
        )
        return missing, [], [], [], True
    r = view.record
    running = r.status == catalogue.RUNNING
    return (
        _header(r),
        _io_table(r),
        _metrics(r, view.events, x),
        _resources(r, view.curves),
        (not running),
    )


def _time_bound(text: str | None, default: int, name: str) -> int:
    if not text:
        return default
    try:
        return parse_time(text.strip().replace(" ", "T"))
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


@callback(
    Output("run-logs", "children"),
    Output("run-log-note", "children"),
    Input("run-key", "data"),
    Input("run-level", "value"),
    Input("run-q", "value"),
    Input("run-order", "value"),
    Input("run-from", "value"),
    Input("run-to", "value"),
    Input("run-tick", "n_intervals"),
)
def load_logs(key, level, search, order, since, until, _tick):
    """The execution's log lines that pass the filters (at most ``LOG_LIMIT``)."""
    try:
        start_ns = _time_bound(since, EARLIEST_NS, "From")
        end_ns = _time_bound(until, LATEST_NS, "To")
        if start_ns >= end_ns:
            raise ValueError("From is not before To")
    except ValueError as e:
        return [], f"The time window does not parse: {e}"
    try:
        with current().pool.store() as store:
            lines = log_reads.read_logs(
                store,
                start_ns,
                end_ns,
                execution_id=key["id"],
                environment=[key["env"]] if key.get("env") else None,
                level=level or None,
                search=search or None,
                limit=LOG_LIMIT,
                order=order if order in ORDERS else "newest",
            )
    except StoreError as e:
        components.report_store_error(e)
        return no_update, no_update
    if not lines:
        return [], "No log lines" + (" pass these filters." if (level or search) else ".")
    note = f"{len(lines)} line{'s' * (len(lines) != 1)}, {ORDERS.get(order, 'newest first')}"
    if len(lines) == LOG_LIMIT:
        note += f" (the first {LOG_LIMIT}: narrow with the level, the search or the window)"
    rows = [
        html.Tr(
            [
                html.Td(format_time(line.time_ns)[11:23], className="log-time"),
                html.Td(line.level, className=f"log-level level-{line.level}"),
                html.Td(line.logger, className="log-logger"),
                html.Td(
                    line.message + (f" … [{line.cut_bytes} bytes cut]" if line.cut_bytes else ""),
                    className="log-message",
                ),
            ]
        )
        for line in lines
    ]
    head = html.Tr([html.Th(h) for h in ("time (UTC)", "level", "logger", "message")])
    return html.Table([html.Thead(head), html.Tbody(rows)], id="run-log-table"), note


@callback(
    Output(components.LOCATION, "search", allow_duplicate=True),
    Input("run-tab", "value"),
    Input("run-level", "value"),
    Input("run-q", "value"),
    Input("run-order", "value"),
    Input("run-from", "value"),
    Input("run-to", "value"),
    components.SEARCH,
    prevent_initial_call=True,
)
def choices_to_url(tab, level, search, order, since, until, current_search):
    """The tab and the log filters into the URL."""
    old = _query(dict(parse_search(current_search)))
    chosen = {"env": old.get("env"), "tab": tab if tab != "io" else None, "level": level}
    chosen |= {"q": search, "order": order if order != "newest" else None}
    chosen |= {"from": since, "to": until}
    query = {k: v.strip() for k, v in chosen.items() if v and v.strip()}
    if query == old:
        return no_update
    return "?" + urlencode(query) if query else ""
