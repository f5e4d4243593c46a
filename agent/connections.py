"""Bounds on the agent's listeners: how long a request may take to arrive, and how many at once.

Each listener (push, ``/metrics``) keeps a :class:`ConnectionWatch` of its open
connections, each in one phase:

- *waiting* for a request's line and headers: ``header_timeout`` for a
  connection's first request, ``IDLE_TIMEOUT`` between requests on a kept-alive
  one. Such a connection has sent nothing worth keeping, so when the listener
  is at ``max_connections`` the one waiting longest is closed to admit a new
  one: half-sent requests cannot lock out a model's push or Prometheus' scrape.
- *body*: reading a body, which must arrive whole within ``body_timeout``.
- *busy*: answering (no deadline here; the store's own timeouts bound it).

A thread per listener closes each connection past its deadline (a socket
``shutdown``: the handler's blocked read returns and the handler ends). A new
connection while every slot reads a body or answers is closed at once. A body
over :data:`SMALL_BODY` counts against ``max_reading_bytes`` until its request
is answered; one that would not fit is refused before it is read, so slow
bodies cannot fill memory. Closings and refusals are counted
(``fleetgauge_agent_requests_refused_total{reason="timeout"|"connections"|"body_bytes"}``).
"""

from __future__ import annotations

import contextlib
import math
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from socketserver import BaseServer
from typing import Any

__all__ = [
    "Limits",
    "DEFAULT_LIMITS",
    "ConnectionWatch",
    "WatchedServer",
    "WatchedHandler",
    "TooMuchReading",
    "SMALL_BODY",
    "IDLE_TIMEOUT",
    "raise_descriptor_limit",
    "default_max_connections",
]

SMALL_BODY = 256 * 1024
"""Bodies up to this size are read without counting against ``max_reading_bytes``."""

IDLE_TIMEOUT = 120.0
"""Seconds a kept-alive connection may wait for its next request."""

SERVE_POLL_S = 10.0
"""A listener's accept loop wakes this often (stopping it wakes it at once)."""
_RESERVED_DESCRIPTORS = 64  # the store, the spool, /proc files, logs


