"""The sender: a client's queue and the daemon thread that delivers it to the agent.

Recording calls append tuples to :attr:`Sender.queue` while it has room; the
thread takes up to ``batch_size`` of them at a time, turns them into items
(:class:`~fleetgauge.sdk.items.ItemBuilder`; a value the agent would refuse is
dropped and counted as ``invalid``), and POSTs them to the push endpoint over one
kept-alive HTTP connection. While the agent reads one batch the thread builds
the next. A refused request (4xx) is dropped and counted, as are values the agent
refuses because they start a series over its limit (``series_limit``, from a 202
or a 429 naming it); a failed one (no
answer, 408, 429, 5xx: the agent answers 503 while it can neither store nor
spool) is kept and sent again under the same ``Idempotency-Key`` with backoff
(0.2 s doubling to 5 s, or the agent's ``Retry-After`` when longer), so the
agent stores it once. The queue plus the batches in flight never hold more than
``max_queue`` values: when full, the oldest queued values make room for new
ones and are counted as ``queue_full``.

Normal process exit (``atexit``) delivers what is queued within the client's
``exit_timeout``; what cannot be delivered is counted and logged in one line.
After ``os.fork`` a child's senders start anew with empty queues; the parent's
keep sending what the parent queued.

The sender also tells the agent which process it is (``POST /v1/processes``:
pid, start time and the deployment, pipeline or execution of the latest values
sent), before the first batch, whenever that context changes and every
``REGISTER_EVERY_S`` (an agent restarted meanwhile has forgotten it), so the
agent can sample the process's CPU, memory and GPU use under that context. A
registration the agent refuses (another PID namespace, an older agent) is
logged once; the values are sent all the same.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import deque
from typing import Any, NamedTuple

import orjson

from fleetgauge import catalogue, procinfo, protocol
from fleetgauge.sdk.items import (
    EVENT,
    EXECUTION,
    LIST,
    LOG,
    MARK,
    METRIC,
    ItemBuilder,
    LogLimit,
    plain_number,
    series_key,
)
from fleetgauge.sdk.transport import AgentUnreachable, Connection, Target
from fleetgauge.timeutil import NS_PER_S

__all__ = ["Sender", "DROP_REASONS"]

log = logging.getLogger("fleetgauge.sdk")

_KINDS = {
    METRIC: "metric value",
    LIST: "list metric value",
    EVENT: "event",
    EXECUTION: "execution",
    LOG: "log line",
}
_MAX_WARNED = 200  # distinct warnings a sender keeps track of (then one more, then quiet)

DROP_REASONS = (
    "queue_full",
    "invalid",
    "rejected",
    "closed",
    "misconfigured",
    "series_limit",
    "log_limit",
    "undelivered_at_close",
    "undelivered_at_exit",
)
"""Why values were given up: ``stats()["dropped"]`` has one count per reason."""

_MAX_BODY_BYTES = 1024 * 1024  # well under the endpoint's default limit
REGISTER_EVERY_S = 60.0
"""Seconds between registrations of an unchanged context (while values are sent)."""
_BACKOFF_S = (0.2, 5.0)


class _Mark:
    """A ``flush()`` waiting for everything queued before it to be settled."""

    __slots__ = ("done", "delivered")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.delivered = False

    def settle(self, delivered: bool) -> None:
        self.delivered = delivered
        self.done.set()


Plain = tuple[dict[str, Any], tuple[Any, ...], float, int]
"""A metric value recorded with no context of its own, as the sender keeps it until it is
sent: its name's item template (:attr:`ItemBuilder.plain`), series key, value and time in
nanoseconds. The columnar body is made from these without an item per value."""


class _Request(NamedTuple):
    """One request in flight: endpoint, body key, items (for metrics, items or
    :data:`Plain` values), the id the agent dedupes on, and for metrics each item's
    series (:func:`~fleetgauge.sdk.items.series_key`)."""

    path: str
    key: str
    items: list[Any]
    id: str
    series: list[tuple[Any, ...] | None] | None


def _request(
    path: str,
    key: str,
    items: list[Any],
    series: list[tuple[Any, ...] | None] | None = None,
) -> _Request:
    return _Request(path, key, items, os.urandom(16).hex(), series)


def _item(element: Any) -> dict[str, Any]:
    """The push item of an element of a request's items (a :data:`Plain` value or an item)."""
    if type(element) is not tuple:
        return element  # type: ignore[no-any-return]
    item = element[0].copy()
    item["value"], item["time"] = element[2], element[3] / NS_PER_S
    return item


