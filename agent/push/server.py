"""The push endpoint: models and pipelines POST the values they record to the local agent.

``POST /v1/metrics`` with ``{"metrics": [item, ...]}``, ``POST /v1/events``
with ``{"events": [item, ...]}`` and ``POST /v1/executions`` with
``{"executions": [item, ...]}`` (item keys: ``protocol.PUSH_METRIC_KEYS``,
``protocol.PUSH_EVENT_KEYS`` and ``protocol.PUSH_EXECUTION_KEYS``). Every item is
checked before anything is kept: one bad item rejects the whole request with a
4xx JSON answer ``{"error": ..., "index": N, "field": ...}`` naming the item
and the field at fault, so a client never has to guess what was stored.
Accepted items become points in the agent's delivery buffer, the same batched
path (spooled while the store is down) as the resource samples, and the answer
is ``202 {"accepted": N}`` (for executions also ``"execution_ids"``, in item
order: an execution started without an id gets one made up).

Times. An item without ``time`` takes its arrival time. Both stores keep one
value per series and timestamp, so two values of one series whose times would
collide (equal, or going back by less than 1 ms, as a fast loop or two
threads produce) are moved apart by 1 ns: every accepted value is kept.

A client that did not get an answer sends the same batch again; when it names
the batch with an ``Idempotency-Key`` header (the SDK does), a batch seen among
the last 10,000 is answered 202 again but stored once.

Off loopback the endpoint requires ``Authorization: Bearer TOKEN``; at most
``max_body`` bytes per request (413 beyond, before reading it); a few requests
are parsed at a time and a request waits briefly while the delivery buffer is
full, so a flood slows clients down instead of filling memory.
"""

from __future__ import annotations

import hmac
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from fleetgauge import catalogue, protocol
from fleetgauge.agent.delivery import Delivery
from fleetgauge.agent.exposition import PipelineSeries
from fleetgauge.agent.health import Health
from fleetgauge.catalogue import Point
from fleetgauge.net import is_loopback
from fleetgauge.timeutil import datetime_to_ns
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = ["PushError", "PushParser", "PushServer", "RecentKeys"]

log = logging.getLogger("fleetgauge.agent.push")

NS_PER_S = 1_000_000_000
_MAX_NS = 2**63 - 1
_TIE_WINDOW_NS = 1_000_000
_EXACT = 2**53  # an integer value below this converts to float exactly
_METRIC_KEYS = frozenset(protocol.PUSH_METRIC_KEYS)
_EVENT_KEYS = frozenset(protocol.PUSH_EVENT_KEYS)
_EXECUTION_KEYS = frozenset(protocol.PUSH_EXECUTION_KEYS)
_MAX_CACHED = 50_000
_ROOM_WAIT_S = 2.0
_PARALLEL_REQUESTS = 8
_KEY_WINDOW_S = 300.0  # an Idempotency-Key is remembered 5 to 10 minutes ...
_KEYS_PER_WINDOW = 5_000  # ... and at most 10,000 keys at once
_MAX_KEY_LENGTH = 128


