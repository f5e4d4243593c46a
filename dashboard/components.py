"""Shared controls of every page (environment, date range, refresh) and small pieces.

The controls are drawn from the view in the URL (``fleetgauge.dashboard.state``) and write
their changes back into it: the page is then drawn again from the new URL, so
the URL is the one place a view lives. Every page puts :func:`controls` at its
top and reads the window with :func:`window_of`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from urllib.parse import quote, urlencode

from dash import (
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    ctx,
    dcc,
    get_relative_path,
    html,
    no_update,
    set_props,
)

from fleetgauge.dashboard.state import (
    CUSTOM,
    QUICK_LABELS,
    REFRESH_LABELS,
    REFRESH_MS,
    ViewState,
    from_query,
    parse_search,
    to_search,
)
from fleetgauge.timeutil import NS_PER_S, format_time, parse_time

__all__ = [
    "LOCATION",
    "SEARCH",
    "controls",
    "download_link",
    "dropdown",
    "download_href",
    "execution_href",
    "page_ids",
    "register_page_controls",
    "view_of",
    "view_of_query",
    "search_of",
    "window_of",
    "zoomed_window",
    "zoom_search",
    "environment_options",
    "report_store_error",
    "clear_banner",
    "unknown_names",
    "set_environments",
    "show_banner",
]

LOCATION = "_pages_location"
"""The ``dcc.Location`` of Dash pages: writing its search navigates (history push)."""
SEARCH = State(LOCATION, "search")
ALL_ENVIRONMENTS = ""
log = logging.getLogger(__name__)


def view_of(search: str | None) -> ViewState:
    """The view a query string describes."""
    return from_query(parse_search(search))


def view_of_query(query: dict[str, object]) -> ViewState:
    """The view of the query parameters Dash passes to a page's layout function."""
    return from_query(query)


def search_of(state: ViewState) -> str:
    """The query string of a view, for writing into the URL."""
    return to_search(state)


def zoom_search(relayout: dict | None, search: str | None) -> str | None:
    """The URL of the view zoomed as ``relayout`` says (a custom range, whole seconds), or
    None when it is no zoom (an autosize, a reset, a legend click): the zoom is part of the
    view, so a reload or a shared link shows the same window and Back undoes it."""
    window = zoomed_window(relayout)
    if not isinstance(window, tuple):
        return None
    start_ns, end_ns = window
    start_ns -= start_ns % NS_PER_S
    end_ns += -end_ns % NS_PER_S
    state = view_of(search)
    new = state.with_(range=CUSTOM, start=format_time(start_ns), end=format_time(end_ns))
    return search_of(new)


def window_of(state: ViewState) -> tuple[int, int]:
    """The [start, end) of a view in ns, quick ranges ending now."""
    return state.window(time.time_ns())


def _input_time(time_ns: int) -> str:
    return format_time(time_ns - time_ns % NS_PER_S).replace("T", " ").rstrip("Z")


def environment_options(environments: Sequence[str], selected: str | None) -> list[dict]:
    """Options of the environment selector: all, then every one seen (and the selected one)."""
    options = [{"label": "all environments", "value": ALL_ENVIRONMENTS}]
    names = {*environments, selected} - {None}
    return options + [{"label": e, "value": e} for e in sorted(names)]  # type: ignore[type-var]


def zoomed_window(relayout: dict | None) -> tuple[int, int] | str | None:
    """The x window of a plotly zoom in ns, "reset" for a reset, None for anything else."""
    if not relayout:
        return None
    if relayout.get("xaxis.autorange") or relayout.get("autosize"):
        return "reset" if relayout.get("xaxis.autorange") else None
    lo, hi = relayout.get("xaxis.range[0]"), relayout.get("xaxis.range[1]")
    if lo is None and isinstance(relayout.get("xaxis.range"), list):
        lo, hi = relayout["xaxis.range"]
    if lo is None or hi is None:
        return None
    try:
        start_ns, end_ns = _plotly_time(lo), _plotly_time(hi)
    except ValueError:
        return None
    return (start_ns, end_ns) if start_ns < end_ns else None


def _plotly_time(value: object) -> int:
    """A time as plotly reports an axis range: ms since the epoch or UTC date text."""
    if isinstance(value, int | float):
        return int(value * 1_000_000)
    return parse_time(str(value))


def report_store_error(error: Exception) -> None:
    """Show a store error in the banner; the page keeps its controls and stays usable."""
    log.warning("store read failed: %s", error)
    set_props(
        "banner",
        show_banner(
            [f"The store could not be read: {error}. Showing nothing for now; Refresh tries again."]
        ),
    )


def set_environments(environments: Sequence[str], selected: str | None) -> None:
    """Fill the environment selector with the environments the store holds in the range."""
    set_props("env", {"options": environment_options(environments, selected)})