class Sender:
    """One client's queue, counts and delivery thread.

    ``refused`` makes a sender that takes nothing (a misconfigured client): every
    value is dropped under that reason and no thread runs.
    """

    def __init__(
        self,
        target: Target | None,
        headers: dict[str, str],
        builder: ItemBuilder | None,
        *,
        shown_url: str,
        max_queue: int,
        batch_size: int,
        flush_interval: float,
        timeout: float,
        exit_timeout: float,
        refused: str | None = None,
        register_process: bool = True,
    ) -> None:
        self.queue: deque[tuple[Any, ...]] = deque()
        self.max_queue = self.room = max_queue
        self.url = shown_url
        self.exit_timeout = exit_timeout
        self.refused = refused  # set when calls are dropped: closed or misconfigured
        self._headers, self._builder = headers, builder
        self._connection = None if target is None else Connection(target, timeout)
        self._batch_size = min(batch_size, protocol.MAX_PUSH_ITEMS)
        self.full = self._batch_size - 1
        """The queue's length when one more value makes a full batch: the recording call
        that adds it wakes the thread (:meth:`wake`)."""
        self._interval, self._timeout = flush_interval, timeout
        self.counts = dict.fromkeys(("sent", "taken", *DROP_REASONS), 0)
        self._register_process = register_process
        self._warned: set[str] = set()
        self._last_error = "none"
        self._init_thread()
        if refused is None:
            self._thread.start()
            _senders.add(self)
        else:
            self.room = 0

    # --- the recording side -------------------------------------------------------
    def wake(self) -> None:
        """A full batch waits: send it now rather than at the thread's next tick."""
        self._wake.set()

    def overflow(self, entries: list[tuple[Any, ...]]) -> None:
        """Entries a recording call found no room for: oldest queued values make way for them.

        A closed or misconfigured sender drops them instead. Values in batches
        already in flight are kept (the agent may have them); when nothing
        queued can make way, the new entries are the ones dropped.
        """
        if self.refused is not None:
            self.counts[self.refused] += len(entries)
            return
        queue, marks, evicted = self.queue, [], 0
        while evicted < len(entries):
            try:
                entry = queue.popleft()
            except IndexError:  # taken by the sender meanwhile, or only batches in flight
                break
            if entry[0] == MARK:  # a flush() waiting: it stays ahead of what comes after it
                marks.append(entry)
            else:
                evicted += 1
        queue.extendleft(reversed(marks))
        queue.extend(entries[:evicted])
        self.counts["queue_full"] += len(entries)
        self._warn_once(
            "queue_full",
            "fleetgauge sdk: queue of %d values is full (agent at %s slow or down);"
            " dropping the oldest",
            self.max_queue,
            self.url,
        )

    def overflow_one(self, entry: tuple[Any, ...]) -> None:
        """:meth:`overflow` of one entry, what a recording call meets while the agent is down:
        the oldest queued value makes way, without the general case's bookkeeping, so a
        model thread recording into a full queue pays little more than into an empty one."""
        if self.refused is None and "queue_full" in self._warned:
            queue = self.queue
            try:
                oldest = queue.popleft()
            except IndexError:
                oldest = None
            if oldest is not None:
                if oldest[0] != MARK:
                    queue.append(entry)
                    self.counts["queue_full"] += 1
                    return
                queue.appendleft(oldest)
        self.overflow([entry])

    def flush(self, timeout: float | None) -> bool:
        """Wait (at most ``timeout`` s) until all queued so far is settled; see the client."""
        if self.refused is not None or not self._thread.is_alive():
            return self._held() == 0 and self.refused != "misconfigured"
        mark = _Mark()
        with self._marks_lock:
            self._marks_added += 1
        self.queue.append((MARK, mark))
        if self._stop:  # closed meanwhile: nobody will settle the mark
            return False
        self._flush_requested = True
        self._wake.set()
        return mark.done.wait(timeout) and mark.delivered

    def close(self, reason: str, timeout: float) -> None:
        """Flush within ``timeout``, stop the thread; what is left is counted under ``reason``."""
        if self.refused is not None:
            return
        deadline = time.monotonic() + timeout
        if self._held():
            self.flush(timeout)
        self.refused, self.room, self._stop = "closed", 0, True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        lost = self._abandon()
        if lost:
            self.counts[reason] += lost
            log.warning(
                "fleetgauge sdk: %d values recorded for the agent at %s were not delivered (%s)",
                lost,
                self.url,
                self._last_error,
            )
        if self._connection is not None:
            self._connection.close()
        _senders.discard(self)

    def stats(self) -> dict[str, Any]:
        """Counts so far; see :meth:`MetricsClient.stats`."""
        counts = dict(self.counts)
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

    def after_fork_in_child(self) -> None:
        """The parent keeps sending what it queued; the child starts empty with its own thread."""
        if self._connection is not None:
            self._connection.drop_after_fork()
        self.queue.clear()
        self.counts = dict.fromkeys(self.counts, 0)
        self.room = self.max_queue
        self._init_thread()
        self._thread.start()

    # --- the thread ---------------------------------------------------------------
    def _init_thread(self) -> None:
        self._pending: list[_Request] = []
        self._registration: dict[str, Any] | None = None  # to send before the next batch
        self._registered: dict[str, str] | None = None
        self._register_at = 0.0
        self._pid, self._started = os.getpid(), procinfo.start_time(os.getpid())
        self._marks: list[_Mark] = []
        self._marks_lock = threading.Lock()
        self._marks_added = self._marks_taken = 0
        self._wake = threading.Event()
        self._flush_requested = self._stop = False
        self._delay = self._retry_at = 0.0
        self._thread = threading.Thread(target=self._run, name="fleetgauge-sdk", daemon=True)

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
        queue = self.queue
        n = min(len(queue), self._batch_size)
        if n == 0:
            return False
        in_flight = self._in_flight()
        # Before popping, so that queue and batches never exceed max_queue. The batch is
        # popped first, in one tight loop, and the room made exact again: a recording call
        # meets this smaller room for microseconds, not while the items are built (which
        # dropped values of a queue that still had room).
        self.room = self.max_queue - in_flight - n
        entries: list[tuple[Any, ...]] = []
        popleft, append = queue.popleft, entries.append
        with contextlib.suppress(IndexError):  # emptied by close() or an overflow meanwhile
            for _ in range(n):
                append(popleft())
        self.room = self.max_queue - in_flight - len(entries)
        builder = self._builder
        assert builder is not None  # a sender without one never starts its thread
        metrics: list[Any] = []  # items, and Plain values
        events: list[dict[str, Any]] = []
        executions: list[dict[str, Any]] = []
        logs: list[dict[str, Any]] = []
        series: list[tuple[Any, ...] | None] = []  # each metric item's
        plain = builder.plain
        taken = 0
        for entry in entries:
            kind = entry[0]
            if kind == MARK:  # a flush() waiting: what came after it goes back, in order
                self._marks.append(entry[1])
                self._marks_taken += 1
                queue.extendleft(reversed(entries[taken + 1 :]))
                self.room = self.max_queue - in_flight - taken
                break
            taken += 1
            if kind == METRIC and entry[4] is None and type(entry[2]) is str:
                shape = plain.get(entry[2])
                if shape is not None and (value := plain_number(entry[3])) is not None:
                    metrics.append((shape[0], shape[1], value, entry[1]))
                    series.append(shape[1])
                    continue
            try:
                if entry[0] == LOG:
                    logs.append(builder.log(entry))
                elif entry[0] == EVENT:
                    events.append(builder.event(entry))
                elif entry[0] == EXECUTION:
                    executions.append(item := builder.execution(entry))
                    if item.get("status") in catalogue.END_STATUSES:
                        builder.execution_ended(entry[2], item[catalogue.PIPELINE])
                else:
                    metrics.append(builder.metric(entry))
                    series.append(builder.series_key)
            except LogLimit:
                self.counts["log_limit"] += 1
            except Exception as e:  # InvalidPoint, or garbage failing in its own way
                self.counts["invalid"] += 1
                self._report_invalid(entry, e)
        self.counts["taken"] += taken
        if builder.notices:
            logs += builder.notices
            builder.notices = []
        if self._register_process:
            self._note_context(metrics, executions)
        self._pending.extend(
            _request(path, key, items, keys)
            for path, key, items, keys in (
                (protocol.PUSH_EXECUTIONS_PATH, "executions", executions, None),
                (protocol.PUSH_METRICS_PATH, "metrics", metrics, series),
                (protocol.PUSH_EVENTS_PATH, "events", events, None),
                (protocol.PUSH_LOGS_PATH, "logs", logs, None),
            )
            if items
        )
        held = len(metrics) + len(events) + len(executions) + len(logs)
        self.room = self.max_queue - in_flight - held
        return True

    def _note_context(
        self, metrics: list[dict[str, Any]], executions: list[dict[str, Any]]
    ) -> None:
        """Have the process registered before the batch when its context is new (or due)."""
        context: dict[str, str] = {}
        last = metrics[-1] if metrics else None
        if type(last) is tuple:  # a Plain value: its template has its context
            last = last[0]
        executions = [e for e in executions if "status" in e]  # not changes of tags
        if executions and executions[-1]["status"] == catalogue.RUNNING:
            last = executions[-1]  # an execution starting: the process works for it now
        if last is not None:
            context = {k: last[k] for k in protocol.PUSH_CONTEXT if last.get(k) is not None}
        elif executions:  # an execution ended: back to the client's own context
            assert self._builder is not None
            context = dict(self._builder.defaults)
        if not context:
            return
        if context != self._registered or time.monotonic() >= self._register_at:
            item: dict[str, Any] = {"pid": self._pid, **context}
            if self._started is not None:
                item["start_time"] = self._started
            self._registration = item

    def _register(self) -> bool:
        """Send the registration due; False (and a retry later) when the agent failed."""
        assert self._connection is not None and self._registration is not None
        item = self._registration
        body = orjson.dumps({"processes": [item]})
        try:
            status, data, retry_after = self._connection.post(
                protocol.PUSH_PROCESSES_PATH, body, self._headers, lambda: None
            )
        except AgentUnreachable as e:
            return self._failed(str(e))
        if status == 408 or (status >= 500 and status != 501):
            return self._failed(f"HTTP {status}: {_error(data)}", retry_after)
        if status >= 300:  # refused: retrying now cannot help, and the values still go
            self._warn_once(
                "registration",
                "fleetgauge sdk: agent at %s did not register this process (HTTP %d): %s;"
                " its values are sent all the same",
                self.url,
                status,
                _error(data),
            )
        self._registration = None
        self._registered = {k: v for k, v in item.items() if k in protocol.PUSH_CONTEXT}
        self._register_at = time.monotonic() + REGISTER_EVERY_S
        return True

    def _in_flight(self) -> int:
        return sum(len(r.items) for r in self._pending)

    def _take_ahead(self) -> None:
        """While the agent reads the last batch in flight, build the next one from the queue."""
        if len(self._pending) == 1 and not self._stop:
            self._take()

    def _send_pending(self) -> bool:
        """Send the requests in flight; False (and a retry later) when the agent failed."""
        assert self._connection is not None
        if self._registration is not None and not self._register():
            return False
        while self._pending:
            request = self._pending[0]
            series = request.key == "metrics" and self._connection.takes_series
            body = _columns(request.items, request.series) if series else None
            columnar = body is not None
            if body is None:
                body = orjson.dumps({request.key: list(map(_item, request.items))})
            if len(body) > _MAX_BODY_BYTES and len(request.items) > 1:
                self._split_first()
                continue
            headers = {**self._headers, protocol.PUSH_IDEMPOTENCY_HEADER: request.id}
            try:
                status, data, retry_after = self._connection.post(
                    request.path, body, headers, self._take_ahead
                )
            except AgentUnreachable as e:
                return self._failed(str(e))
            if status < 300:
                refused = _series_refused(data)
                self.counts["sent"] += len(request.items) - refused
                if refused:
                    self._series_limit(refused)
                self._pending.pop(0)
            elif status == 413 and len(request.items) > 1:
                self._split_first()
            elif columnar and status == 400 and _body_refused(data):
                self._connection.takes_series = False  # an older agent now: the batch as items
                continue
            elif status == 429 and b'"series_limit"' in data:
                self._series_limit(len(request.items), _error(data))
                self._pending.pop(0)
            elif status in (408, 429) or status >= 500:
                return self._failed(f"HTTP {status}: {_error(data)}", retry_after)
            else:
                self._refuse(request, status, data)
            self.room = self.max_queue - self._in_flight()
        if self._delay:
            log.info("fleetgauge sdk: agent at %s reachable again", self.url)
        self._delay = self._retry_at = 0.0
        return True

    def _series_limit(self, n: int, error: str = "") -> None:
        """The agent refused ``n`` values of new series (its series limit): counted, not retried."""
        self.counts["series_limit"] += n
        self._warn_once(
            "series_limit",
            "fleetgauge sdk: agent at %s refused values of new series (its limit of active"
            " series): %s",
            self.url,
            error or f"{n} values",
        )

    def _split_first(self) -> None:
        r = self._pending[0]
        half = len(r.items) // 2
        series = r.series or [None] * len(r.items)
        self._pending[0:1] = [
            _request(r.path, r.key, r.items[:half], series[:half]),
            _request(r.path, r.key, r.items[half:], series[half:]),
        ]

    def _failed(self, error: str, retry_after: float | None = None) -> bool:
        self._last_error = error
        if not self._delay:
            self._warn_once(
                "unreachable",
                "fleetgauge sdk: agent at %s unreachable (%s); retrying, holding at most %d values",
                self.url,
                error,
                self.max_queue,
            )
        self._delay = min(_BACKOFF_S[1], self._delay * 2) if self._delay else _BACKOFF_S[0]
        jitter = 0.5 + int.from_bytes(os.urandom(2)) / 131_072  # 0.5 to 1.0
        self._retry_at = time.monotonic() + max(self._delay * jitter, retry_after or 0.0)
        return False

    def _refuse(self, request: _Request, status: int, data: bytes) -> None:
        """The agent refused a request (4xx): retrying cannot help, so drop and count it."""
        error = _error(data)
        self._warn_once(
            "rejected",
            "fleetgauge sdk: agent at %s refused %d values (HTTP %d): %s",
            self.url,
            len(request.items),
            status,
            error,
        )
        self.counts["rejected"] += len(request.items)
        self._pending.pop(0)

    def _settle_marks(self) -> None:
        marks, self._marks = self._marks, []
        for mark in marks:
            mark.settle(True)

    # --- what is held -------------------------------------------------------------
    def _queued(self) -> int:
        return max(0, len(self.queue) - (self._marks_added - self._marks_taken))

    def _held(self) -> int:
        return self._queued() + sum(len(r.items) for r in list(self._pending))

    def _abandon(self) -> int:
        """Give up every value still held (at close or exit); returns how many there were."""
        lost = sum(len(r.items) for r in self._pending)
        self._pending = []
        while True:
            try:
                entry = self.queue.popleft()
            except IndexError:
                break
            if entry[0] == MARK:
                self._marks_taken += 1
                entry[1].settle(False)
            else:
                self.counts["taken"] += 1
                lost += 1
        marks, self._marks = self._marks, []
        for mark in marks:
            mark.settle(False)
        return lost

    def _report_invalid(self, entry: tuple[Any, ...], error: Exception) -> None:
        """One warning per name and reason (``correct``: value must be a number, got str)."""
        kind = _KINDS.get(entry[0], "value")
        # an execution: its pipeline; a log line: its logger (its message may be long)
        name = entry[3] if kind == "execution" else entry[4] if kind == "log line" else entry[2]
        reason = str(error)
        key = f"invalid {kind} {name!r}: {reason}"
        if len(self._warned) >= _MAX_WARNED:  # bounded, whatever the names and reasons
            key = "invalid: too many kinds"
        self._warn_once(key, "fleetgauge sdk: dropped an invalid %s of %r: %s", kind, name, reason)

    def _warn_once(self, key: str, message: str, *args: Any, exc_info: bool = False) -> None:
        if key in self._warned:
            log.debug(message, *args)
            return
        self._warned.add(key)
        log.warning(message + " (logged once; see stats())", *args, exc_info=exc_info)


