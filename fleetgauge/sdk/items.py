"""Recorded entries turned into push items, checked with the agent's own rules first.

A recording call only queues a tuple (its kind, the time, what it was given);
the sender thread turns each into an item of the push protocol
(:mod:`fleetgauge.protocol`) here. The agent refuses a whole request for one bad
item, so a value it would refuse raises InvalidPoint here instead, and the
sender drops and counts it alone.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from fleetgauge import catalogue, protocol
from fleetgauge.timeutil import NS_PER_S, datetime_to_ns, parse_time
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = [
    "METRIC",
    "LIST",
    "EVENT",
    "MARK",
    "EXECUTION",
    "LOG",
    "MAX_LOG_LINES",
    "LogLimit",
    "ItemBuilder",
    "number",
    "plain_number",
    "time_ns",
    "as_values",
    "metadata_json",
]

METRIC, LIST, EVENT, MARK, EXECUTION, LOG = 0, 1, 2, 3, 4, 5
"""Kinds of queued entries: the first element of every tuple in a client's queue."""
MAX_LOG_LINES = 100_000
"""Log lines one client sends per execution; later ones are dropped as ``log_limit`` and,
when the execution ends, one line says how many."""
_LOG_CONTEXT = frozenset({*protocol.PUSH_CONTEXT, "time"})
_LEVELS = frozenset(catalogue.LOG_LEVELS)


class LogLimit(Exception):
    """A log line over its execution's :data:`MAX_LOG_LINES`."""


_MAX_CACHED = 10_000
_METRIC_CONTEXT = frozenset({*protocol.PUSH_CONTEXT, "time", "tags"})
_EVENT_CONTEXT = frozenset({*protocol.PUSH_CONTEXT, "time"})


def number(value: object) -> float:
    """A recorded value as a finite float: numbers of any library; a boolean (Python's,
    numpy's) is 1.0 or 0.0, so ``record_metric_value("correct", pred == label)`` works."""
    if type(value) is float:
        result = value
    elif type(value) is int:
        try:
            result = float(value)
        except OverflowError:
            raise InvalidPoint(f"value {value} is too large for a float") from None
    elif isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        result = 1.0 if value else 0.0  # numpy's bool_ (named bool in numpy 2) too
    elif isinstance(value, str | bytes):
        raise InvalidPoint(f"value must be a number, got {type(value).__name__}")
    else:
        try:
            result = float(value)  # type: ignore[arg-type]  # numpy, torch and Decimal scalars
        except (TypeError, ValueError, OverflowError):
            raise InvalidPoint(f"value must be a number, got {type(value).__name__}") from None
    if not math.isfinite(result):
        raise InvalidPoint(f"value must be a finite number, got {result!r}")
    return result


