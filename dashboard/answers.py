"""What the site answers to requests it cannot serve, instead of a 500 and a traceback.

- A Dash callback request (``/_dash-update-component``) that is not the JSON
  object dash-renderer sends, or names a callback the site does not have: 400
  with the reason, one log line.
- A script or style Dash does not have (``/_dash-component-suites/../../etc/passwd``,
  an unknown package or file): 404.
"""

from __future__ import annotations

import logging

import flask
from dash.exceptions import DependencyException

__all__ = ["install"]

log = logging.getLogger(__name__)

_CALLBACK_PATH = "_dash-update-component"
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _is_callback() -> bool:
    return flask.request.path.rstrip("/").endswith(_CALLBACK_PATH)


def _bad_request(reason: str) -> flask.Response:
    log.info("refused a malformed callback request from %s: %s", flask.request.remote_addr, reason)
    return flask.Response(
        flask.json.dumps({"error": f"malformed callback request: {reason}"}),
        status=400,
        mimetype="application/json",
    )


def install(server: flask.Flask) -> None:
    """Register the answers on ``server``."""

    @server.before_request
    def check_callback_body() -> flask.Response | None:
        if flask.request.method != "POST" or not _is_callback():
            return None
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return _bad_request("the body is not a JSON object")
        if not isinstance(body.get("output"), str):
            return _bad_request("'output' must be the callback's output id (text)")
        for key in ("inputs", "state"):
            if not isinstance(body.get(key, []), list):
                return _bad_request(f"{key!r} must be a list")
        return None

    @server.errorhandler(DependencyException)
    def no_such_file(error: DependencyException) -> tuple[str, int, dict[str, str]]:
        return "no such file\n", 404, {"Content-Type": "text/plain; charset=utf-8"}

    def malformed(error: Exception) -> flask.Response | tuple[str, int]:
        if _is_callback():
            return _bad_request(f"{type(error).__name__}: {str(error)[:200]}")
        log.error("request %s failed", flask.request.path[:200], exc_info=error)
        return "internal error\n", 500

    for kind in _MALFORMED:
        server.register_error_handler(kind, malformed)