def clear_banner(state: ViewState, *unknown: Sequence[str]) -> None:
    """Hide the banner after a good read, leaving the URL's own problems shown and the
    ``unknown`` lines (from :func:`unknown_names`) that say which names have no data."""
    set_props("banner", show_banner([*state.problems, *(m for lines in unknown for m in lines)]))


def unknown_names(what: str, chosen: Sequence[str], known: Sequence[str]) -> list[str]:
    """A banner line for the names of the URL (``what``: "environment", "worker", ...) that
    the store has no data of in the range: a typo in a shared link says so, not just
    "no data"."""
    chosen = [c for c in chosen if c]
    if not chosen:
        return []
    present = set(known)
    missing = [c for c in chosen if c not in present]
    if not missing:
        return []
    names = ", ".join(repr(m) for m in missing[:5])
    if len(missing) > 5:
        names += f" and {len(missing) - 5:,} more"
    plural = "s" if len(missing) > 1 else ""
    return [
        f"No data from the {what}{plural} {names} in this range: check the name{plural} in"
        " the link, or pick another range."
    ]


def page_ids(page: str) -> tuple[str, str, str]:
    """Ids of a page's own chart-width store, refresh button and auto-refresh timer.

    They differ per page so one page's data callback never fires on another page.
    """
    return f"{page}-width", f"{page}-refresh", f"{page}-tick"


def register_page_controls(page: str) -> None:
    """The clientside callback that tells a page how wide its charts are."""
    width, _, _ = page_ids(page)
    clientside_callback(
        "function(_) { return Math.max(300, window.innerWidth - 120); }",
        Output(width, "data"),
        Input(width, "id"),
    )


def _time_input(id_: str, time_ns: int) -> dcc.Input:
    return dcc.Input(
        id=id_,
        value=_input_time(time_ns),
        placeholder="YYYY-MM-DD HH:MM",
        debounce=True,
        style={"width": "175px"},
    )


def execution_href(execution_id: str) -> str:
    """The link of one execution's page (``/executions/<id>``), under the site's prefix."""
    return get_relative_path("/executions/" + quote(execution_id, safe=""))


def download_link(page: str, label: str = "Download CSV", suffix: str = "") -> html.A:
    """The page's "Download CSV" link; its href is set with the page's data."""
    return html.A(label, id=f"{page}-download{suffix}", href="", className="button", download="")


def download_href(
    kind: str,
    state: ViewState,
    start_ns: int,
    end_ns: int,
    file_type: str = "csv",
    **filters: Sequence[str],
) -> str:
    """The link of a page's CSV download (``file_type`` "zip": one CSV per measurement):
    the window, the environment and ``filters`` (query parameter -> values, as
    ``fleetgauge.dashboard.download.FILTERS`` names them)."""
    params = [("start", format_time(start_ns)), ("end", format_time(end_ns))]
    if state.env:
        params.append(("environment", state.env))
    params += [(key, value) for key, values in filters.items() for value in values]
    # under the reverse proxy's path prefix, as the pages' own links are
    return get_relative_path(f"/download/{kind}.{file_type}") + "?" + urlencode(params)


def controls(state: ViewState, page: str) -> html.Div:
    """The shared control bar: environment, quick ranges, custom range, refresh."""
    width_id, refresh_id, tick_id = page_ids(page)
    start_ns, end_ns = window_of(state)
    env_options = environment_options((), state.env)
    ranges = [{"label": label, "value": key} for key, label in QUICK_LABELS.items()]
    ranges.append({"label": "custom", "value": CUSTOM})
    return html.Div(
        className="controls",
        children=[
            html.Label(
                [
                    "Environment",
                    dcc.Dropdown(
                        id="env",
                        options=env_options,
                        value=state.env or ALL_ENVIRONMENTS,
                        clearable=False,
                        searchable=True,
                    ),
                ],
                className="control env",
            ),
            html.Div(
                [
                    html.Span("Range (UTC)", className="control-title"),
                    dcc.RadioItems(id="range", options=ranges, value=state.range, inline=True),
                ],
                className="control range",
            ),
            html.Div(
                [
                    html.Span("Custom, UTC", className="control-title"),
                    _time_input("start", start_ns),
                    html.Span("to"),
                    _time_input("end", end_ns),
                    html.Button("Apply", id="apply-range", n_clicks=0),
                ],
                className="control custom",
            ),
            html.Div(
                [
                    html.Button("Refresh", id=refresh_id, n_clicks=0),
                    html.Span("auto", className="control-title"),
                    dcc.RadioItems(
                        id="auto-refresh",
                        options=[{"label": REFRESH_LABELS[k], "value": k} for k in REFRESH_MS],
                        value=state.refresh,
                        inline=True,
                    ),
                    dcc.Interval(
                        id=tick_id,
                        interval=REFRESH_MS[state.refresh] or 60_000,
                        disabled=REFRESH_MS[state.refresh] is None,
                    ),
                ],
                className="control refresh",
            ),
            html.Div(
                banner_children(list(state.problems)),
                id="banner",
                role="alert",
                className="banner" if state.problems else "banner hidden",
            ),
            dcc.Store(id=width_id),
        ],
    )