def time_ns(value: object) -> int:
    """Nanoseconds for a ``time=`` argument: epoch seconds, a datetime, or ISO 8601 text.

    Numbers are read as the agent reads an item's time (:func:`protocol.item_time_ns`);
    a naive datetime or text without an offset is UTC, as everywhere in fleetgauge.
    """
    if isinstance(value, bool):
        raise InvalidPoint("time must be epoch seconds, a datetime or ISO 8601 text, got bool")
    if isinstance(value, int):
        return protocol.item_time_ns(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPoint(f"time must be finite, got {value!r}")
        return protocol.item_time_ns(float(value))
    if isinstance(value, datetime):
        ns = datetime_to_ns(value if value.tzinfo else value.replace(tzinfo=UTC))
    elif isinstance(value, str):
        try:
            ns = parse_time(value)
        except ValueError as e:
            raise InvalidPoint(str(e)) from None
    else:
        raise InvalidPoint(f"time must be epoch seconds, a datetime or text, got {type(value)}")
    return protocol.check_time_ns(ns, value)


def as_values(values_or_value: object) -> list[Any]:
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


def metadata_json(metadata: object) -> bytes | InvalidPoint | None:
    """An event's metadata as compact JSON, taken at call time; the problem when it is bad."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        return InvalidPoint(f"metadata must be a mapping, got {type(metadata).__name__}")
    if protocol.too_deep(metadata):
        return InvalidPoint(f"metadata nests deeper than {protocol.MAX_NESTING} levels")
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


_EXACT = 2**53  # an int below this converts to float exactly


def plain_number(value: object) -> float | None:
    """``value`` as the float an item carries when it is one without conversion: a finite
    float, or an int that converts exactly (not a bool); None for the rest (:func:`number`)."""
    if type(value) is float:
        return value if value - value == 0.0 else None
    if type(value) is int and -_EXACT < value < _EXACT:
        return float(value)
    return None


def series_key(item: Mapping[str, Any]) -> tuple[Any, ...]:
    """What a metric item's series is told apart by: its name, context and tags."""
    tags = item.get("tags")
    return (
        item["metric"],
        item.get(catalogue.DEPLOYMENT),
        item.get(catalogue.PIPELINE),
        item.get(catalogue.EXECUTION_ID),
        None if tags is None else tuple(tags.items()),
    )


class ItemBuilder:
    """Builds the push items of one client: its default context and tags under each call's.

    Used by the sender thread only. Names that passed once are remembered (bounded),
    and list metrics continue from the last step recorded per name and context.
    """

    def __init__(self, defaults: Mapping[str, str], tags: object) -> None:
        self._good_names: set[str] = set()
        self._next_step: dict[tuple[Any, ...], int] = {}
        self._log_lines: dict[str, int] = {}  # per execution id: lines taken
        self._log_dropped: dict[str, int] = {}  # per execution id: lines over the limit
        self.notices: list[dict[str, Any]] = []
        """Log items the builder adds itself (lines dropped), sent with the next batch."""
        self.defaults = dict(defaults)
        self.default_tags: dict[str, str] = {}
        self.default_tags = self.tags(tags)
        self.plain: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {}
        """Per metric name recorded with no context of its own: its items without value and
        time, and its series key. The sender makes such values' requests from these
        without an item per value (their context was checked when the name was first built)."""
        self.series_key: tuple[Any, ...] | None = None
        """The series of the last item :meth:`metric` built."""

    def metric(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The item of a ``METRIC`` or ``LIST`` entry; :attr:`series_key` is then its series
        (:func:`series_key`; None for a list metric's, which has a step).

        A value recorded with no context of its own leaves its name's template in
        :attr:`plain`, from which the sender sends the next such values without this call.
        """
        item = self._metric(entry)
        self.series_key = None if entry[0] == LIST else series_key(item)
        if entry[4] is None and entry[0] == METRIC:
            if len(self.plain) >= _MAX_CACHED:
                self.plain.clear()
            template = {k: v for k, v in item.items() if k != "value" and k != "time"}
            self.plain[entry[2]] = (template, self.series_key)
        return item

    def _metric(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        name = self.name("metric", entry[2])
        fields, tags, t = self._context(entry[4], _METRIC_CONTEXT)
        if catalogue.DEPLOYMENT not in fields and catalogue.PIPELINE not in fields:
            raise InvalidPoint(
                f"metric {name!r} needs a deployment or a pipeline"
                " (pass deployment=... or set FLEETGAUGE_DEPLOYMENT)"
            )
        item = {**fields, "metric": name}
        if entry[0] == LIST:
            item["step"] = self._step(name, fields, tags, entry[5], entry[6])
        item["value"] = number(entry[3])
        item["time"] = (entry[1] if t is None else t) / NS_PER_S
        if tags:
            item["tags"] = tags
        return item

    def event(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The item of an ``EVENT`` entry."""
        _, t_ns, name, source, metadata, context = entry
        fields, _, t = self._context(context, _EVENT_CONTEXT)
        item = {**fields, catalogue.EVENT_NAME: self.name("event name", name)}
        if source is not None:
            item[catalogue.EVENT_SOURCE] = self.name("source", source)
        if isinstance(metadata, InvalidPoint):
            raise metadata
        if metadata is not None:
            item["metadata"] = orjson.Fragment(metadata)
        item["time"] = (t_ns if t is None else t) / NS_PER_S
        return item

    def execution(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The item of an ``EXECUTION`` entry: a start with its inputs, an end with its
        outputs, or (status None) a change of tags; any of them with tags."""
        _, t_ns, execution_id, pipeline, status, values, t, tags = entry
        pipeline = pipeline if pipeline is not None else self.defaults.get(catalogue.PIPELINE)
        if pipeline is None:
            raise InvalidPoint(
                "an execution needs a pipeline (pass pipeline=... or set FLEETGAUGE_PIPELINE)"
            )
        for problem in (values, tags):
            if isinstance(problem, InvalidPoint):
                raise problem
        if isinstance(values, tuple) and isinstance(values[0], InvalidPoint):
            raise values[0]
        item = {
            catalogue.EXECUTION_ID: self.name(catalogue.EXECUTION_ID, execution_id),
            catalogue.PIPELINE: self.name(catalogue.PIPELINE, pipeline),
            "time": (t_ns if t is None else time_ns(t)) / NS_PER_S,
        }
        if status is not None:
            item["status"] = status
        if isinstance(values, tuple):  # a start: its inputs and the defaults it used
            values, defaults = values
            if isinstance(defaults, InvalidPoint):
                raise defaults
            item["defaults"] = orjson.Fragment(defaults)
        if values is not None:
            item["inputs" if status == catalogue.RUNNING else "outputs"] = orjson.Fragment(values)
        if tags is not None:
            item["tags"] = orjson.Fragment(tags)
        return item

    def log(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The item of a ``LOG`` entry; LogLimit past its execution's bound."""
        _, t_ns, message, level, logger, context = entry
        fields, _, t = self._context(context, _LOG_CONTEXT)
        if not any(k in fields for k in protocol.PUSH_CONTEXT):
            raise InvalidPoint(
                "a log line needs an execution_id, a pipeline or a deployment"
                " (start_execution(..., capture_logs=True) gives them)"
            )
        if not isinstance(message, str):
            message = str(message)
        text, cut = protocol.cut_message(message)
        item = {
            **fields,
            "message": text,
            "level": level if level in _LEVELS else protocol.log_level(level),
            catalogue.LOGGER: self.name(catalogue.LOGGER, logger),
            "time": (t_ns if t is None else t) / NS_PER_S,
        }
        if cut:
            item["cut_bytes"] = cut
        execution_id = fields.get(catalogue.EXECUTION_ID)
        if execution_id is not None:  # counted once it is known to be a good line
            taken = self._log_lines.get(execution_id, 0)
            if taken >= MAX_LOG_LINES:
                self._log_dropped[execution_id] = self._log_dropped.get(execution_id, 0) + 1
                raise LogLimit(execution_id)
            if len(self._log_lines) >= _MAX_CACHED and execution_id not in self._log_lines:
                self._log_lines.clear()
            self._log_lines[execution_id] = taken + 1
        return item

    def execution_ended(self, execution_id: str, pipeline: str | None) -> None:
        """Forget the log count of an execution that ended; a notice if lines were dropped."""
        self._log_lines.pop(execution_id, None)
        dropped = self._log_dropped.pop(execution_id, 0)
        if dropped:
            notice = {
                catalogue.EXECUTION_ID: execution_id,
                "message": f"fleetgauge: {dropped} log lines of this execution were dropped"
                f" (the limit is {MAX_LOG_LINES} per execution)",
                "level": "WARNING",
                catalogue.LOGGER: "fleetgauge",
            }
            if pipeline is not None:
                notice[catalogue.PIPELINE] = pipeline
            self.notices.append(notice)

    def tags(self, tags: object) -> dict[str, str]:
        """A call's extra tags over the defaults; InvalidPoint naming a bad or reserved one."""
        if not isinstance(tags, Mapping):
            raise InvalidPoint(
                f"tags must be a mapping of names to text, got {type(tags).__name__}"
            )
        merged = {**self.default_tags, **tags}
        if len(merged) > protocol.MAX_PUSH_TAGS:
            raise InvalidPoint(f"{len(merged)} tags, the limit is {protocol.MAX_PUSH_TAGS}")
        for key, value in merged.items():
            self.name("tag name", key)
            if key in protocol.PUSH_TAG_KEYS_TAKEN:
                raise InvalidPoint(f"tag name {key!r} is reserved")
            self.name(f"tag {key!r}", value)
        return merged

    def name(self, kind: str, value: object) -> str:
        """``value`` when it is a valid name; InvalidPoint saying what ``kind`` is wrong."""
        if type(value) is str and value in self._good_names:
            return value
        validate_name(kind, value)
        if len(self._good_names) >= _MAX_CACHED:
            self._good_names.clear()
        self._good_names.add(value)  # type: ignore[arg-type]
        return value  # type: ignore[return-value]

    def _context(
        self, context: dict[str, Any] | None, allowed: frozenset[str]
    ) -> tuple[dict[str, str], dict[str, str], int | None]:
        """Context fields over the client's defaults, the tags, and the call's time (ns)."""
        if not context:
            return self.defaults, self.default_tags, None
        for key in context:
            if key not in allowed:
                raise InvalidPoint(
                    f"unknown argument {key!r} (known: {', '.join(sorted(allowed))})"
                )
        fields = dict(self.defaults)
        for key in protocol.PUSH_CONTEXT:
            value = context.get(key)
            if value is not None:
                fields[key] = self.name(key, value)
        tags = context.get("tags")
        t = context.get("time")
        return (
            fields,
            self.default_tags if tags is None else self.tags(tags),
            None if t is None else time_ns(t),
        )

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
