"""The Dash site: shell layout, pages, download route and auth, wired from a SiteConfig.

``create_app(config)`` builds the app; ``serve(config, options)`` runs it on
gunicorn (or, for ``--debug``, werkzeug's development server) until SIGINT or
SIGTERM. Pages live in ``dashboard/pages`` (one
module each, with its layout and callbacks); data access is in
``fleetgauge.dashboard.data.resources`` and figure building in ``fleetgauge.dashboard.figures``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
from pathlib import Path

import dash
from dash import Dash, Input, Output, callback, dcc, html, set_props
from werkzeug.serving import make_server

from fleetgauge.dashboard import answers, auth, download
from fleetgauge.dashboard.components import LOCATION, show_banner
from fleetgauge.dashboard.logins import LOGINS_ENV
from fleetgauge.dashboard.server import ServerOptions
from fleetgauge.dashboard.site import SiteConfig, configure
from fleetgauge.dashboard.state import from_query, parse_search, to_search
from fleetgauge.net import HostPolicy

__all__ = ["create_app", "serve", "SHARED_KEYS"]

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
SHARED_KEYS = ("env", "range", "start", "end", "refresh")
"""Query keys a link to another page keeps: the shared controls, not the page's own."""


def _on_error(error: Exception) -> None:
    """Any failure in a callback: a readable banner in the page, the traceback in the log."""
    log.error("callback failed", exc_info=error)
    set_props(
        "banner",
        show_banner(
            [
                f"This view could not be drawn ({type(error).__name__}: {error}). The page stays"
                " usable: change the selection or press Refresh."
            ]
        ),
    )


def _nav_id(module: str) -> str:
    return "nav-" + module.rsplit(".", 1)[-1]


def _shell() -> html.Div:
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order") or 0)
    pages = [p for p in pages if p.get("nav", True)]  # not one execution's page
    return html.Div(
        [
            html.Header(
                [
                    html.Span("fleetgauge", className="brand"),
                    html.Nav(
                        [
                            dcc.Link(p["name"], href=p["relative_path"], id=_nav_id(p["module"]))
                            for p in pages
                        ]
                    ),
                ]
            ),
            html.Main(dash.page_container),
        ]
    )


def create_app(config: SiteConfig) -> Dash:
    """The site for ``config``: one per process (Dash keeps page callbacks globally)."""
    configure(config)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        title="fleetgauge",
        update_title=None,
        suppress_callback_exceptions=True,
        on_error=_on_error,
    )
    app.layout = _shell
    _register_nav([p["module"] for p in dash.page_registry.values() if p.get("nav", True)])
    download.install(app.server)
    answers.install(app.server)
    hosts = f"--allowed-hosts or {auth.ALLOWED_HOSTS_ENV}"
    auth.require_allowed_hosts(app.server, HostPolicy(config.host, config.allowed_hosts, hosts))
    if config.users:
        auth.require_basic_auth(app.server, config.users)
    return app


def _register_nav(modules: list[str]) -> None:
    """Keep the shared controls when moving between pages (not the page's own choices)."""

    @callback(
        [Output(_nav_id(m), "href") for m in modules],
        Input(LOCATION, "search"),
    )
    def nav_links(search: str | None) -> list[str]:
        shared = {k: v for k, v in parse_search(search).items() if k in SHARED_KEYS}
        query = to_search(from_query(shared))
        return [dash.page_registry[m]["relative_path"] + query for m in modules]


def _check_port(host: str, port: int) -> None:
    """ValueError naming the setting when the address cannot be listened on (in use, bad).

    Checked before the server is made: werkzeug would print its own lines and exit 1.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as e:
        raise ValueError(
            f"--port {port} on {host} (FLEETGAUGE_DASHBOARD_PORT, --host): cannot listen there:"
            f" {e.strerror or e}"
        ) from None


def serve(config: SiteConfig, options: ServerOptions | None = None) -> None:
    """Serve the site until SIGTERM or SIGINT; prints the URL when it listens.

    With ``options`` on gunicorn (:mod:`~fleetgauge.dashboard.server`); without,
    on werkzeug's development server (``--debug``: one process, reloadable, not
    for deployment).
    """
    _check_port(config.host, config.port)
    # failed logins counted once for every worker process (forked from here)
    directory = tempfile.mkdtemp(prefix="fleetgauge-dashboard-")
    os.environ.setdefault(LOGINS_ENV, os.path.join(directory, "logins.db"))
    if options is not None:
        from fleetgauge.dashboard.server import run

        run(config, options)
        return
    app = create_app(config)
    server = make_server(config.host, config.port, app.server, threaded=True)
    host = f"[{config.host}]" if ":" in config.host else config.host
    print(
        f"fleetgauge dashboard on http://{host}:{server.server_port}/ (--debug: werkzeug's"
        " development server, not for deployment)",
        flush=True,
    )
    stop = threading.Event()

    def shutdown(signum: int, frame: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.serve_forever()
    finally:
        server.server_close()