def _columns(items: list[Any], series: list[tuple[Any, ...] | None] | None) -> bytes | None:
    """``/v1/metrics``' columnar body of metric ``items`` (items or :data:`Plain` values;
    one series per metric and context, in first-seen order), or None when one is a list
    metric's (a ``step``). ``series``: each item's series key, None where it has a step."""
    if series is None or len(series) != len(items):
        series = [_series_of(item) for item in items]
    found: dict[tuple[Any, ...], tuple[list[Any], list[Any]]] = {}
    shapes: list[dict[str, Any]] = []
    for item, key in zip(items, series, strict=True):
        if key is None:
            return None
        columns = found.get(key)
        if columns is None:
            columns = found[key] = ([], [])
            shape = {k: v for k, v in _item(item).items() if k != "value" and k != "time"}
            shape["values"], shape["times"] = columns
            shapes.append(shape)
        if type(item) is tuple:
            columns[0].append(item[2])
            columns[1].append(item[3] / NS_PER_S)
        else:
            columns[0].append(item["value"])
            columns[1].append(item["time"])
    return orjson.dumps({protocol.PUSH_SERIES: shapes})


def _series_of(element: Any) -> tuple[Any, ...] | None:
    """The series key of a request's element; None for a list metric's item (a ``step``)."""
    if type(element) is tuple:
        return element[1]  # type: ignore[no-any-return]
    return None if "step" in element else series_key(element)


def _body_refused(data: bytes) -> bool:
    """A 400 about the body as a whole (no item named): an agent that predates a form."""
    try:
        return orjson.loads(data).get("index", 0) is None
    except (orjson.JSONDecodeError, AttributeError):
        return False


def _series_refused(data: bytes) -> int:
    """Values of an accepted batch that the agent refused for its series limit."""
    if b"refused" not in data:
        return 0
    try:
        return int(orjson.loads(data)["refused"].get("series_limit", 0))
    except Exception:
        return 0


def _error(data: bytes) -> str:
    """The agent's reason in an error answer (its JSON ``error``, else the start of the body)."""
    try:
        return str(orjson.loads(data)["error"])[:300]
    except Exception:
        return data[:200].decode(errors="replace")


_senders: set[Sender] = set()


def _at_exit() -> None:
    for sender in list(_senders):
        sender.close("undelivered_at_exit", sender.exit_timeout)


def _after_fork_in_child() -> None:
    for sender in list(_senders):
        sender.after_fork_in_child()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
