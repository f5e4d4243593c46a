"""Recording SDK: model and training code send metric values and events to the local agent.

Deployed model code calls ``record_metric_value("score", 1)`` after each
prediction; training code calls ``record_list_metric_values("loss", losses)``
per epoch and ``log_event("checkpoint_saved", metadata={...})``. The values go
to the local fleetgauge agent's push endpoint (``POST /v1/metrics`` and
``/v1/events``, see ``agent/push.py``), which writes them to the store.

Why it is built this way: a recording call runs inside the model's own work,
so it must never block and never raise. A call only stamps the time and
appends a tuple to a bounded in-memory queue (about a microsecond); a daemon
thread checks each value with the agent's rules, builds the JSON and sends
batches over one kept-alive HTTP connection; while the agent reads one batch,
the thread builds the next. A value the agent would refuse is
dropped and counted before sending, because the agent refuses a whole request
for one bad item. While the agent is down the thread retries with backoff,
holding at most ``max_queue`` values in all (queue plus the batches in flight);
what does not fit is dropped and counted, never silently. ``flush()`` and
normal process exit (``atexit``, bounded wait) deliver what is queued; what
cannot be delivered at exit is counted and reported in one log line. After
``os.fork`` a child starts its own sender with an empty queue.

A batch whose answer was lost (a timeout) is sent again under the same
``Idempotency-Key``, so the agent stores it once (it remembers the last 10,000
batches). SIGTERM and SIGKILL skip ``atexit``
unless the program handles SIGTERM itself.

Defaults come from the environment: ``FLEETGAUGE_PUSH_URL`` (default
``http://127.0.0.1:9109``), ``FLEETGAUGE_PUSH_TOKEN``, ``FLEETGAUGE_DEPLOYMENT``,
``FLEETGAUGE_PIPELINE`` and ``FLEETGAUGE_EXECUTION_ID``.
"""

from __future__ import annotations

import atexit
import http.client
import logging
import math
import operator
import os
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from fleetgauge import catalogue, protocol
from fleetgauge.timeutil import NS_PER_S, parse_time
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = [
    "MetricsClient",
    "configure",
    "get_client",
    "record_metric_value",
    "record_list_metric_values",
    "log_event",
    "start_execution",
    "finish_execution",
    "Execution",
    "flush",
    "stats",
    "DEFAULT_PUSH_URL",
    "DROP_REASONS",
]

log = logging.getLogger("fleetgauge.sdk")

DEFAULT_PUSH_URL = "http://127.0.0.1:9109"
DROP_REASONS = (
    "queue_full",
    "invalid",
    "rejected",
    "closed",
    "misconfigured",
    "undelivered_at_close",
    "undelivered_at_exit",
)
"""Why values were given up: ``stats()["dropped"]`` has one count per reason."""

_ENV = {
    "url": "FLEETGAUGE_PUSH_URL",
    "token": "FLEETGAUGE_PUSH_TOKEN",
    catalogue.DEPLOYMENT: "FLEETGAUGE_DEPLOYMENT",
    catalogue.PIPELINE: "FLEETGAUGE_PIPELINE",
    catalogue.EXECUTION_ID: "FLEETGAUGE_EXECUTION_ID",
}
_MAX_NS = 2**63 - 1
_MAX_BODY_BYTES = 1024 * 1024  # the agent's default limit is 4 MiB
_BACKOFF_S = (0.2, 5.0)
_MAX_CACHED = 10_000
_METRIC, _LIST, _EVENT, _MARK, _EXECUTION = 0, 1, 2, 3, 4
_METRIC_CONTEXT = frozenset({*protocol.PUSH_CONTEXT, "time", "tags"})
_EVENT_CONTEXT = frozenset({*protocol.PUSH_CONTEXT, "time"})
_USERINFO = re.compile(r"//[^/]*@")
_time_ns = time.time_ns


class _Target(NamedTuple):
    """Where the agent listens: connection details and the URL as logs may show it."""

    https: bool
    host: str
    port: int
    prefix: str
    shown: str

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)


class _Mark:
    """A ``flush()`` waiting for everything queued before it to be settled."""

    __slots__ = ("done", "delivered")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.delivered = False

    def settle(self, delivered: bool) -> None:
        self.delivered = delivered
        self.done.set()