def dropdown(
    id_: str, label: str, options: list[dict], value: object, multi: bool, placeholder: str
) -> html.Label:
    """A labelled dropdown of a page's own controls (class ``control ID``)."""
    return html.Label(
        [
            label,
            dcc.Dropdown(
                id=id_, options=options, value=value, multi=multi, placeholder=placeholder
            ),
        ],
        className=f"control {id_}",
    )


MAX_OPTIONS = 300
"""Options a dropdown is sent at most; the rest are found by typing (server-side search)."""


def capped_options(values: Sequence[str], selected: Sequence[str], search: str = "") -> list[dict]:
    """Dropdown options: the selected values, then up to MAX_OPTIONS of ``values`` (sorted)
    that contain ``search`` (case-insensitive), and a disabled line saying how many more
    there are. A store with hundreds of thousands of names sends a page a few hundred."""
    needle = search.strip().lower()
    matching = sorted(v for v in values if needle in v.lower()) if needle else sorted(values)
    chosen = [v for v in selected if v]
    shown = chosen + [v for v in matching[: MAX_OPTIONS + len(chosen)] if v not in chosen]
    shown = shown[: max(MAX_OPTIONS, len(chosen))]
    options = [{"label": v, "value": v} for v in shown]
    more = len(set(matching) - set(shown))
    if more:
        hint = f"{more:,} more: type part of a name to find it"
        options.append({"label": hint, "value": "\0more", "disabled": True})
    return options


def banner_children(messages: Sequence[str]) -> list:
    """The banner's text: one line per problem."""
    return [html.Div(m) for m in messages]


def show_banner(messages: Sequence[str]) -> dict:
    """Properties that show the banner with ``messages`` (empty: hide it)."""
    return {
        "children": banner_children(messages),
        "className": "banner" if messages else "banner hidden",
    }


@callback(
    Output(LOCATION, "search", allow_duplicate=True),
    Output("banner", "children", allow_duplicate=True),
    Output("banner", "className", allow_duplicate=True),
    Input("env", "value"),
    Input("range", "value"),
    Input("apply-range", "n_clicks"),
    Input("start", "n_submit"),
    Input("end", "n_submit"),
    Input("auto-refresh", "value"),
    State("start", "value"),
    State("end", "value"),
    SEARCH,
    prevent_initial_call=True,
)
def shared_controls_to_url(env, rng, _apply, _s1, _s2, refresh, start, end, search):
    """Write the shared controls into the URL; a bad custom range is named in the banner."""
    state = view_of(search)
    changes: dict[str, object] = {"env": env or None, "refresh": refresh or "off"}
    custom = rng == CUSTOM or ctx.triggered_id in ("apply-range", "start", "end")
    if custom:
        try:
            start_ns, end_ns = parse_time(start or ""), parse_time(end or "")
        except ValueError as e:
            return no_update, banner_children([f"Custom range: {e}"]), "banner"
        if start_ns >= end_ns:
            message = f"Custom range: start {start} is not before end {end}"
            return no_update, banner_children([message]), "banner"
        changes.update(range=CUSTOM, start=format_time(start_ns), end=format_time(end_ns))
    else:
        changes.update(range=rng, start=None, end=None)
    new = to_search(state.with_(**changes))
    if new == (search or ""):
        return no_update, no_update, no_update
    return new, no_update, no_update


SORT_KEY = ":sort"
"""Suffix of a table row's hidden key holding the value its shown text sorts by (the
seconds of a duration shown as "45 min")."""


def sorted_rows(rows: list[dict], sort_by: list[dict] | None) -> list[dict]:
    """Rows in the order of the table's sort, by the value rather than the text shown (a
    duration's seconds): numbers, then text, then empty cells, whichever the direction."""
    if not sort_by:
        return rows
    column, descending = sort_by[0]["column_id"], sort_by[0]["direction"] == "desc"

    def value(row: dict) -> object:
        return row.get(column + SORT_KEY, row.get(column))

    numbers = [r for r in rows if isinstance(value(r), (int, float))]
    texts = [r for r in rows if value(r) is not None and not isinstance(value(r), (int, float))]
    numbers.sort(key=value, reverse=descending)  # type: ignore[arg-type]
    texts.sort(key=lambda r: str(value(r)), reverse=descending)
    return numbers + texts + [r for r in rows if value(r) is None]
