"""The push endpoint: models and pipelines POST the values they record to the local agent.

``POST /v1/metrics`` with ``{"metrics": [item, ...]}``, ``POST /v1/events``
with ``{"events": [item, ...]}`` and ``POST /v1/executions`` with
``{"executions": [item, ...]}`` (the wire format is :mod:`fleetgauge.protocol`;
``POST /v1/processes`` registers the processes behind them, see
:mod:`~fleetgauge.agent.collectors.process`;
:mod:`~fleetgauge.agent.push.parser` checks it). Accepted items become points in
the agent's delivery buffer, the same batched path (spooled while the store is
down) as the resource samples, and the answer is ``202 {"accepted": N}`` (for
executions also ``"execution_ids"``, in item order: an execution started without
an id gets one made up).

A client that did not get an answer sends the same batch again; when it names
the batch with an ``Idempotency-Key`` header (the SDK does), a batch seen lately
(:class:`~fleetgauge.agent.push.keys.RecentKeys`) is answered 202 again but
stored once.

Before anything else a request's ``Host`` and ``Origin`` must be names the agent
answers to (403 otherwise), and off loopback it needs ``Authorization: Bearer
TOKEN`` (:class:`~fleetgauge.agent.listener.ListenerGuard`). The body must be
``application/json`` (415 otherwise, so a page cannot post a form or a
``no-cors`` blob), with a plain decimal ``Content-Length`` of at most
``max_body`` bytes (413 beyond, before reading it). Any method but POST gets 405
with ``Allow: POST``. A few requests are parsed at a time and a request waits
briefly while the delivery buffer is full, so a flood slows clients down
instead of filling memory. An ``Idempotency-Key`` is remembered per endpoint.

A 202 is given only while the delivery can keep what it accepts: when the store
is failing and the spool cannot take more (disk full, unwritable, at its limit),
the answer is 503 with ``Retry-After`` and the reason
(:meth:`~fleetgauge.agent.delivery.Delivery.backpressure`), nothing is counted
as accepted, and the client keeps its values for a later try.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import orjson

from fleetgauge import protocol
from fleetgauge.agent.connections import (
    DEFAULT_LIMITS,
    ConnectionWatch,
    Limits,
    TooMuchReading,
    WatchedHandler,
    WatchedServer,
)
from fleetgauge.agent.delivery import Delivery
from fleetgauge.agent.exposition import PipelineSeries
from fleetgauge.agent.health import Health
from fleetgauge.agent.listener import ListenerGuard
from fleetgauge.agent.push.keys import RecentKeys
from fleetgauge.agent.push.parser import PushError, PushParser
from fleetgauge.agent.push.series import SeriesLimit

if TYPE_CHECKING:  # (the registry's module imports this package's parser)
    from fleetgauge.agent.collectors.process import ProcessRegistry

__all__ = ["PushServer"]

log = logging.getLogger("fleetgauge.agent.push")

_ROOM_WAIT_S = 2.0
_PARALLEL_REQUESTS = 8
_MAX_KEY_LENGTH = 128
_DECIMAL = re.compile(r"[0-9]{1,12}")


class _Server(WatchedServer, ThreadingHTTPServer):
    daemon_threads = True
    endpoint: PushServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is routine: one debug line, not a traceback."""
        log.debug("push connection from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(WatchedHandler):
    protocol_version = "HTTP/1.1"
    server: _Server  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        # answers are small: without this, Nagle's algorithm and the client's delayed ACK
        # hold each one back for tens of milliseconds on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.server.endpoint.handle(self)

    def refuse(self) -> None:
        self.server.endpoint.refuse_method(self)

    def __getattr__(self, name: str) -> Any:
        """Every method but POST (GET, HEAD, OPTIONS, any token) is answered 405, not 501."""
        if name.startswith("do_"):
            return self.refuse
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:  # counted, not logged per request
        pass


class PushServer:
    """Serves the push endpoint on a background thread; accepted points go to ``delivery``."""

    def __init__(
        self,
        host: str,
        port: int,
        parser: PushParser,
        delivery: Delivery,
        health: Health,
        series: PipelineSeries | None = None,
        token: str | None = None,
        processes: ProcessRegistry | None = None,
        series_limit: SeriesLimit | None = None,
        max_body: int = protocol.DEFAULT_MAX_BODY,
        clock: Callable[[], int] = time.time_ns,
        allowed_hosts: tuple[str, ...] = (),
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._guard = ListenerGuard("push", host, token, allowed_hosts, health.refused)
        self._watch = ConnectionWatch("push", limits, health.refused)
        self.parser, self.delivery, self.health, self.series = parser, delivery, health, series
        self.series_limit, self.processes = series_limit, processes
        self.max_body = max_body
        self._clock = clock
        self._parsing = threading.BoundedSemaphore(_PARALLEL_REQUESTS)
        self._closing = False
        self._seen = RecentKeys()
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self._httpd.endpoint = self
        self._httpd.watch = self._watch
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="push-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self._httpd.server_address[1]

    def start(self) -> None:
        """Start answering."""
        self._watch.start()
        self._thread.start()

    def close(self) -> None:
        """Release the port of a server that was never started."""
        self._httpd.server_close()

    def stop(self) -> None:
        """Stop answering, wait for requests being accepted, release the port.

        A request that arrives while stopping is answered 503 (the client keeps
        its values and retries), so nothing answered 202 misses the last flush.
        """
        self._closing = True
        self._httpd.shutdown()
        for _ in range(_PARALLEL_REQUESTS):
            self._parsing.acquire()
        self._watch.stop()
        self._httpd.server_close()

    # --- one request ----------------------------------------------------------
    def handle(self, request: _Handler) -> None:
        """Answer one POST: check, parse, hand the points to delivery."""
        path = request.path.split("?", 1)[0]
        try:
            self._check_origin(request)
            if path == protocol.PUSH_METRICS_PATH:
                parse = self.parser.metrics
            elif path == protocol.PUSH_EVENTS_PATH:
                parse = self.parser.events
            elif path == protocol.PUSH_EXECUTIONS_PATH:
                parse = self.parser.executions
            elif path == protocol.PUSH_LOGS_PATH:
                parse = self.parser.logs
            elif path == protocol.PUSH_PROCESSES_PATH and self.processes is not None:
                parse = self._register
            else:
                paths = (
                    protocol.PUSH_METRICS_PATH,
                    protocol.PUSH_EVENTS_PATH,
                    protocol.PUSH_EXECUTIONS_PATH,
                    protocol.PUSH_LOGS_PATH,
                )
                raise PushError(
                    404,
                    f"no endpoint at {path[:100]!r}: POST {', '.join(paths)}"
                    f" or {protocol.PUSH_PROCESSES_PATH}",
                )
            with contextlib.ExitStack() as reading:  # the body counts until it is answered
                body = self._read(request, reading)
                key = request.headers.get(protocol.PUSH_IDEMPOTENCY_HEADER)
                if key is not None and not 0 < len(key) <= _MAX_KEY_LENGTH:
                    raise PushError(
                        400, f"{protocol.PUSH_IDEMPOTENCY_HEADER} must be 1 to 128 characters"
                    )
                with self._parsing:
                    answer = self._accept(parse, body, None if key is None else f"{path} {key}")
        except PushError as e:
            headers = None
            if e.retry_after is not None:
                headers = [("Retry-After", str(math.ceil(e.retry_after)))]
            return self._answer(request, e.status, e.body(), headers)
        self._answer(request, 202, answer)

    def _check_origin(self, request: _Handler) -> None:
        """403 for a Host or Origin this agent does not answer to (DNS rebinding, other sites)."""
        reason = self._guard.refusal(request.headers.get("Host"), request.headers.get("Origin"))
        if reason is not None:
            request.close_connection = True
            raise PushError(403, reason)

    def _read(self, request: _Handler, reading: contextlib.ExitStack) -> bytes:
        """The body, once the headers say it may be read; the connection closes on a refusal."""
        keep_alive = not request.close_connection
        request.close_connection = True  # until the body is read whole
        if not self._guard.allows(request.headers.get("Authorization")):
            raise PushError(401, "missing or wrong bearer token (Authorization: Bearer ...)")
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise PushError(411, "send a Content-Length; chunked bodies are not accepted")
        kind = request.headers.get("Content-Type")
        if kind is None or kind.split(";")[0].strip().lower() != "application/json":
            shown = "no Content-Type" if kind is None else f"Content-Type {kind[:60]!r}"
            raise PushError(415, f"{shown}: send Content-Type: application/json")
        lengths = request.headers.get_all("Content-Length") or []
        if not lengths:
            raise PushError(411, "a Content-Length header is required")
        if len(lengths) > 1 or not _DECIMAL.fullmatch(lengths[0]):
            raise PushError(400, "Content-Length must be one plain decimal number of bytes")
        length = int(lengths[0])
        if length > self.max_body:
            raise PushError(413, f"body of {length} bytes is over the limit of {self.max_body}")
        try:
            reading.enter_context(self._watch.reading(length))
        except TooMuchReading as e:
            raise PushError(503, f"{e}: retry later", retry_after=1) from None
        self._watch.body(request.connection)
        body = request.rfile.read(length)
        self._watch.busy(request.connection)
        if len(body) < length:
            raise PushError(400, "the body ended before its Content-Length")
        request.close_connection = not keep_alive
        return body

    def _register(self, doc: object, _now_ns: int) -> dict[str, Any]:
        """A ``/v1/processes`` body: the processes are registered (nothing is stored now)."""
        assert self.processes is not None
        return {"registered": self.processes.register(self.parser.processes(doc))}

    def _accept(
        self, parse: Callable[[object, int], Any], body: bytes, key: str | None
    ) -> dict[str, Any]:
        if self._closing:
            raise PushError(503, "the agent is stopping: retry later")
        if parse == self._register:
            return self._register(_json(body), 0)
        if (busy := self.delivery.backpressure()) is not None:
            reason, retry_after = busy
            self.health.refused("push", "backpressure")
            raise PushError(503, f"{reason}: retry later", retry_after=retry_after)
        if key is not None and (seen := self._seen.get(key)) is not None:
            return {**seen, "duplicate": True}
        points = parse(_json(body), self._clock())
        execution_ids = getattr(points, "execution_ids", None)
        refused = 0
        if self.series_limit is not None and points:
            points, refused = self.series_limit.admit(points)
            self.health.push_series.set(self.series_limit.active)
            if refused and not points:
                raise PushError(
                    429,
                    f"{refused} values of new series refused: {self.series_limit.limit} series"
                    " are active, the limit (push_max_series, FLEETGAUGE_PUSH_MAX_SERIES); known"
                    " series are still taken",
                    reason="series_limit",
                )
        if points:
            self.delivery.wait_for_room(_ROOM_WAIT_S)
            self.delivery.add(points, validated=True)
            if self.series is not None:
                self.health.push_unexposed.inc(self.series.record(points))
            self.health.push_accepted.inc(len(points))
        items = len(points) if execution_ids is None else len(execution_ids)
        answer: dict[str, Any] = {"accepted": items}
        if refused:
            answer["refused"] = {"series_limit": refused}
        if execution_ids is not None:
            answer["execution_ids"] = execution_ids
        if key is not None:
            self._seen.put(key, answer)
        return answer

    def refuse_method(self, request: _Handler) -> None:
        """Answer anything but POST: 405 naming the one method there is (403 first if due)."""
        request.close_connection = True  # a body the method may carry is not read
        try:
            self._check_origin(request)
            error = PushError(405, f"{request.command[:20]} is not accepted here: use POST")
        except PushError as e:
            error = e
        self._answer(request, error.status, error.body(), [("Allow", "POST")])

    def _answer(
        self,
        request: _Handler,
        status: int,
        body: dict[str, Any],
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        data = orjson.dumps(body) + b"\n"
        self.health.push_requests.labels(*self.health.identity, str(status)).inc()
        request.send_response(status, HTTPStatus(status).phrase)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.send_header(protocol.PUSH_FORMS_HEADER, protocol.PUSH_FORMS)
        for name, value in headers or []:
            request.send_header(name, value)
        if request.close_connection:
            request.send_header("Connection", "close")
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise PushError(400, f"the body is not valid JSON: {e}") from None