class _Request(NamedTuple):
    """One request in flight: endpoint, body key, items, and the id the agent dedupes on."""

    path: str
    key: str
    items: list[dict[str, Any]]
    id: str


def _request(path: str, key: str, items: list[dict[str, Any]]) -> _Request:
    return _Request(path, key, items, uuid.uuid4().hex)


def _parse_url(url: str) -> _Target:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        shown = _USERINFO.sub("//", url)[:100]
        raise ValueError(f"push URL {shown!r}: use http://HOST:PORT (e.g. {DEFAULT_PUSH_URL})")
    https = parts.scheme == "https"
    port = port or (443 if https else 80)
    prefix = parts.path.rstrip("/")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _Target(https, parts.hostname, port, prefix, f"{parts.scheme}://{host}:{port}{prefix}")


def _number(value: object) -> float:
    if type(value) is float:
        result = value
    elif type(value) is int:
        try:
            result = float(value)
        except OverflowError:
            raise InvalidPoint(f"value {value} is too large for a float") from None
    elif isinstance(value, bool | str | bytes) or type(value).__name__ in ("bool", "bool_"):
        raise InvalidPoint(f"value must be a number, got {type(value).__name__}")
    else:
        try:
            result = float(value)  # type: ignore[arg-type]  # numpy, torch and Decimal scalars
        except (TypeError, ValueError, OverflowError):
            raise InvalidPoint(f"value must be a number, got {type(value).__name__}") from None
    if not math.isfinite(result):
        raise InvalidPoint(f"value must be a finite number, got {result!r}")
    return result


