"""Push request bodies turned into validated points, or refused naming the item and field.

Every item of a request is checked before anything is kept (the rules are
:mod:`fleetgauge.protocol`'s): one bad item refuses the whole request with a
:class:`PushError` whose JSON answer ``{"error": ..., "index": N, "field": ...}``
names the item and the field at fault, so a client never has to guess what was
stored.

Every item taken is stamped with the agent's own tags (``environment``,
``worker`` and its extra ``tags``): which worker a value came from is the
agent's word, never the client's (an item may not set ``worker``), so values,
events and executions can be joined with that worker's resources.

Times. An item without ``time`` takes its arrival time. Both stores keep one
value per series and timestamp, so two values of one series whose times would
collide (equal, or going back by less than 1 ms, as a fast loop or two
threads produce) are moved apart by 1 ns: every accepted value is kept.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from itertools import repeat
from operator import lt, mul
from typing import Any, NamedTuple

import orjson

from fleetgauge import catalogue, protocol
from fleetgauge.catalogue import Point
from fleetgauge.timeutil import MAX_NS, NS_PER_S
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = ["PushError", "PushParser", "ProcessClaim", "ExecutionPoints"]

_TIE_WINDOW_NS = 1_000_000
_EXACT = 2**53  # an integer value below this converts to float exactly
_METRIC_KEYS = frozenset(protocol.PUSH_METRIC_KEYS)
_SERIES_KEYS = frozenset(protocol.PUSH_SERIES_KEYS)
_EVENT_KEYS = frozenset(protocol.PUSH_EVENT_KEYS)
_EXECUTION_KEYS = frozenset(protocol.PUSH_EXECUTION_KEYS)
_PROCESS_KEYS = frozenset(protocol.PUSH_PROCESS_KEYS)
_LOG_KEYS = frozenset(protocol.PUSH_LOG_KEYS)
_MAX_CACHED = 50_000


class PushError(Exception):
    """A refused request: HTTP status, message, and the item index and field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        index: int | None = None,
        field: str | None = None,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.index, self.field = status, message, index, field
        self.retry_after = retry_after  # seconds, sent as Retry-After
        self.reason = reason  # a refusal's kind, for clients that count them (series_limit)

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        body = {"error": self.message, "index": self.index, "field": self.field}
        if self.reason is not None:
            body["reason"] = self.reason
        return body


class ExecutionPoints(list[Point]):
    """The points of a ``/v1/executions`` body, and the execution id of each item in order."""

    def __init__(self) -> None:
        super().__init__()
        self.execution_ids: list[str] = []


class ProcessClaim(NamedTuple):
    """One checked ``/v1/processes`` item: which process says it works for what."""

    index: int
    pid: int
    start_time: float | None
    context: dict[str, str]


def _bad(index: int, field: str | None, message: str) -> PushError:
    where = f"item {index}" + (f", field {field!r}" if field else "")
    return PushError(400, f"{where}: {message}", index, field)


