"""The dashboard on gunicorn: worker processes, each a thread pool, with slow clients fenced off.

``run(config, options)`` serves the site the way ``gunicorn`` would from its
command line (the master binds, forks ``workers`` processes, restarts one that
dies, stops gracefully on SIGTERM and at once on SIGINT), without a separate
command or configuration file. Each worker builds the site itself after the
fork, so no store connection crosses a fork.

gunicorn's threaded worker hands a connection to a thread as soon as it has
bytes to read, and the thread then blocks until the request has arrived: 500
connections that send half a request would hold every thread.
:class:`GatedWorker` reads what a connection has sent without blocking and
takes a thread only once the whole request is there (headers, and a body of at
most ``MAX_BODY`` bytes: Dash callback requests are a few KiB); until then the
connection waits in the worker's poller (a descriptor, no thread). Headers must
arrive within ``header_timeout`` and then the body within ``body_timeout``
(408), or the connection is closed, as it is when nothing more arrives for the
keep-alive time (5 s); a worker holds at most ``MAX_BUFFERED`` bytes of
requests still arriving (503 beyond).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers import gthread

from fleetgauge.dashboard.site import SiteConfig

__all__ = ["ServerOptions", "run", "GatedWorker", "MAX_BODY", "default_workers"]

MAX_BODY = 8 * 1024 * 1024
"""Largest request body the site takes (413 beyond): callback requests are a few KiB."""

MAX_BUFFERED = 64 * 1024 * 1024
"""Bytes a worker holds of requests still arriving; a request that would pass it gets 503."""

_HEADERS_END = b"\r\n\r\n"
_MAX_HEADER_BYTES = 64 * 1024  # more without the end of the headers: the parser refuses it
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*\r\n", re.I)
_buffered = [0]  # per worker process (each is a fork)
_buffered_lock = threading.Lock()


@dataclass(frozen=True)
class ServerOptions:
    """How the site is served; see ``fleetgauge dashboard --help``."""

    workers: int
    threads: int = 4
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    timeout: int = 120


MALLOC_ARENAS = 2
"""glibc malloc arenas per worker process (``MALLOC_ARENA_MAX`` in the environment wins)."""
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def bound_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before any worker or thread starts; whether it was done.

    glibc gives each thread that allocates an arena of its own, up to 8 per core, and
    each keeps the high-water mark of what its thread ever held: a worker's request
    threads and the store client's threads made 9 arenas per worker in the soak, and the
    site's RSS kept climbing for an hour as each thread in turn met a large answer. Two
    arenas hold the same work (a dashboard's threads mostly wait on the store) with one
    high-water mark to reach. The setting is global to the process and kept by the
    workers it forks. Not glibc (or ``MALLOC_ARENA_MAX`` set): left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl has no mallopt: it has no per-thread arenas
        return False


def default_workers() -> int:
    """One worker per core, at least 2 (a slow page never blocks the whole site), at most 8."""
    return max(2, min(8, os.cpu_count() or 1))


class GatedWorker(gthread.ThreadWorker):
    """gunicorn's threaded worker, taking a thread only for a request whose headers arrived.

    The timeouts are set on the class by :func:`run` before the workers are forked.
    """

    header_timeout = 10.0
    body_timeout = 30.0

    def handle(self, conn: Any) -> Any:
        if getattr(conn, "fg_deadline", None) is None:
            conn.fg_deadline = time.monotonic() + self.header_timeout
            conn.fg_head = bytearray()
            conn.fg_body = None
        if conn.initialized and conn.parser.unreader.buf.getvalue():
            return super().handle(conn)  # the next request was read ahead: it is here
        before = len(conn.fg_head)
        state = _read_available(conn.sock, conn.fg_head, self._wanted(conn))
        if not self._hold(len(conn.fg_head) - before):
            _answer(conn.sock, 503, "too many requests arriving at once: retry")
            return self._drop(conn)
        if state == "closed":
            return self._drop(conn)
        if conn.fg_body is None and (end := conn.fg_head.find(_HEADERS_END)) >= 0:
            conn.fg_body = end + len(_HEADERS_END) + _body_length(conn.fg_head[: end + 2])
            conn.fg_deadline = time.monotonic() + self.body_timeout
        if not self._arrived(conn):
            if time.monotonic() > conn.fg_deadline:
                if conn.fg_body is not None:
                    _answer(conn.sock, 408, "the request body did not arrive in time")
                return self._drop(conn)
            conn.data_ready = True  # gunicorn must not wait in a thread for more
            return gthread._DEFER  # back to the poller until more arrives
        request = bytes(conn.fg_head)
        self._release(conn)
        conn.init()  # the parser, on a blocking socket
        conn.parser.unreader.unread(request)
        conn.data_ready = True
        return super().handle(conn)

    def murder_pending(self) -> None:
        """Close requests that sent nothing for the keep-alive time (408 once a body was due)."""
        now = time.monotonic()
        for conn in self.pending_conns:
            if conn.timeout > now:
                break  # gunicorn keeps them in the order they time out
            if getattr(conn, "fg_body", None) is not None:
                _answer(conn.sock, 408, "the request body did not arrive in time")
            if getattr(conn, "fg_head", None):
                self._release(conn)
        super().murder_pending()

    def _wanted(self, conn: Any) -> int:
        """Bytes this request still lacks (as far as known)."""
        if conn.fg_body is None:
            return _MAX_HEADER_BYTES + 1 - len(conn.fg_head)
        return conn.fg_body - len(conn.fg_head)

    @staticmethod
    def _arrived(conn: Any) -> bool:
        if conn.fg_body is None:
            return len(conn.fg_head) > _MAX_HEADER_BYTES  # the parser refuses it: 431
        return len(conn.fg_head) >= conn.fg_body

    def _hold(self, added: int) -> bool:
        """Count bytes buffered for requests still arriving; False past the worker's bound."""
        with _buffered_lock:
            _buffered[0] += added
            return not added or _buffered[0] <= MAX_BUFFERED

    def _release(self, conn: Any) -> None:
        with _buffered_lock:
            _buffered[0] -= len(conn.fg_head)
        conn.fg_head, conn.fg_deadline, conn.fg_body = bytearray(), None, None

    def _drop(self, conn: Any) -> bool:
        self._release(conn)
        return False  # gunicorn closes the connection

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Read a request's body whole, within the body timeout, before the site sees it."""
        length = _content_length(req)
        if length is not None and length > MAX_BODY:
            _answer(conn.sock, 413, f"a body of at most {MAX_BODY} bytes is accepted")
            return False
        if req.body is not None and (length or _chunked(req)):
            data = _read_body(req, conn.sock, time.monotonic() + self.body_timeout)
            if data is None:
                _answer(conn.sock, 408, "the request body did not arrive in time")
                return False
            req.body = io.BytesIO(data)
        return super().handle_request(req, conn)