def _to_ns(value: object) -> int:
    """Nanoseconds for a ``time=`` argument: epoch seconds, a datetime, or ISO 8601 text."""
    if isinstance(value, bool):
        raise InvalidPoint("time must be epoch seconds, a datetime or ISO 8601 text, got bool")
    if isinstance(value, int):
        ns = value * NS_PER_S
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPoint(f"time must be finite, got {value!r}")
        ns = round(value * NS_PER_S)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        ns = (delta.days * 86400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    elif isinstance(value, str):
        try:
            ns = parse_time(value)
        except ValueError as e:
            raise InvalidPoint(str(e)) from None
    else:
        raise InvalidPoint(f"time must be epoch seconds, a datetime or text, got {type(value)}")
    if not 0 <= ns <= _MAX_NS:
        raise InvalidPoint(f"time {value!r} is out of range (1970 to 2262)")
    return ns


def _as_values(values_or_value: object) -> list[Any]:
    """A list metric's values: a snapshot of a sequence or iterable, else the one value."""
    try:
        if isinstance(values_or_value, list | tuple):
            return list(values_or_value)
        if isinstance(values_or_value, str | bytes | Mapping) or not hasattr(
            values_or_value, "__iter__"
        ):
            return [values_or_value]
        return list(values_or_value)  # type: ignore[call-overload]
    except Exception:  # a 0-d array or a broken iterable: the sender judges the value
        return [values_or_value]


def _metadata_json(metadata: object) -> bytes | InvalidPoint | None:
    """An event's metadata as compact JSON, taken at call time; the problem when it is bad."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        return InvalidPoint(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        data = orjson.dumps(
            metadata if type(metadata) is dict else dict(metadata),
            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
        )
    except Exception as e:
        return InvalidPoint(f"metadata is not JSON: {e}")
    if len(data) > protocol.MAX_EVENT_METADATA_BYTES:
        limit = protocol.MAX_EVENT_METADATA_BYTES
        return InvalidPoint(f"metadata is {len(data)} bytes as JSON (limit {limit})")
    return data


def _env(key: str, given: str | None) -> str | None:
    return given if given is not None else (os.environ.get(_ENV[key]) or None)


class MetricsClient:
    """Records metric values and events in the calling thread; a daemon thread sends them.

    Arguments left as None come from the environment (see the module docstring).
    ``deployment``, ``pipeline``, ``execution_id`` and ``tags`` are defaults for
    every call; a call's own keyword arguments override them. ``max_queue`` bounds
    the values held (queued plus in flight), ``batch_size`` the values per request,
    ``flush_interval`` the seconds between sends, ``timeout`` one HTTP exchange and
    ``exit_timeout`` the wait for delivery at process exit. A bad URL or context
    is logged once and every value is then dropped as ``misconfigured``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        deployment: str | None = None,
        pipeline: str | None = None,
        execution_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        max_queue: int = 100_000,
        batch_size: int = 5000,
        flush_interval: float = 0.5,
        timeout: float = 5.0,
        exit_timeout: float = 5.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("max_queue and batch_size must be >= 1, the intervals > 0")
        self._queue: deque[tuple[Any, ...]] = deque()
        self._max_queue = self._room = max_queue
        self._batch_size = min(batch_size, protocol.MAX_PUSH_ITEMS)
        self._interval, self._timeout, self._exit_timeout = flush_interval, timeout, exit_timeout
        self._counts = dict.fromkeys(("sent", "taken", *DROP_REASONS), 0)
        self._warned: set[str] = set()
        self._good_names: set[str] = set()
        self._next_step: dict[tuple[Any, ...], int] = {}
        self._refused: str | None = None  # set when calls are dropped: closed or misconfigured
        self._last_error = "none"
        self._init_sender()
        url = _env("url", url) or DEFAULT_PUSH_URL
        self.url = _USERINFO.sub("//", url)  # as logs show it: never a user:password@
        try:
            self._target = _parse_url(url)
            self._headers = self._make_headers(_env("token", token))
            self._defaults = self._check_defaults(deployment, pipeline, execution_id)
            self._default_tags: dict[str, str] = {}
            self._default_tags = self._tags(tags or {})
        except (ValueError, InvalidPoint) as e:
            self._refused, self._room = "misconfigured", 0
            log.error("fleetgauge sdk: not recording: %s", e)
            return
        self.url = self._target.shown
        self._start()
        _clients.add(self)

    # --- recording: the calling thread -------------------------------------------
    def record_metric_value(self, name: str, value: float, **context: Any) -> None:
        """Record one value of metric ``name`` now (for example ``score`` 1 after a prediction).

        ``context``: ``deployment``, ``pipeline``, ``execution_id`` (override the
        client's), ``time`` (epoch seconds, datetime or ISO 8601; default now) and
        ``tags`` (up to 16 extra names to text). Never blocks, never raises: a bad
        value is counted as ``invalid`` when the sender checks it.
        """
        queue = self._queue
        if len(queue) < self._room:
            queue.append((_METRIC, _time_ns(), name, value, context or None))
        else:
            self._drop_on_record(1)

    def record_list_metric_values(
        self, name: str, values_or_value: Any, step: int | None = None, **context: Any
    ) -> None:
        """Record list-metric elements: a list gives one element per value, a scalar one.

        Elements get steps ``step``, ``step + 1``, ...; without ``step`` they continue
        after the last step recorded for this name and context (from 0). ``context``
        as for :meth:`record_metric_value`. Never blocks, never raises.
        """
        t = _time_ns()
        values = _as_values(values_or_value)
        queue = self._queue
        fits = max(0, min(len(values), self._room - len(queue)))
        context = context or None  # a tuple holding a dict stays tracked by the GC
        queue.extend([(_LIST, t, name, values[i], context, step, i) for i in range(fits)])
        if fits < len(values):
            self._drop_on_record(len(values) - fits)

    def log_event(
        self,
        name: str,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> None:
        """Record that event ``name`` happened now, with an optional source and JSON metadata.

        ``metadata`` (at most 4096 bytes as JSON) is serialised at call time, so
        later changes to it are not seen. ``context``: ``deployment``,
        ``pipeline``, ``execution_id``, ``time``. Never blocks, never raises.
        """
        queue = self._queue
        if len(queue) < self._room:
            entry = (_EVENT, _time_ns(), name, source, _metadata_json(metadata), context or None)
            queue.append(entry)
        else:
            self._drop_on_record(1)

    def start_execution(
        self,
        pipeline: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        execution_id: str | None = None,
        time: Any = None,
    ) -> Execution:
        """Record that an execution of ``pipeline`` starts now with ``inputs``; returns it.

        ``execution_id`` is made up (``20261122T101500-3fa2c1d0``) when not given;
        ``pipeline`` defaults to the client's. Record its values through the
        returned :class:`Execution` (they carry its id and pipeline) and end it
        with :meth:`Execution.finish`, or use it as a context manager: it ends
        ``succeeded``, or ``failed`` when the block raises. Never raises: bad
        inputs are dropped as ``invalid`` (the values recorded still count).
        """
        t_ns = _time_ns()
        if execution_id is None:
            execution_id = protocol.new_execution_id(t_ns)
        pipeline = pipeline if pipeline is not None else self._defaults.get(catalogue.PIPELINE)
        try:
            data: str | InvalidPoint = protocol.inputs_json({} if inputs is None else inputs)
        except InvalidPoint as e:
            data = e
        self._record_execution(t_ns, execution_id, pipeline, catalogue.RUNNING, data, time)
        return Execution(self, execution_id, pipeline)

    def finish_execution(
        self,
        execution_id: str,
        status: str = catalogue.SUCCEEDED,
        pipeline: str | None = None,
        time: Any = None,
    ) -> None:
        """Record that execution ``execution_id`` ended now, ``succeeded`` or ``failed``.

        For an execution started elsewhere (another process); one started here
        ends with :meth:`Execution.finish`. Never raises.
        """
        problem = None
        if status not in catalogue.END_STATUSES:
            problem = InvalidPoint(f"an execution ends succeeded or failed, not {status!r}")
        self._record_execution(_time_ns(), execution_id, pipeline, status, problem, time)

    def _record_execution(self, *entry: Any) -> None:
        queue = self._queue
        if len(queue) < self._room:
            queue.append((_EXECUTION, *entry))
        else:
            self._drop_on_record(1)

    def _drop_on_record(self, n: int) -> None:
        reason = self._refused or "queue_full"
        self._counts[reason] += n
        if reason == "queue_full":
            self._warn_once(
                "queue_full",
                "fleetgauge sdk: queue of %d values is full (agent at %s slow or down); dropping",
                self._max_queue,
                self.url,
            )

    # --- control -------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Send everything recorded before this call; wait at most ``timeout`` seconds.

        True when nothing recorded before the call is still waiting: all of it was
        accepted by the agent, or dropped and counted (invalid, rejected). False at
        the timeout (the agent is slow or down) or when the client cannot send.
        """
        if self._refused is not None or not self._thread.is_alive():
            return self._held() == 0 and self._refused != "misconfigured"
        mark = _Mark()
        with self._marks_lock:
            self._marks_added += 1
        self._queue.append((_MARK, mark))
        if self._stop:  # closed meanwhile: nobody will settle the mark
            return False
        self._flush_requested = True
        self._wake.set()
        return mark.done.wait(timeout) and mark.delivered

    def close(self, timeout: float = 5.0) -> None:
        """Flush (waiting at most ``timeout`` seconds), stop the sender and drop later calls.

        What could not be delivered is counted as ``undelivered_at_close`` and logged.
        """
        self._shutdown("undelivered_at_close", timeout)

    def stats(self) -> dict[str, Any]:
        """Counts so far: ``recorded`` values, ``sent`` (accepted by the agent), ``queued``,
        ``in_flight``, and ``dropped`` per reason (see ``DROP_REASONS``)."""
        counts = dict(self._counts)
        queued = self._queued()
        in_flight = sum(len(r.items) for r in list(self._pending))
        dropped = {reason: counts[reason] for reason in DROP_REASONS}
        hot_drops = dropped["queue_full"] + dropped["closed"] + dropped["misconfigured"]
        return {
            "recorded": counts["taken"] + queued + hot_drops,
            "sent": counts["sent"],
            "queued": queued,
            "in_flight": in_flight,
            "dropped": dropped,
        }

    # --- the sender thread -----------------------------------------------------------
    def _init_sender(self) -> None:
        self._pending: list[_Request] = []
        self._marks: list[_Mark] = []
        self._marks_lock = threading.Lock()
        self._marks_added = self._marks_taken = 0
        self._wake = threading.Event()
        self._flush_requested = self._stop = False
        self._delay = self._retry_at = 0.0
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="fleetgauge-sdk", daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            wait = self._retry_at - time.monotonic() if self._retry_at else self._interval
            self._wake.wait(max(0.0, wait))
            self._wake.clear()
            if self._flush_requested:
                self._flush_requested = False
                self._delay = self._retry_at = 0.0
            try:
                self._pump()
            except Exception as e:  # a bug here must not end the sender
                self._warn_once("bug", "fleetgauge sdk: sender error %r", e, exc_info=True)

    def _pump(self) -> None:
        """Send what is queued, batch by batch, until the queue is empty or the agent fails."""
        while not self._stop:
            if not self._pending:
                self._settle_marks()
                if not self._take():
                    return
                continue
            if self._retry_at and time.monotonic() < self._retry_at:
                return
            if not self._send_pending():
                return

    def _take(self) -> bool:
        """Move up to one batch from the queue into requests; False when the queue is empty."""
        queue = self._queue
        n = min(len(queue), self._batch_size)
        if n == 0:
            return False
        in_flight = self._in_flight()
        # before popping, so queue and batches never exceed max_queue
        self._room = self._max_queue - in_flight - n
        metrics: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        executions: list[dict[str, Any]] = []
        taken = 0
        for _ in range(n):
            try:
                entry = queue.popleft()
            except IndexError:  # emptied by close() while this thread was busy
                break
            if entry[0] == _MARK:
                self._marks.append(entry[1])
                self._marks_taken += 1
                break
            taken += 1
            try:
                if entry[0] == _EVENT:
                    events.append(self._event_item(entry))
                elif entry[0] == _EXECUTION:
                    executions.append(self._execution_item(entry))
                else:
                    metrics.append(self._metric_item(entry))
            except Exception as e:  # InvalidPoint, or garbage failing in its own way
                self._counts["invalid"] += 1
                self._warn_once("invalid", "fleetgauge sdk: dropped an invalid value: %s", e)
        self._counts["taken"] += taken
        self._pending.extend(
            _request(path, key, items)
            for path, key, items in (
                (protocol.PUSH_EXECUTIONS_PATH, "executions", executions),
                (protocol.PUSH_METRICS_PATH, "metrics", metrics),
                (protocol.PUSH_EVENTS_PATH, "events", events),
            )
            if items
        )
        self._room = self._max_queue - in_flight - len(metrics) - len(events) - len(executions)
        return True

    def _in_flight(self) -> int:
        return sum(len(r.items) for r in self._pending)

    def _take_ahead(self) -> None:
        """While the agent reads the last batch in flight, build the next one from the queue."""
        if len(self._pending) == 1 and not self._stop:
            self._take()

    def _send_pending(self) -> bool:
        """Send the requests in flight; False (and a retry later) when the agent failed."""
        while self._pending:
            request = self._pending[0]
            body = orjson.dumps({request.key: request.items})
            if len(body) > _MAX_BODY_BYTES and len(request.items) > 1:
                self._split_first()
                continue
            try:
                status, data = self._post(
                    self._target.prefix + request.path, body, request.id, self._take_ahead
                )
            except (OSError, http.client.HTTPException) as e:
                return self._failed(f"{type(e).__name__}: {e}")
            if status < 300:
                self._counts["sent"] += len(request.items)
                self._pending.pop(0)
            elif status == 413 and len(request.items) > 1:
                self._split_first()
            elif status in (408, 429) or status >= 500:
                return self._failed(f"HTTP {status}")
            else:
                self._refuse(request, status, data)
            self._room = self._max_queue - self._in_flight()
        if self._delay:
            log.info("fleetgauge sdk: agent at %s reachable again", self.url)
        self._delay = self._retry_at = 0.0
        return True

    def _split_first(self) -> None:
        r = self._pending[0]
        half = len(r.items) // 2
        self._pending[0:1] = [
            _request(r.path, r.key, r.items[:half]),
            _request(r.path, r.key, r.items[half:]),
        ]

    def _failed(self, error: str) -> bool:
        self._last_error = error
        if not self._delay:
            self._warn_once(
                "unreachable",
                "fleetgauge sdk: agent at %s unreachable (%s); retrying, holding at most %d values",
                self.url,
                error,
                self._max_queue,
            )
        self._delay = min(_BACKOFF_S[1], self._delay * 2) if self._delay else _BACKOFF_S[0]
        self._retry_at = time.monotonic() + self._delay * random.uniform(0.5, 1.0)
        return False

    def _refuse(self, request: _Request, status: int, data: bytes) -> None:
        """The agent refused a request (4xx): retrying cannot help, so drop and count it."""
        try:
            error = orjson.loads(data)["error"]
        except Exception:
            error = data[:200].decode(errors="replace")
        self._warn_once(
            "rejected",
            "fleetgauge sdk: agent at %s refused %d values (HTTP %d): %s",
            self.url,
            len(request.items),
            status,
            error,
        )
        self._counts["rejected"] += len(request.items)
        self._pending.pop(0)

    def _post(
        self, path: str, body: bytes, batch_id: str, meanwhile: Callable[[], None]
    ) -> tuple[int, bytes]:
        """Send one request and read its answer, calling ``meanwhile`` (once) in between."""
        headers = {**self._headers, protocol.PUSH_IDEMPOTENCY_HEADER: batch_id}
        for attempt in (0, 1):
            fresh = self._conn is None
            if self._conn is None:
                self._conn = self._target.connect(self._timeout)
            conn = self._conn
            try:
                conn.request("POST", path, body, headers)
                if not attempt:
                    meanwhile()
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._close_connection()
                if fresh or attempt:
                    raise
                continue  # the agent closed the idle kept-alive connection: once more, anew
            except BaseException:
                self._close_connection()
                raise
            if response.will_close:
                self._close_connection()
            return response.status, data
        raise AssertionError("unreachable")

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _settle_marks(self) -> None:
        marks, self._marks = self._marks, []
        for mark in marks:
            mark.settle(True)

    # --- building items (sender thread) --------------------------------------------------
    def _metric_item(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        name = self._name("metric", entry[2])
        fields, tags, t = self._context(entry[4], _METRIC_CONTEXT)
        if catalogue.DEPLOYMENT not in fields and catalogue.PIPELINE not in fields:
            raise InvalidPoint(
                f"metric {name!r} needs a deployment or a pipeline"
                " (pass deployment=... or set FLEETGAUGE_DEPLOYMENT)"
            )
        item = {**fields, "metric": name}
        if entry[0] == _LIST:
            item["step"] = self._step(name, fields, tags, entry[5], entry[6])
        item["value"] = _number(entry[3])
        item["time"] = (entry[1] if t is None else t) / NS_PER_S
        if tags:
            item["tags"] = tags
        return item

    def _event_item(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        _, t_ns, name, source, metadata, context = entry
        fields, _, t = self._context(context, _EVENT_CONTEXT)
        item = {**fields, catalogue.EVENT_NAME: self._name("event name", name)}
        if source is not None:
            item[catalogue.EVENT_SOURCE] = self._name("source", source)
        if isinstance(metadata, InvalidPoint):
            raise metadata
        if metadata is not None:
            item["metadata"] = orjson.Fragment(metadata)
        item["time"] = (t_ns if t is None else t) / NS_PER_S
        return item

    def _execution_item(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        _, t_ns, execution_id, pipeline, status, inputs, t = entry
        pipeline = pipeline if pipeline is not None else self._defaults.get(catalogue.PIPELINE)
        if pipeline is None:
            raise InvalidPoint(
                "an execution needs a pipeline (pass pipeline=... or set FLEETGAUGE_PIPELINE)"
            )
        if isinstance(inputs, InvalidPoint):
            raise inputs
        item = {
            catalogue.EXECUTION_ID: self._name(catalogue.EXECUTION_ID, execution_id),
            catalogue.PIPELINE: self._name(catalogue.PIPELINE, pipeline),
            "status": status,
            "time": (t_ns if t is None else _to_ns(t)) / NS_PER_S,
        }
        if inputs is not None:
            item["inputs"] = orjson.Fragment(inputs)
        return item

    def _context(
        self, context: dict[str, Any] | None, allowed: frozenset[str]
    ) -> tuple[dict[str, str], dict[str, str], int | None]:
        """Context fields over the client's defaults, the tags, and the call's time (ns)."""
        if not context:
            return self._defaults, self._default_tags, None
        for key in context:
            if key not in allowed:
                raise InvalidPoint(
                    f"unknown argument {key!r} (known: {', '.join(sorted(allowed))})"
                )
        fields = dict(self._defaults)
        for key in protocol.PUSH_CONTEXT:
            value = context.get(key)
            if value is not None:
                fields[key] = self._name(key, value)
        tags = context.get("tags")
        t = context.get("time")
        return (
            fields,
            self._default_tags if tags is None else self._tags(tags),
            None if t is None else _to_ns(t),
        )

    def _tags(self, tags: object) -> dict[str, str]:
        if not isinstance(tags, Mapping):
            raise InvalidPoint(
                f"tags must be a mapping of names to text, got {type(tags).__name__}"
            )
        merged = {**self._default_tags, **tags}
        if len(merged) > protocol.MAX_PUSH_TAGS:
            raise InvalidPoint(f"{len(merged)} tags, the limit is {protocol.MAX_PUSH_TAGS}")
        for key, value in merged.items():
            self._name("tag name", key)
            if key in protocol.PUSH_TAG_KEYS_TAKEN:
                raise InvalidPoint(f"tag name {key!r} is reserved")
            self._name(f"tag {key!r}", value)
        return merged

    def _step(
        self, name: str, fields: dict[str, str], tags: dict[str, str], step: object, index: int
    ) -> int:
        key = (name, *(fields.get(k) for k in protocol.PUSH_CONTEXT), *sorted(tags.items()))
        if step is None:
            result = self._next_step.get(key, 0)
        elif isinstance(step, bool):
            raise InvalidPoint("step must be an integer, got bool")
        else:
            try:
                result = operator.index(step) + index  # type: ignore[call-overload]
            except TypeError:
                raise InvalidPoint(f"step must be an integer, got {type(step).__name__}") from None
        if not 0 <= result < protocol.MAX_STEP:
            raise InvalidPoint(f"step {result} is outside [0, 2**53)")
        if len(self._next_step) >= _MAX_CACHED and key not in self._next_step:
            self._next_step.clear()
        self._next_step[key] = result + 1
        return result

    def _name(self, kind: str, value: object) -> str:
        if type(value) is str and value in self._good_names:
            return value
        validate_name(kind, value)
        if len(self._good_names) >= _MAX_CACHED:
            self._good_names.clear()
        self._good_names.add(value)  # type: ignore[arg-type]
        return value  # type: ignore[return-value]

    # --- set-up, shutdown, fork --------------------------------------------------------
    def _make_headers(self, token: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if token:
            if not token.isprintable() or any(c.isspace() for c in token):
                raise ValueError("the push token contains spaces or control characters")
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _check_defaults(
        self, deployment: str | None, pipeline: str | None, execution_id: str | None
    ) -> dict[str, str]:
        given = dict(zip(protocol.PUSH_CONTEXT, (deployment, pipeline, execution_id), strict=True))
        defaults = {}
        for key, value in given.items():
            value = _env(key, value)
            if value is not None:
                defaults[key] = validate_name(f"{key} ({_ENV[key]})", value)
        return defaults

    def _queued(self) -> int:
        return max(0, len(self._queue) - (self._marks_added - self._marks_taken))

    def _held(self) -> int:
        return self._queued() + sum(len(r.items) for r in list(self._pending))

    def _shutdown(self, reason: str, timeout: float) -> None:
        if self._refused is not None:
            return
        deadline = time.monotonic() + timeout
        if self._held():
            self.flush(timeout)
        self._refused, self._room, self._stop = "closed", 0, True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        lost = self._abandon()
        if lost:
            self._counts[reason] += lost
            log.warning(
                "fleetgauge sdk: %d values recorded for the agent at %s were not delivered (%s)",
                lost,
                self.url,
                self._last_error,
            )
        self._close_connection()
        _clients.discard(self)

    def _abandon(self) -> int:
        """Give up every value still held (at close or exit); returns how many there were."""
        lost = sum(len(r.items) for r in self._pending)
        self._pending = []
        while True:
            try:
                entry = self._queue.popleft()
            except IndexError:
                break
            if entry[0] == _MARK:
                self._marks_taken += 1
                entry[1].settle(False)
            else:
                self._counts["taken"] += 1
                lost += 1
        marks, self._marks = self._marks, []
        for mark in marks:
            mark.settle(False)
        return lost

    def _after_fork_in_child(self) -> None:
        """The parent keeps sending what it queued; the child starts empty with its own thread."""
        if self._conn is not None and self._conn.sock is not None:
            self._conn.sock.close()
        self._queue.clear()
        self._counts = dict.fromkeys(self._counts, 0)
        self._room = self._max_queue
        self._init_sender()
        self._start()

    def _warn_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        if key in self._warned:
            log.debug(message, *args)
            return
        self._warned.add(key)
        log.warning(message + " (logged once; see stats())", *args, exc_info=exc_info)


class Execution:
    """One execution started by :meth:`MetricsClient.start_execution`.

    Its ``record_*`` and ``log_event`` methods are the client's with this
    execution's id and pipeline filled in. As a context manager it ends
    ``succeeded``, or ``failed`` when the block raises (the exception goes on).
    """

    def __init__(self, client: MetricsClient, execution_id: str, pipeline: str | None) -> None:
        self.client, self.execution_id, self.pipeline = client, execution_id, pipeline
        self.status = catalogue.RUNNING
        self._context: dict[str, Any] = {catalogue.EXECUTION_ID: execution_id}
        if pipeline is not None:
            self._context[catalogue.PIPELINE] = pipeline

    def __repr__(self) -> str:
        return f"Execution({self.execution_id!r}, pipeline={self.pipeline!r}, {self.status})"

    def record_metric_value(self, name: str, value: float, **context: Any) -> None:
        """:meth:`MetricsClient.record_metric_value` for this execution."""
        self.client.record_metric_value(name, value, **{**self._context, **context})

    def record_list_metric_values(
        self, name: str, values_or_value: Any, step: int | None = None, **context: Any
    ) -> None:
        """:meth:`MetricsClient.record_list_metric_values` for this execution."""
        self.client.record_list_metric_values(
            name, values_or_value, step, **{**self._context, **context}
        )

    def log_event(
        self,
        name: str,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **context: Any,
    ) -> None:
        """:meth:`MetricsClient.log_event` for this execution."""
        self.client.log_event(name, source, metadata, **{**self._context, **context})

    def finish(self, status: str = catalogue.SUCCEEDED, time: Any = None) -> None:
        """Record that this execution ended now (``succeeded`` or ``failed``); once only."""
        if self.status != catalogue.RUNNING:
            return
        self.status = status
        self.client.finish_execution(self.execution_id, status, self.pipeline, time)

    def __enter__(self) -> Execution:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.finish(catalogue.SUCCEEDED if kind is None else catalogue.FAILED)


# --- the default client and module-level helpers --------------------------------------
_clients: set[MetricsClient] = set()
_default: MetricsClient | None = None
_default_lock = threading.Lock()


def get_client() -> MetricsClient:
    """The default client, created from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MetricsClient()
        return _default


def configure(**settings: Any) -> MetricsClient:
    """Replace the default client by ``MetricsClient(**settings)``; the old one is closed."""
    global _default
    client = MetricsClient(**settings)
    with _default_lock:
        old, _default = _default, client
    if old is not None:
        old.close()
    return client


def record_metric_value(name: str, value: float, **context: Any) -> None:
    """Record one value on the default client (see :meth:`MetricsClient.record_metric_value`)."""
    (_default or get_client()).record_metric_value(name, value, **context)


def record_list_metric_values(
    name: str, values_or_value: Any, step: int | None = None, **context: Any
) -> None:
    """Record list-metric elements on the default client (see the method of the same name)."""
    (_default or get_client()).record_list_metric_values(name, values_or_value, step, **context)


def log_event(
    name: str, source: str | None = None, metadata: Mapping[str, Any] | None = None, **context: Any
) -> None:
    """Record an event on the default client (see :meth:`MetricsClient.log_event`)."""
    (_default or get_client()).log_event(name, source, metadata, **context)


def start_execution(
    pipeline: str | None = None,
    inputs: Mapping[str, Any] | None = None,
    execution_id: str | None = None,
    time: Any = None,
) -> Execution:
    """Start an execution on the default client (see :meth:`MetricsClient.start_execution`)."""
    return (_default or get_client()).start_execution(pipeline, inputs, execution_id, time)


def finish_execution(
    execution_id: str,
    status: str = catalogue.SUCCEEDED,
    pipeline: str | None = None,
    time: Any = None,
) -> None:
    """End an execution on the default client (see :meth:`MetricsClient.finish_execution`)."""
    (_default or get_client()).finish_execution(execution_id, status, pipeline, time)


def flush(timeout: float | None = None) -> bool:
    """Flush the default client (see :meth:`MetricsClient.flush`)."""
    return (_default or get_client()).flush(timeout)


def stats() -> dict[str, Any]:
    """Counts of the default client (see :meth:`MetricsClient.stats`)."""
    return (_default or get_client()).stats()


def _at_exit() -> None:
    for client in list(_clients):
        client._shutdown("undelivered_at_exit", client._exit_timeout)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for client in list(_clients):
        client._after_fork_in_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