def _bad_series(index: int, field: str | None, message: str) -> PushError:
    where = f"series {index}" + (f", field {field!r}" if field else "")
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
    try:
        return protocol.item_time_ns(value)
    except InvalidPoint as e:
        raise _bad(index, "time", str(e)) from None


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

    def __init__(self, stamp: Mapping[str, str]) -> None:
        """``stamp``: the tags this agent puts on every item it takes: environment and
        worker, which a client cannot set, and the agent's extra tags, which an item's own
        tag of the same name overrides (it says more about that value)."""
        self.stamp = dict(stamp)
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
        if type(doc) is dict and protocol.PUSH_SERIES in doc:
            return self._columns(doc, now_ns)
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
                    if t > MAX_NS:
                        append(self._metric(i, item, now_ns))
                        continue
                else:
                    append(self._metric(i, item, now_ns))
                    continue
                t = self._unique((measurement, key), t)
                append(make(Point, (measurement, tags, {"value": value}, t)))
        return points

    def _columns(self, doc: dict[str, Any], now_ns: int) -> list[Point]:
        """Points for a columnar ``/v1/metrics`` body (``{"series": [...]}``).

        A series' first value goes through :meth:`_metric` as the item it stands
        for, which checks what the values share and keeps the tags; the rest take
        the inline checks of :meth:`metrics`, and any value they do not pass goes
        through :meth:`_metric` too, so an error names the series and the value.
        """
        listed = _items(doc, protocol.PUSH_SERIES)
        measurement = catalogue.PIPELINE_METRIC.name
        isfinite, make = math.isfinite, tuple.__new__
        points: list[Point] = []
        append = points.append
        total = 0
        with self._lock:
            for i, series in enumerate(listed):
                values, times = self._column(i, series)
                total += len(values)
                if total > protocol.MAX_PUSH_ITEMS:
                    limit = protocol.MAX_PUSH_ITEMS
                    raise PushError(413, f"{total}+ values in one request, limit {limit}", i)
                common = {k: v for k, v in series.items() if k != "values" and k != "times"}
                first = self._value_of(i, 0, common, values[0], times, now_ns)
                append(first)
                tags, raw_tags = first.tags, common.get("tags")
                key = (
                    (common.get("metric"), common.get(catalogue.DEPLOYMENT))
                    + (common.get(catalogue.PIPELINE), common.get(catalogue.EXECUTION_ID))
                    + (tuple(raw_tags.items()) if raw_tags is not None else None,)
                )
                series_key = (measurement, key)
                last = self._last_ns.get(series_key)  # _unique, inline: one series at a time
                rest = _plain_rest(values, times, last)
                if rest is not None:
                    rest_values, rest_ns = rest
                    rows = zip(repeat(measurement), repeat(tags), rest_values, rest_ns)
                    points.extend(map(make, repeat(Point), rows))
                    self._last_ns[series_key] = rest_ns[-1]
                    continue
                for j in range(1, len(values)):
                    value, t = values[j], None if times is None else times[j]
                    if type(value) is int and -_EXACT < value < _EXACT:
                        value = float(value)
                    if t is None:
                        t = now_ns
                    elif type(t) is float and 0.0 <= t < 1e10:
                        t = int(t * NS_PER_S)
                    else:
                        t = -1
                    if type(value) is not float or not isfinite(value) or not 0 <= t <= MAX_NS:
                        self._last_ns[series_key] = last
                        append(self._value_of(i, j, common, values[j], times, now_ns))
                        last = self._last_ns[series_key]
                        continue
                    if last is not None and last - _TIE_WINDOW_NS < t <= last:
                        t = last + 1
                    last = t
                    append(make(Point, (measurement, tags, {"value": value}, t)))
                self._last_ns[series_key] = last
        return points

    @staticmethod
    def _column(i: int, series: object) -> tuple[list[Any], list[Any] | None]:
        """The ``values`` and ``times`` of series ``i``, their shape checked."""
        if type(series) is not dict:
            raise _bad_series(i, None, f"must be a JSON object, got {_kind(series)}")
        if not _SERIES_KEYS.issuperset(series):
            extra = sorted(str(k) for k in series if k not in _SERIES_KEYS)[0]
            known = ", ".join(sorted(_SERIES_KEYS))
            raise _bad_series(i, extra, f"unknown field (known: {known}; step: send items)")
        values, times = series.get("values"), series.get("times")
        if type(values) is not list or not values:
            got = "an empty list" if values == [] else _kind(values)
            raise _bad_series(i, "values", f"must be a non-empty list of numbers, got {got}")
        if times is not None and (type(times) is not list or len(times) != len(values)):
            raise _bad_series(i, "times", f"must be a list of {len(values)} times, as 'values'")
        return values, times

    def _value_of(
        self,
        i: int,
        j: int,
        common: dict[str, Any],
        value: object,
        times: list[Any] | None,
        now_ns: int,
    ) -> Point:
        """Value ``j`` of series ``i`` as the item it stands for; an error names both."""
        item = {**common, "value": value, "time": None if times is None else times[j]}
        try:
            return self._metric(j, item, now_ns)
        except PushError as e:
            where = f"series {i}, value {j}"
            message = where + e.message.removeprefix(f"item {j}")
            raise PushError(e.status, message, i, e.field) from None

    def events(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/events`` body; PushError for the first bad item."""
        items = _items(doc, "events")
        with self._lock:
            return [self._event(i, item, now_ns) for i, item in enumerate(items)]

    def executions(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/executions`` body; PushError for the first bad item.

        An item with status ``running`` starts an execution (its id is made up
        when not given; the answer lists the ids) with its ``inputs``;
        ``succeeded`` or ``failed`` ends one, which needs its ``execution_id``,
        with its ``outputs``. Any of them may carry ``tags`` (names to text);
        an item with ``tags`` and no status only changes the tags (null
        removes one). Tags are a point of their own, after the start or end.
        """
        items = _items(doc, "executions")
        points = ExecutionPoints()
        with self._lock:
            for i, item in enumerate(items):
                found = self._execution(i, item, now_ns)
                points.extend(found)
                points.execution_ids.append(found[0].tags[catalogue.EXECUTION_ID])
        return points

    def logs(self, doc: object, now_ns: int) -> list[Point]:
        """Points for a ``/v1/logs`` body; PushError for the first bad item. A message
        longer than 16 KiB is cut and the bytes cut counted in ``cut_bytes``, not refused."""
        items = _items(doc, "logs")
        with self._lock:
            return [self._log(i, item, now_ns) for i, item in enumerate(items)]

    def _log(self, i: int, item: object, now_ns: int) -> Point:
        if type(item) is not dict:
            raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
        if not _LOG_KEYS.issuperset(item):
            raise _unknown(i, item, _LOG_KEYS)
        message = item.get("message")
        if type(message) is not str:
            raise _bad(i, "message", f"must be text, got {_kind(message)}")
        get = item.get
        key = (
            "log",
            get("level"),
            get(catalogue.LOGGER),
            *(get(k) for k in protocol.PUSH_CONTEXT),
        )
        try:
            tags = self._tags.get(key)
        except TypeError:  # an unhashable value somewhere: the checks below name it
            tags = None
        if tags is None:
            try:
                level = protocol.log_level(get("level"))
            except InvalidPoint as e:
                raise _bad(i, "level", str(e)) from None
            logger = get(catalogue.LOGGER)
            tags = {
                **self.stamp,
                catalogue.LEVEL: level,
                catalogue.LOGGER: "root" if logger is None else _name(i, catalogue.LOGGER, logger),
            }
            self._context(i, item, tags)
            if not any(k in tags for k in protocol.PUSH_CONTEXT):
                raise _bad(
                    i,
                    catalogue.EXECUTION_ID,
                    "a log line needs an 'execution_id', a 'pipeline' or a 'deployment'",
                )
            tags = self._remember(key, tags)
        text, cut = protocol.cut_message(message)
        before = get("cut_bytes")
        if before is not None:
            if type(before) is not int or not 0 <= before < protocol.MAX_STEP:
                raise _bad(i, "cut_bytes", f"must be a count of bytes, got {before!r}")
            cut += before
        fields: dict[str, Any] = {"message": text}
        if cut:
            fields["cut_bytes"] = cut
        t = self._unique(key, _time(i, get("time"), now_ns))
        return Point(catalogue.LOG.name, tags, fields, t)

    def processes(self, doc: object) -> list[ProcessClaim]:
        """The items of a ``/v1/processes`` body, checked; PushError for the first bad one.

        Only their form is checked here; whether the process is there to be seen is the
        registry's question (:mod:`fleetgauge.agent.collectors.process`).
        """
        found = []
        for i, item in enumerate(_items(doc, "processes", protocol.MAX_PUSH_PROCESSES)):
            if type(item) is not dict:
                raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
            if not _PROCESS_KEYS.issuperset(item):
                raise _unknown(i, item, _PROCESS_KEYS)
            pid = item.get("pid")
            if type(pid) is not int or not 0 < pid < 2**31:
                raise _bad(i, "pid", f"must be a positive integer, got {pid!r}")
            started = item.get("start_time")
            if started is not None and (type(started) not in (int, float) or not 0 <= started):
                raise _bad(i, "start_time", f"must be epoch seconds, got {started!r}")
            context: dict[str, str] = {}
            self._context(i, item, context)
            if not context:
                raise _bad(
                    i,
                    catalogue.DEPLOYMENT,
                    "a process is registered for a 'deployment', a 'pipeline' or an 'execution_id'",
                )
            found.append(ProcessClaim(i, pid, None if started is None else float(started), context))
        return found

    def _execution(self, i: int, item: object, now_ns: int) -> list[Point]:
        if type(item) is not dict:
            raise _bad(i, None, f"must be a JSON object, got {_kind(item)}")
        if not _EXECUTION_KEYS.issuperset(item):
            raise _unknown(i, item, _EXECUTION_KEYS)
        status, given_tags = item.get("status"), item.get("tags")
        if status not in catalogue.EXECUTION_STATUSES and not (
            status is None and given_tags is not None
        ):
            known = ", ".join(catalogue.EXECUTION_STATUSES)
            raise _bad(
                i,
                "status",
                f"must be one of {known} (or left out by an item that only sets 'tags'),"
                f" got {status!r}",
            )
        t = _time(i, item.get("time"), now_ns)
        tags = {
            **self.stamp,
            catalogue.PIPELINE: _name(i, catalogue.PIPELINE, item.get(catalogue.PIPELINE)),
        }
        given = item.get(catalogue.EXECUTION_ID)
        if given is None and status == catalogue.RUNNING:
            given = protocol.new_execution_id(t)
        tags[catalogue.EXECUTION_ID] = _name(i, catalogue.EXECUTION_ID, given)
        for key, allowed in (("inputs", True), ("defaults", True), ("outputs", None)):
            if item.get(key) is not None and (status == catalogue.RUNNING) != (allowed is not None):
                when = "starts (running)" if allowed else "ends (succeeded or failed)"
                raise _bad(i, key, f"{key} are given when the execution {when}")
        points = []
        if status == catalogue.RUNNING:
            inputs = self._json(i, "inputs", protocol.inputs_json, item.get("inputs") or {})
            start = {"inputs": inputs}
            if item.get("defaults") is not None:
                given = item["defaults"]
                start["defaults"] = self._json(i, "defaults", protocol.inputs_json, given)
            points.append(Point(catalogue.EXECUTION.name, tags, start, t))
        elif status is not None:
            fields = {"status": status}
            if item.get("outputs") is not None:
                fields["outputs"] = self._json(i, "outputs", protocol.outputs_json, item["outputs"])
            points.append(Point(catalogue.EXECUTION_END.name, tags, fields, t))
        if given_tags is not None:
            text = self._json(i, "tags", protocol.execution_tags_json, given_tags)
            key = (catalogue.EXECUTION_TAG.name, *sorted(tags.items()))
            t = self._unique(key, t)  # two writes in one instant both stay
            points.append(Point(catalogue.EXECUTION_TAG.name, tags, {"tags": text}, t))
        return points

    @staticmethod
    def _json(i: int, key: str, encode: Any, value: object) -> str:
        try:
            return str(encode(value))
        except InvalidPoint as e:
            raise _bad(i, key, str(e)) from None

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
            **self.stamp,
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
            **self.stamp,
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
        elif protocol.too_deep(metadata):
            limit = protocol.MAX_NESTING
            raise _bad(i, "metadata", f"nests objects or lists deeper than {limit} levels")
        text = orjson.dumps(metadata).decode()
        if len(text.encode()) > protocol.MAX_EVENT_METADATA_BYTES:
            limit = protocol.MAX_EVENT_METADATA_BYTES
            raise _bad(i, "metadata", f"is {len(text.encode())} bytes as JSON (limit {limit})")
        key = (catalogue.EVENT.name, *sorted(tags.items()))
        t = self._unique(key, _time(i, item.get("time"), now_ns))
        return Point(catalogue.EVENT.name, tags, {"metadata": text}, t)

    def forget_idle(self, now_ns: int, idle_ns: int) -> None:
        """Forget the cached tag sets, and the last times of series idle for ``idle_ns``."""
        oldest = now_ns - idle_ns
        with self._lock:
            self._tags.clear()  # (clear() gives the table back; the hot path holds its .get)
            self._last_ns = {k: t for k, t in self._last_ns.items() if t >= oldest}

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


def _plain_rest(
    values: list[Any], times: list[Any] | None, last: int | None
) -> tuple[list[dict[str, float]], list[int]] | None:
    """The fields and times of a series' values after its first, when all are plain.

    Plain: every value a finite float (or an exactly convertible int), every time
    epoch seconds as a float. The checks run over the whole column at once (C
    loops, not a Python loop per value); None when any fails: the per-value loop
    then takes the series and names the value at fault. ``last`` is the series'
    last time: the times are moved apart by the same rule as the loop's.
    """
    if times is None or len(values) < 2:
        return None
    rest, stamps = values[1:], times[1:]
    kinds = set(map(type, rest))
    if kinds != _FLOAT_ONLY:
        if not kinds <= _NUMBER_TYPES or not -_EXACT < min(rest) <= max(rest) < _EXACT:
            return None
        rest = list(map(float, rest))
    if not all(map(math.isfinite, rest)):
        return None
    if set(map(type, stamps)) != _FLOAT_ONLY or not 0.0 <= min(stamps) <= max(stamps) < 1e10:
        return None
    ns = list(map(int, map(mul, stamps, repeat(NS_PER_S))))
    if max(ns) > MAX_NS:
        return None
    if last is not None and last >= ns[0] or not all(map(lt, ns, ns[1:])):
        ns = _untied(ns, last)
    return [{"value": v} for v in rest], ns


def _untied(ns: list[int], last: int | None) -> list[int]:
    """``ns`` with the tie rule applied in order (see :meth:`PushParser._unique`)."""
    out: list[int] = []
    append = out.append
    for t in ns:
        if last is not None and last - _TIE_WINDOW_NS < t <= last:
            t = last + 1
        last = t
        append(t)
    return out


_FLOAT_ONLY = {float}
_NUMBER_TYPES = {float, int}


def _items(doc: object, key: str, limit: int = protocol.MAX_PUSH_ITEMS) -> list[Any]:
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
    if len(items) > limit:
        raise PushError(413, f"{len(items)} items in one request, limit {limit}", None, key)
    return items
