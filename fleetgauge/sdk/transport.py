"""The SDK's HTTP: where the agent listens, and one kept-alive connection to it.

``http.client`` is imported by the sender's thread on its first request, not by
``import fleetgauge``: a model process pays for it only once it records.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from fleetgauge import protocol

if TYPE_CHECKING:
    import http.client

__all__ = ["Target", "Connection", "AgentUnreachable", "parse_url", "hide_userinfo"]

_USERINFO = re.compile(r"//[^/]*@")


class AgentUnreachable(OSError):
    """No answer from the agent: refused, reset, timed out or not HTTP; worth a retry."""


def hide_userinfo(url: str) -> str:
    """``url`` as logs may show it: never with a ``user:password@``."""
    return _USERINFO.sub("//", url)


class Target(NamedTuple):
    """Where the agent listens: connection details and the URL as logs may show it."""

    https: bool
    host: str
    port: int
    prefix: str
    shown: str


def parse_url(url: str) -> Target:
    """The agent's address in a push URL; ValueError (without any password) when it is not one."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        shown = hide_userinfo(url)[:100]
        raise ValueError(
            f"push URL {shown!r}: use http://HOST:PORT (e.g. {protocol.DEFAULT_PUSH_URL})"
        )
    https = parts.scheme == "https"
    port = port or (443 if https else 80)
    prefix = parts.path.rstrip("/")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Target(https, parts.hostname, port, prefix, f"{parts.scheme}://{host}:{port}{prefix}")


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` of delay-seconds (the agent's form), capped at a minute; else None."""
    if retry_after is None or not retry_after.strip().isdigit():
        return None
    return min(60.0, float(retry_after.strip()))


class Connection:
    """One kept-alive HTTP connection to the agent, opened on the first request."""

    def __init__(self, target: Target, timeout: float) -> None:
        self.target, self._timeout = target, timeout
        self._conn: http.client.HTTPConnection | None = None
        self.takes_series = False  # the agent's last answer said it takes columnar bodies

    def post(
        self, path: str, body: bytes, headers: dict[str, str], meanwhile: Callable[[], None]
    ) -> tuple[int, bytes, float | None]:
        """POST; the status, the body and ``Retry-After`` in seconds (None when not sent).

        ``meanwhile`` is called (once) while the agent reads.

        A kept-alive connection the agent closed while idle is opened again once;
        any other failure raises :class:`AgentUnreachable` naming what happened.
        """
        import http.client

        for attempt in (0, 1):
            fresh = self._conn is None
            if self._conn is None:
                cls = (
                    http.client.HTTPSConnection if self.target.https else http.client.HTTPConnection
                )
                self._conn = cls(self.target.host, self.target.port, timeout=self._timeout)
            conn = self._conn
            try:
                conn.request("POST", self.target.prefix + path, body, headers)
                if not attempt:
                    meanwhile()
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if fresh or attempt:
                    raise AgentUnreachable(f"{type(e).__name__}: {e}") from None
                continue  # the agent closed the idle kept-alive connection: once more, anew
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise AgentUnreachable(f"{type(e).__name__}: {e}") from None
            except BaseException:
                self.close()
                raise
            if response.will_close:
                self.close()
            forms = response.getheader(protocol.PUSH_FORMS_HEADER) or ""
            self.takes_series = protocol.PUSH_SERIES in forms
            return response.status, data, _seconds(response.getheader("Retry-After"))
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (the next request opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def drop_after_fork(self) -> None:
        """In a forked child: close the socket inherited from the parent, keep nothing of it."""
        if self._conn is not None and self._conn.sock is not None:
            self._conn.sock.close()
        self._conn = None