def _read_available(sock: socket.socket, into: bytearray, wanted: int) -> str:
    """Append up to ``wanted`` bytes the socket holds now; "closed" or "more"."""
    sock.setblocking(False)
    try:
        while wanted > 0:
            try:
                chunk = sock.recv(min(wanted, 65536))
            except (BlockingIOError, InterruptedError):
                return "more"
            except OSError:
                return "closed"
            if not chunk:
                return "closed"
            into += chunk
            wanted -= len(chunk)
        return "more"
    finally:
        sock.setblocking(True)


def _body_length(head: bytes) -> int:
    """The body's length as the headers declare it; 0 (the parser decides) when none or big."""
    match = _CONTENT_LENGTH.search(head)
    if match is None or b"chunked" in head.lower():
        return 0
    length = int(match.group(1))
    return length if length <= MAX_BODY else 0  # 413 from handle_request, unread


def _content_length(req: Any) -> int | None:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH" and value.strip().isdigit():
            return int(value)
    return None


def _chunked(req: Any) -> bool:
    return any(n == "TRANSFER-ENCODING" and "chunked" in v.lower() for n, v in req.headers)


def _read_body(req: Any, sock: socket.socket, deadline: float) -> bytes | None:
    """The whole body, or None when it does not arrive by ``deadline`` (or is too big)."""
    parts, size = [], 0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sock.settimeout(remaining)
            chunk = req.body.read(65536)
            if not chunk:
                return b"".join(parts)
            size += len(chunk)
            if size > MAX_BODY:
                return None
            parts.append(chunk)
    except (TimeoutError, OSError):
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)


def _answer(sock: socket.socket, status: int, message: str) -> None:
    body = (message + "\n").encode()
    phrase = {408: "Request Timeout", 413: "Content Too Large", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)
        sock.sendall(head + body)


class _Site(BaseApplication):
    """gunicorn's application: the options as its settings, the site built in each worker."""

    def __init__(self, config: SiteConfig, options: dict[str, Any]) -> None:
        self.site, self.options = config, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from fleetgauge.dashboard.app import create_app

        app = create_app(self.site)
        # Dash registers the scripts it may serve while it renders the index page, in the
        # process that renders it: render it once here, or a worker asked for a script
        # before it has drawn a page itself answers 500.
        with app.server.test_request_context("/"):
            app._setup_server()
            app.index()
        return app.server


def run(config: SiteConfig, options: ServerOptions) -> None:
    """Serve the site until SIGTERM (graceful) or SIGINT; prints the URL once it listens."""
    GatedWorker.header_timeout = options.header_timeout
    GatedWorker.body_timeout = options.body_timeout
    host = f"[{config.host}]" if ":" in config.host else config.host

    def when_ready(arbiter: Any) -> None:
        port = arbiter.LISTENERS[0].sock.getsockname()[1]
        print(f"fleetgauge dashboard on http://{host}:{port}/", flush=True)

    settings = {
        "bind": [f"{host}:{config.port}"],
        "workers": options.workers,
        "worker_class": f"{__name__}.GatedWorker",
        "threads": options.threads,
        "worker_connections": options.max_connections,
        "timeout": int(options.timeout),
        "graceful_timeout": 10,
        "keepalive": 5,
        "backlog": 1024,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "fleetgauge-dashboard",
        "control_socket_disable": True,
        "when_ready": when_ready,
    }
    bound_malloc_arenas()
    try:
        _Site(config, settings).run()
    except SystemExit as e:  # gunicorn exits on its own errors; say so in one line
        if e.code not in (0, None):
            raise OSError(errno.EIO, f"gunicorn stopped with status {e.code}") from None
        sys.exit(0)