class RecentKeys:
    """Answers given under an Idempotency-Key, kept for 5 to 10 minutes.

    A batch comes again only when its answer was lost: the SDK retries it within
    seconds (its backoff tops out at 5 s), or when the agent is reachable again.
    Keys go into the current window; every ``window_s`` (or when it holds
    ``per_window`` keys) it becomes the previous one and the one before is
    forgotten, so memory is bounded by time and by count. An answer is kept as
    its count alone unless it carries more (execution ids).
    """

    def __init__(
        self,
        window_s: float = _KEY_WINDOW_S,
        per_window: int = _KEYS_PER_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s, self._per_window, self._clock = window_s, per_window, clock
        self._current: dict[str, int | dict[str, Any]] = {}
        self._previous: dict[str, int | dict[str, Any]] = {}
        self._opened = clock()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        """The answer first given under ``key``, or None when it was not seen lately."""
        with self._lock:
            self._age()
            kept = self._current.get(key)
            if kept is None:
                kept = self._previous.get(key)
        if kept is None:
            return None
        return {"accepted": kept} if isinstance(kept, int) else dict(kept)

    def put(self, key: str, answer: dict[str, Any]) -> None:
        """Remember ``answer`` under ``key``."""
        kept = answer["accepted"] if answer.keys() == {"accepted"} else dict(answer)
        with self._lock:
            self._age()
            if len(self._current) >= self._per_window:
                self._rotate(self._clock())
            self._current[key] = kept

    def __len__(self) -> int:
        with self._lock:
            return len(self._current) + len(self._previous)

    def _age(self) -> None:
        now = self._clock()
        if now - self._opened >= 2 * self._window_s:  # both windows are out of date
            self._current = {}
            self._rotate(now)
        elif now - self._opened >= self._window_s:
            self._rotate(now)

    def _rotate(self, now: float) -> None:
        self._previous, self._current, self._opened = self._current, {}, now


class PushError(Exception):
    """A refused request: HTTP status, message, and the item index and field at fault."""

    def __init__(
        self, status: int, message: str, index: int | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.index, self.field = status, message, index, field

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {"error": self.message, "index": self.index, "field": self.field}


def _bad(index: int, field: str | None, message: str) -> PushError:
    where = f"item {index}" + (f", field {field!r}" if field else "")
    return PushError(400, f"{where}: {message}", index, field)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _name(index: int, field: str, value: object) -> str:
    if value is None:
        raise _bad(index, field, "is required")
    try:
        return validate_name(field, value)
    except InvalidPoint as e:
        raise _bad(index, field, str(e)) from None


def _value(index: int, value: object) -> float:
    if type(value) is float:
        if math.isfinite(value):
            return value
    elif type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    elif value is None:
        raise _bad(index, "value", "is required")
    else:
        raise _bad(index, "value", f"must be a number, got {_kind(value)}")
    raise _bad(index, "value", f"must be a finite number, got {value!r}")


def _time(index: int, value: object, now_ns: int) -> int:
    if value is None:
        return now_ns
    if type(value) is int:
        ns = value * NS_PER_S
    elif type(value) is float:
        ns = int(value * NS_PER_S) if math.isfinite(value * NS_PER_S) else -1
    elif isinstance(value, str):
        ns = _rfc3339(index, value)
    else:
        raise _bad(index, "time", f"must be epoch seconds or RFC 3339 text, got {_kind(value)}")
    if not 0 <= ns <= _MAX_NS:
        raise _bad(index, "time", f"{value!r} is out of range (epoch seconds, 1970 to 2262)")
    return ns


def _rfc3339(index: int, text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad(index, "time", f"{text[:40]!r} is not RFC 3339 (2026-11-22T10:00:00Z)")
    return datetime_to_ns(moment)


def _step(index: int, value: object) -> int:
    if type(value) is not int:
        raise _bad(index, "step", f"must be an integer, got {_kind(value)}")
    if not 0 <= value < protocol.MAX_STEP:
        raise _bad(index, "step", f"{value} is outside [0, 2**53)")
    return value


def _unknown(index: int, item: dict[str, Any], known: frozenset[str]) -> PushError:
    extra = sorted(str(k) for k in item if k not in known)
    return _bad(index, extra[0], f"unknown field (known: {', '.join(sorted(known))})")


class PushParser:
    """Turns request bodies into validated points; keeps the per-series time order.

    Validated tag sets are cached (a model pushes the same few series over and
    over), so a value costs a few dictionary lookups, not a validation.
    """

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self._tags: dict[tuple[Any, ...], dict[str, str]] = {}
        self._last_ns: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()

    def metrics(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/metrics`` body; PushError for the first bad item.

        The common item (a finite number, epoch-seconds time or none, no step
        or extra tags, a series seen before) is handled inline: the same checks
        and the same point as :meth:`_metric`, without its calls, which cost
        more than the checks. Any other item goes through :meth:`_metric`,
        which also names what is wrong with it.
        """
        items = _items(doc, "metrics")
        measurement = catalogue.PIPELINE_METRIC.name
        deployment, pipeline, execution = (
            catalogue.DEPLOYMENT,
            catalogue.PIPELINE,
            catalogue.EXECUTION_ID,
        )
        known, cached = _METRIC_KEYS.issuperset, self._tags.get
        isfinite, make = math.isfinite, tuple.__new__
        points: list[Point] = []
        append = points.append
        with self._lock:
            for i, item in enumerate(items):
                if type(item) is not dict or not known(item):
                    append(self._metric(i, item, now_ns))
                    continue
                get = item.get
                value, t, tags = get("value"), get("time"), None
                if get("step") is None and get("tags") is None:
                    key = (get("metric"), get(deployment), get(pipeline), get(execution), None)
                    try:
                        tags = cached(key)
                    except TypeError:  # an unhashable name: _metric says which
                        pass
                if tags is None:
                    append(self._metric(i, item, now_ns))
                    continue
                if type(value) is int and -_EXACT < value < _EXACT:
                    value = float(value)
                if type(value) is not float or not isfinite(value):
                    append(self._metric(i, item, now_ns))
                    continue
                if t is None:
                    t = now_ns
                elif type(t) is float and 0.0 <= t < 1e10:  # (int() of an infinity raises)
                    t = int(t * NS_PER_S)
                    if t > _MAX_NS:
                        append(self._metric(i, item, now_ns))
                        continue
                else:
                    append(self._metric(i, item, now_ns))
                    continue
                t = self._unique((measurement, key), t)
                append(make(Point, (measurement, tags, {"value": value}, t)))
        return points

    def events(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/events`` body; PushError for the first bad item."""
        items = _items(doc, "events")
        with self._lock:
            return [self._event(i, item, now_ns) for i, item in enumerate(items)]

    def executions(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/executions`` body; PushError for the first bad item.

        An item with status ``running`` starts an execution (its id is made up
        when not given; the answer lists the ids); ``succeeded`` or ``failed``
        ends one, which needs its ``execution_id``.
        """
        items = _items(doc, "executions")
        with self._lock:
            return [self._execution(i, item, now_ns) for i, item in enumerate(items)]

    def _execution(self, i: int, item: object, now_ns: int) -> Point:
        if type(item) is not dict:
            raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
        if not _EXECUTION_KEYS.issuperset(item):
            raise _unknown(i, item, _EXECUTION_KEYS)
        status = item.get("status")
        if status not in catalogue.EXECUTION_STATUSES:
            known = ", ".join(catalogue.EXECUTION_STATUSES)
            raise _bad(i, "status", f"must be one of {known}, got {status!r}")
        t = _time(i, item.get("time"), now_ns)
        tags = {
            catalogue.ENVIRONMENT: self.environment,
            catalogue.PIPELINE: _name(i, catalogue.PIPELINE, item.get(catalogue.PIPELINE)),
        }
        given = item.get(catalogue.EXECUTION_ID)
        if given is None and status == catalogue.RUNNING:
            given = protocol.new_execution_id(t)
        tags[catalogue.EXECUTION_ID] = _name(i, catalogue.EXECUTION_ID, given)
        if status != catalogue.RUNNING:
            if item.get("inputs") is not None:
                raise _bad(i, "inputs", "inputs are given when the execution starts (running)")
            return Point(catalogue.EXECUTION_END.name, tags, {"status": status}, t)
        try:
            inputs = protocol.inputs_json({} if item.get("inputs") is None else item["inputs"])
        except InvalidPoint as e:
            raise _bad(i, "inputs", str(e)) from None
        return Point(catalogue.EXECUTION.name, tags, {"inputs": inputs}, t)

    def _metric(self, i: int, item: object, now_ns: int) -> Point:
        if type(item) is not dict:
            raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
        if not _METRIC_KEYS.issuperset(item):
            raise _unknown(i, item, _METRIC_KEYS)
        get = item.get
        value = _value(i, get("value"))
        step = get("step")
        raw_tags = get("tags")
        key = (
            get("metric"),
            get(catalogue.DEPLOYMENT),
            get(catalogue.PIPELINE),
            get(catalogue.EXECUTION_ID),
            tuple(raw_tags.items()) if type(raw_tags) is dict else raw_tags,
        )
        try:
            tags = self._tags.get(key)
        except TypeError:  # an unhashable value somewhere: the slow path names it
            tags = None
        if tags is None:
            tags = self._remember(key, self._metric_tags(i, item))
        if step is None:
            measurement, fields = catalogue.PIPELINE_METRIC.name, {"value": value}
        else:
            measurement, fields = (
                catalogue.LIST_METRIC.name,
                {"value": value, "step": _step(i, step)},
            )
        t = self._unique((measurement, key), _time(i, get("time"), now_ns))
        return Point(measurement, tags, fields, t)

    def _metric_tags(self, i: int, item: dict[str, Any]) -> dict[str, str]:
        tags = {
            catalogue.ENVIRONMENT: self.environment,
            catalogue.METRIC: _name(i, "metric", item.get("metric")),
        }
        self._context(i, item, tags)
        if not (catalogue.DEPLOYMENT in tags or catalogue.PIPELINE in tags):
            raise _bad(i, catalogue.DEPLOYMENT, "an item needs a 'deployment' or a 'pipeline'")
        extra = item.get("tags")
        if extra is None:
            return tags
        if type(extra) is not dict:
            raise _bad(i, "tags", f"must be an object of names to text, got {_kind(extra)}")
        if len(extra) > protocol.MAX_PUSH_TAGS:
            raise _bad(i, "tags", f"{len(extra)} tags, the limit is {protocol.MAX_PUSH_TAGS}")
        for k, v in extra.items():
            _name(i, "tags", k)
            if k in protocol.PUSH_TAG_KEYS_TAKEN:
                raise _bad(i, "tags", f"tag name {k!r} is reserved")
            if not isinstance(v, str):
                raise _bad(i, "tags", f"tag {k!r} must be text, got {_kind(v)}")
            tags[k] = _name(i, "tags", v)
        return tags

    def _context(self, i: int, item: dict[str, Any], tags: dict[str, str]) -> None:
        for field in protocol.PUSH_CONTEXT:
            value = item.get(field)
            if value is not None:
                tags[field] = _name(i, field, value)

    def _event(self, i: int, item: object, now_ns: int) -> Point:
        if type(item) is not dict:
            raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
        if not _EVENT_KEYS.issuperset(item):
            raise _unknown(i, item, _EVENT_KEYS)
        tags = {
            catalogue.ENVIRONMENT: self.environment,
            catalogue.EVENT_NAME: _name(i, catalogue.EVENT_NAME, item.get(catalogue.EVENT_NAME)),
        }
        if item.get(catalogue.EVENT_SOURCE) is not None:
            tags[catalogue.EVENT_SOURCE] = _name(
                i, catalogue.EVENT_SOURCE, item[catalogue.EVENT_SOURCE]
            )
        self._context(i, item, tags)
        metadata = item.get("metadata")
        if metadata is None:
            metadata = {}
        elif type(metadata) is not dict:
            raise _bad(i, "metadata", f"must be a JSON object, got {_kind(metadata)}")
        text = orjson.dumps(metadata).decode()
        if len(text.encode()) > protocol.MAX_EVENT_METADATA_BYTES:
            limit = protocol.MAX_EVENT_METADATA_BYTES
            raise _bad(i, "metadata", f"is {len(text.encode())} bytes as JSON (limit {limit})")
        key = (catalogue.EVENT.name, *sorted(tags.items()))
        t = self._unique(key, _time(i, item.get("time"), now_ns))
        return Point(catalogue.EVENT.name, tags, {"metadata": text}, t)

    def _remember(self, key: tuple[Any, ...], tags: dict[str, str]) -> dict[str, str]:
        if len(self._tags) >= _MAX_CACHED:
            self._tags.clear()
        self._tags[key] = tags
        return tags

    def _unique(self, series: tuple[Any, ...], t: int) -> int:
        last = self._last_ns.get(series)
        if last is not None and last - _TIE_WINDOW_NS < t <= last:
            t = last + 1
        if last is None and len(self._last_ns) >= _MAX_CACHED:
            self._last_ns.clear()
        self._last_ns[series] = t
        return t


def _items(doc: object, key: str) -> list[Any]:
    if type(doc) is not dict:
        raise PushError(400, f'the body must be a JSON object {{"{key}": [...]}}', None, None)
    if set(doc) != {key}:
        extra = sorted(str(k) for k in doc if k != key)
        if extra:
            raise PushError(400, f"unknown top-level field {extra[0]!r}", None, extra[0])
        raise PushError(400, f"the body needs a {key!r} list", None, key)
    items = doc[key]
    if type(items) is not list:
        raise PushError(400, f"{key!r} must be a list, got {_kind(items)}", None, key)
    if len(items) > protocol.MAX_PUSH_ITEMS:
        limit = protocol.MAX_PUSH_ITEMS
        raise PushError(413, f"{len(items)} items in one request, limit {limit}", None, key)
    return items


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: PushServer

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is routine: one debug line, not a traceback."""
        log.debug("push connection from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120  # an idle keep-alive connection is closed after this many seconds

    def setup(self) -> None:
        super().setup()
        # answers are small: without this, Nagle's algorithm and the client's delayed ACK
        # hold each one back for tens of milliseconds on a kept-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.server.endpoint.handle(self)

    def do_GET(self) -> None:
        self.server.endpoint.refuse_method(self)

    do_PUT = do_DELETE = do_PATCH = do_GET

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
        max_body: int = 4 * 1024 * 1024,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"push_host {host!r} is not loopback: set a token"
                " (FLEETGAUGE_PUSH_TOKEN or push_token in the config file)"
            )
        self.parser, self.delivery, self.health, self.series = parser, delivery, health, series
        self._token = b"Bearer " + token.encode() if token else None
        self.max_body = max_body
        self._clock = clock
        self._parsing = threading.BoundedSemaphore(_PARALLEL_REQUESTS)
        self._closing = False
        self._seen = RecentKeys()
        self._httpd = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        self._httpd.endpoint = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="push-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return self._httpd.server_address[1]

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering, wait for requests being accepted, release the port.

        A request that arrives while stopping is answered 503 (the client keeps
        its values and retries), so nothing answered 202 misses the last flush.
        """
        self._closing = True
        self._httpd.shutdown()
        for _ in range(_PARALLEL_REQUESTS):
            self._parsing.acquire()
        self._httpd.server_close()

    # --- one request ----------------------------------------------------------
    def handle(self, request: _Handler) -> None:
        """Answer one POST: check, parse, hand the points to delivery."""
        path = request.path.split("?", 1)[0]
        try:
            if path == protocol.PUSH_METRICS_PATH:
                parse = self.parser.metrics
            elif path == protocol.PUSH_EVENTS_PATH:
                parse = self.parser.events
            elif path == protocol.PUSH_EXECUTIONS_PATH:
                parse = self.parser.executions
            else:
                paths = (protocol.PUSH_METRICS_PATH, protocol.PUSH_EVENTS_PATH)
                raise PushError(
                    404,
                    f"no endpoint at {path[:100]!r}: POST {', '.join(paths)}"
                    f" or {protocol.PUSH_EXECUTIONS_PATH}",
                )
            body = self._read(request)
            key = request.headers.get(protocol.PUSH_IDEMPOTENCY_HEADER)
            if key is not None and not 0 < len(key) <= _MAX_KEY_LENGTH:
                raise PushError(
                    400, f"{protocol.PUSH_IDEMPOTENCY_HEADER} must be 1 to 128 characters"
                )
            with self._parsing:
                answer = self._accept(parse, body, key)
        except PushError as e:
            return self._answer(request, e.status, e.body())
        self._answer(request, 202, answer)

    def _read(self, request: _Handler) -> bytes:
        if self._token is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._token):
                request.close_connection = True
                raise PushError(401, "missing or wrong bearer token (Authorization: Bearer ...)")
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            request.close_connection = True
            raise PushError(411, "send a Content-Length; chunked bodies are not accepted")
        kind = request.headers.get("Content-Type", "application/json").split(";")[0].strip()
        length_text = request.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            request.close_connection = True
            raise PushError(411, "a Content-Length header is required")
        if length > self.max_body:
            request.close_connection = True
            raise PushError(413, f"body of {length} bytes is over the limit of {self.max_body}")
        body = request.rfile.read(length)
        if len(body) < length:
            request.close_connection = True
            raise PushError(400, "the body ended before its Content-Length")
        if kind.lower() != "application/json":
            raise PushError(415, f"Content-Type {kind[:60]!r}: send application/json")
        return body

    def _accept(
        self, parse: Callable[[object, int], list[Point]], body: bytes, key: str | None
    ) -> dict[str, Any]:
        if self._closing:
            raise PushError(503, "the agent is stopping: retry later")
        if key is not None and (seen := self._seen.get(key)) is not None:
            return {**seen, "duplicate": True}
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise PushError(400, f"the body is not valid JSON: {e}") from None
        points = parse(doc, self._clock())
        if points:
            self.delivery.wait_for_room(_ROOM_WAIT_S)
            self.delivery.add(points, validated=True)
            if self.series is not None:
                self.health.push_unexposed.inc(self.series.record(points))
            self.health.push_accepted.inc(len(points))
        answer: dict[str, Any] = {"accepted": len(points)}
        if parse == self.parser.executions:
            answer["execution_ids"] = [p.tags[catalogue.EXECUTION_ID] for p in points]
        if key is not None:
            self._seen.put(key, answer)
        return answer

    def refuse_method(self, request: _Handler) -> None:
        """Answer anything but POST."""
        self._answer(request, 405, PushError(405, "use POST").body(), [("Allow", "POST")])

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
        for name, value in headers or []:
            request.send_header(name, value)
        if request.close_connection:
            request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(data)