@dataclass(frozen=True)
class Limits:
    """One listener's bounds; see the module's description."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 256
    max_reading_bytes: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()


class TooMuchReading(Exception):
    """A body would take the bytes being read at once past ``max_reading_bytes``."""


_WAITING, _BODY, _BUSY = range(3)


class _Conn:
    __slots__ = ("phase", "since", "deadline", "counted")

    def __init__(self, phase: int, since: float, deadline: float, counted: bool) -> None:
        self.phase, self.since, self.deadline, self.counted = phase, since, deadline, counted


class ConnectionWatch:
    """The open connections of one listener, their phases and deadlines.

    ``on_refusal(listener, reason)`` counts each connection closed or refused.
    """

    def __init__(
        self,
        name: str,
        limits: Limits,
        on_refusal: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.limits = name, limits
        self._on_refusal = on_refusal or (lambda listener, reason: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}
        self._reading = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._next_check = math.inf  # when the closing thread wakes next (under the lock)
        self._thread = threading.Thread(target=self._run, name=f"{name}-watch", daemon=True)

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._conns)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # --- phases ---------------------------------------------------------------------
    def admit(self, sock: socket.socket) -> bool:
        """Take a new connection, closing the longest-waiting one when full; False: refuse it."""
        now = self._clock()
        victim = None
        with self._lock:
            if len(self._conns) >= self.limits.max_connections:
                waiting = [(c.since, s) for s, c in self._conns.items() if c.phase == _WAITING]
                if not waiting:
                    victim = sock
                else:
                    victim = min(waiting, key=lambda w: w[0])[1]
                    del self._conns[victim]
            if victim is not sock:
                deadline = now + self.limits.header_timeout
                self._conns[sock] = _Conn(_WAITING, now, deadline, True)
                self._sooner(deadline)
        if victim is not None:
            self._on_refusal(self.name, "connections")
            if victim is not sock:
                _shut(victim)
        return victim is not sock

    def waiting(self, sock: socket.socket, first: bool) -> None:
        """The connection waits for a request (its first, or the next on a kept-alive one)."""
        now = self._clock()
        self._set(sock, _WAITING, now + (self.limits.header_timeout if first else IDLE_TIMEOUT))
        if not first and (conn := self._conns.get(sock)) is not None:
            conn.since, conn.counted = now, False  # an idle keep-alive closing is no refusal

    def body(self, sock: socket.socket) -> None:
        """The connection's body is being read."""
        self._set(sock, _BODY, self._clock() + self.limits.body_timeout)

    def busy(self, sock: socket.socket) -> bool:
        """The request has arrived whole and is being answered; False when the watch closed
        the connection meanwhile (its headers ended only because the socket was shut)."""
        with self._lock:
            if sock not in self._conns:
                return False
        self._set(sock, _BUSY, float("inf"))
        return True

    def forget(self, sock: socket.socket) -> None:
        """The connection is closed."""
        with self._lock:
            self._conns.pop(sock, None)

    def _set(self, sock: socket.socket, phase: int, deadline: float) -> None:
        with self._lock:
            conn = self._conns.get(sock)
            if conn is not None:
                conn.phase, conn.deadline, conn.counted = phase, deadline, True
                self._sooner(deadline)

    def _sooner(self, deadline: float) -> None:
        """Wake the closing thread when ``deadline`` comes before its next check (the lock
        held): it sleeps until the earliest deadline, not on a tick."""
        if deadline < self._next_check:
            self._next_check = deadline
            self._wake.set()

    @contextlib.contextmanager
    def reading(self, length: int) -> Iterator[None]:
        """Count a body of ``length`` bytes until the block ends; TooMuchReading if it cannot."""
        counted = length > SMALL_BODY
        if counted:
            with self._lock:
                if self._reading + length > self.limits.max_reading_bytes:
                    refused = True
                else:
                    refused = False
                    self._reading += length
            if refused:
                self._on_refusal(self.name, "body_bytes")
                raise TooMuchReading(
                    f"{self._reading} bytes of bodies are being read (limit"
                    f" {self.limits.max_reading_bytes}, push_max_reading_bytes)"
                )
        try:
            yield
        finally:
            if counted:
                with self._lock:
                    self._reading -= length

    # --- the closing thread -----------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            # asleep until the earliest deadline (while no connection is open, or all are
            # being answered, until woken): a deadline set sooner wakes it (_sooner)
            with self._lock:
                self._wake.clear()
                first = min((c.deadline for c in self._conns.values()), default=math.inf)
                self._next_check = first
            timeout = None if first == math.inf else max(0.05, first - self._clock())
            self._wake.wait(timeout)
            now = self._clock()
            with self._lock:
                late = [(s, c) for s, c in self._conns.items() if c.deadline < now]
                for s, _ in late:
                    del self._conns[s]
            for s, c in late:
                if c.counted:
                    self._on_refusal(self.name, "timeout")
                _shut(s)


def _shut(sock: socket.socket) -> None:
    """Make the handler's blocked read return; the handler thread closes the socket."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class WatchedServer(BaseServer):
    """Mixin for a threading server: admits connections through ``watch`` (put it first)."""

    request_queue_size = 1024  # a burst of connections waits in the kernel, not refused
    watch: ConnectionWatch

    def serve_forever(self, poll_interval: float = SERVE_POLL_S) -> None:
        """Accept connections, waking every ``poll_interval`` seconds, not the library's 0.5
        (an idle listener's wake-ups are CPU the agent spends for nothing): :meth:`shutdown`
        wakes the wait itself."""
        super().serve_forever(poll_interval)

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` at once: ask it to stop, and connect to the listening
        socket until it has, so its wait ends now rather than at its next wake-up."""
        asking = threading.Thread(target=super().shutdown, name="listener-shutdown", daemon=True)
        asking.start()
        address = self.server_address[:2]  # type: ignore[attr-defined]
        while asking.is_alive():
            with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
                pass
            asking.join(0.05)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.watch.admit(request):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)  # type: ignore[misc]

    def shutdown_request(self, request: Any) -> None:
        self.watch.forget(request)
        super().shutdown_request(request)


class WatchedHandler(BaseHTTPRequestHandler):
    """Mixin for a handler of a :class:`WatchedServer`: tells the watch each phase."""

    server: WatchedServer  # type: ignore[assignment]
    timeout = IDLE_TIMEOUT  # a single read or write that long ends the connection anyway
    _first = True

    def handle_one_request(self) -> None:
        self.server.watch.waiting(self.connection, self._first)
        self._first = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if not self.server.watch.busy(self.connection):  # shut by the watch: nobody to answer
            self.close_connection = True
            return False
        return ok


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


def default_max_connections(descriptors: int, listeners: int = 2) -> int:
    """Connections per listener that the open-file limit leaves room for (at most 256)."""
    return max(4, min(256, (descriptors - _RESERVED_DESCRIPTORS) // (listeners + 1)))
