"""The push wire format: what the SDK sends and the agent's push endpoint takes.

Both sides import their paths, limits and item rules from here, so a limit is
never defined twice. A request is ``POST PATH`` with a JSON body
``{KEY: [item, ...]}`` (``/v1/metrics`` with ``metrics``, ``/v1/events`` with
``events``, ``/v1/executions`` with ``executions``, ``/v1/logs`` with ``logs``) and an
optional
``Idempotency-Key`` header; item keys are listed below. An item's ``time`` is
epoch seconds (a JSON number) or RFC 3339 text with an offset, read by
:func:`item_time_ns` on both sides.

``/v1/metrics`` also takes a columnar body, ``{"series": [series, ...]}``: each
series holds what its values share (``metric``, ``deployment``, ``pipeline``,
``execution_id``, ``tags``) once, its ``values`` as a list and, optionally, their
``times`` as a list as long (epoch seconds; ``null`` or no list: the time of
arrival). It means the same as one item per value and is checked by the same
rules; list metrics (``step``) are sent as items. The agent parses it in well under
half the time of the items it stands for. An agent that takes it says so in every
push answer (:data:`PUSH_FORMS_HEADER`), and the SDK speaks it to such an agent only;
other languages may send either form.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Mapping
from datetime import datetime

import orjson

from fleetgauge.catalogue import (
    DEPLOYMENT,
    ENVIRONMENT,
    EVENT_NAME,
    EVENT_SOURCE,
    EXECUTION_ID,
    LOG_LEVELS,
    LOGGER,
    METRIC,
    PIPELINE,
    RESERVED_TAG_KEYS,
    WORKER,
)
from fleetgauge.timeutil import MAX_NS, NS_PER_S, datetime_to_ns
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = [
    "DEFAULT_PUSH_URL",
    "PUSH_URL_ENV",
    "DEFAULT_MAX_BODY",
    "PUSH_METRICS_PATH",
    "PUSH_EVENTS_PATH",
    "PUSH_EXECUTIONS_PATH",
    "PUSH_METRIC_KEYS",
    "PUSH_SERIES",
    "PUSH_SERIES_KEYS",
    "PUSH_FORMS_HEADER",
    "PUSH_FORMS",
    "PUSH_EVENT_KEYS",
    "PUSH_EXECUTION_KEYS",
    "PUSH_LOGS_PATH",
    "PUSH_LOG_KEYS",
    "MAX_LOG_MESSAGE_BYTES",
    "cut_message",
    "log_level",
    "PUSH_PROCESSES_PATH",
    "PUSH_PROCESS_KEYS",
    "MAX_PUSH_PROCESSES",
    "PUSH_CONTEXT",
    "PUSH_TAG_KEYS_TAKEN",
    "PUSH_IDEMPOTENCY_HEADER",
    "MAX_PUSH_TAGS",
    "MAX_PUSH_ITEMS",
    "MAX_EVENT_METADATA_BYTES",
    "MAX_INPUTS",
    "MAX_INPUTS_BYTES",
    "MAX_STEP",
    "MAX_NESTING",
    "too_deep",
    "item_time_ns",
    "new_execution_id",
    "inputs_json",
    "outputs_json",
    "execution_tags_json",
    "MAX_EXECUTION_TAGS",
    "MAX_TAG_VALUE_LENGTH",
]

PUSH_URL_ENV = "FLEETGAUGE_PUSH_URL"
"""The environment variable that tells the SDK where the agent's push endpoint is."""
DEFAULT_PUSH_URL = "http://127.0.0.1:9109"
"""Where the SDK finds the agent when ``FLEETGAUGE_PUSH_URL`` does not say."""
DEFAULT_MAX_BODY = 4 * 1024 * 1024
"""Largest request body the endpoint reads by default (``push_max_body``), in bytes."""
PUSH_METRICS_PATH = "/v1/metrics"
"""``POST {"metrics": [item, ...]}``: values recorded by models and pipelines."""
PUSH_EVENTS_PATH = "/v1/events"
"""``POST {"events": [item, ...]}``: named events with a wall-clock time."""
PUSH_METRIC_KEYS = ("metric", "value", DEPLOYMENT, PIPELINE, EXECUTION_ID, "step", "time", "tags")
"""Every key a pushed metric item may have; any other key is refused."""
PUSH_SERIES = "series"
"""The key of ``/v1/metrics``' columnar body, ``{"series": [series, ...]}``."""
PUSH_SERIES_KEYS = ("metric", DEPLOYMENT, PIPELINE, EXECUTION_ID, "tags", "values", "times")
"""Every key one series of a columnar body may have; any other key is refused."""
PUSH_FORMS_HEADER = "Fleetgauge-Push-Forms"
"""Answer header of an agent that takes the columnar body (value ``items, series``): the
SDK sends series to an agent once it has answered with it, items otherwise."""
PUSH_FORMS = "items, series"
PUSH_EVENT_KEYS = (EVENT_NAME, EVENT_SOURCE, "time", "metadata", DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Every key a pushed event item may have; any other key is refused."""
PUSH_EXECUTIONS_PATH = "/v1/executions"
"""``POST {"executions": [item, ...]}``: an execution started (status running, with its
``inputs`` and the ``defaults`` it used for inputs the caller did not give) or ended
(succeeded or failed, with its ``outputs``); any of them may carry
``tags``, and an item with ``tags`` and no status changes the tags of an execution."""
PUSH_EXECUTION_KEYS = (
    EXECUTION_ID,
    PIPELINE,
    "status",
    "time",
    "inputs",
    "defaults",
    "outputs",
    "tags",
)
"""Every key a pushed execution item may have; any other key is refused."""
PUSH_LOGS_PATH = "/v1/logs"
"""``POST {"logs": [item, ...]}``: log lines of an execution or a deployment."""
PUSH_LOG_KEYS = (
    "message",
    "level",
    LOGGER,
    "time",
    "cut_bytes",
    DEPLOYMENT,
    PIPELINE,
    EXECUTION_ID,
)
"""Keys of a log item: ``message`` (required), ``level`` (DEBUG, INFO, WARNING, ERROR or
CRITICAL; default INFO), ``logger`` (its name; default ``root``), ``time``, ``cut_bytes``
(bytes the client already cut from the message) and the context (a deployment, a pipeline
or an execution_id is required)."""
MAX_LOG_MESSAGE_BYTES = 16 * 1024
"""A longer message is cut to this many bytes of UTF-8 (at a character boundary) and the
bytes cut are counted in the line's ``cut_bytes``: never refused."""
PUSH_PROCESSES_PATH = "/v1/processes"
"""``POST {"processes": [item, ...]}``: a process tells its agent what it works for, so
that the agent samples its CPU, memory and GPU use under that deployment, pipeline and
execution. Answer: ``202 {"registered": N}``."""
PUSH_PROCESS_KEYS = ("pid", "start_time", DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Keys of a process item: ``pid`` (required), ``start_time`` (epoch seconds, as
``fleetgauge.procinfo.start_time`` computes it: a pid reused by another process is refused),
and at least one of the context names."""
MAX_PUSH_PROCESSES = 64
"""Most items in one ``/v1/processes`` request."""
MAX_INPUTS_BYTES = 4096
"""Largest ``inputs`` of one execution, as compact JSON in UTF-8."""
PUSH_CONTEXT = (DEPLOYMENT, PIPELINE, EXECUTION_ID)
"""Context a pushed item may carry; a metric item needs a deployment or a pipeline."""
PUSH_TAG_KEYS_TAKEN = frozenset(
    {ENVIRONMENT, WORKER, METRIC, EVENT_NAME, EVENT_SOURCE}
    | RESERVED_TAG_KEYS
    | set(PUSH_METRIC_KEYS)
    | set(PUSH_EVENT_KEYS)
)
"""Names a pushed item's extra ``tags`` may not use: they mean something already."""
PUSH_IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Request header naming one batch; a batch sent again under the same key is stored once."""
MAX_PUSH_TAGS = 16
"""Most extra ``tags`` one pushed metric item may carry."""
MAX_PUSH_ITEMS = 10_000
"""Most items in one push request."""
MAX_EVENT_METADATA_BYTES = 4096
"""Largest ``metadata`` of one event, as compact JSON in UTF-8."""
MAX_STEP = 2**53
"""Steps are integers in [0, MAX_STEP): exact in JSON numbers and in every store."""


MAX_NESTING = 32
"""Deepest nesting of objects and lists in an event's ``metadata`` (and any JSON value taken)."""


def too_deep(value: object, limit: int = MAX_NESTING) -> bool:
    """Whether a JSON value nests objects or lists more than ``limit`` levels deep.

    Checked without recursion, so a value nested a thousand levels is refused
    with a message instead of ending the request in a RecursionError.
    """
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: object = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)  # type: ignore[attr-defined]
    return False


# --- item times -----------------------------------------------------------------------
def item_time_ns(value: object) -> int:
    """Nanoseconds since the epoch for an item's ``time``.

    Epoch seconds (an int or a finite float) or RFC 3339 text with an offset
    (``2026-11-22T10:00:00Z``), between 1970 and 2262. Raises InvalidPoint
    saying what is wrong; the endpoint adds which item.
    """
    if type(value) is int:
        ns = value * NS_PER_S
    elif type(value) is float:
        ns = int(value * NS_PER_S) if _finite(value * NS_PER_S) else -1
    elif isinstance(value, str):
        ns = _rfc3339(value)
    else:
        raise InvalidPoint(f"must be epoch seconds or RFC 3339 text, got {_type(value)}")
    return check_time_ns(ns, value)


def check_time_ns(ns: int, shown: object) -> int:
    """``ns`` when a store can hold it (1970 to 2262); InvalidPoint showing ``shown`` if not."""
    if not 0 <= ns <= MAX_NS:
        raise InvalidPoint(f"{shown!r} is out of range (epoch seconds, 1970 to 2262)")
    return ns


def _finite(x: float) -> bool:
    return x - x == 0.0


def _rfc3339(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidPoint(f"{text[:40]!r} is not RFC 3339 (2026-11-22T10:00:00Z)")
    return datetime_to_ns(moment)


# --- executions -----------------------------------------------------------------------
MAX_INPUTS = 64
"""Most inputs (name -> value) one execution may declare; its outputs likewise."""
MAX_EXECUTION_TAGS = 64
"""Most tags one write may set or remove on an execution."""
MAX_TAG_VALUE_LENGTH = 256
"""Longest text of one execution tag."""


def new_execution_id(time_ns: int) -> str:
    """A fresh execution id: its start second in UTC, then random hex.

    For example ``20261122T101500-3fa2c1d0``: ids sort by start time, and two
    runs started in the same second differ.
    """
    import secrets  # here, not at import: a recording process may never start an execution

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time_ns // NS_PER_S))
    return f"{stamp}-{secrets.token_hex(4)}"


def inputs_json(inputs: object) -> str:
    """An execution's inputs as compact JSON; InvalidPoint naming the input at fault.

    Inputs map names to text, finite numbers, true/false or null (numpy and
    other number types become plain numbers); at most :data:`MAX_INPUTS` of
    them and :data:`MAX_INPUTS_BYTES` of JSON.
    """
    return _values_json(inputs, "input")


def outputs_json(outputs: object) -> str:
    """An execution's outputs as compact JSON, by the rules of :func:`inputs_json`."""
    return _values_json(outputs, "output")


def execution_tags_json(tags: object, removing: bool = True) -> str:
    """Tags of an execution as compact JSON: names to text, or null for a tag removed
    (when ``removing``); InvalidPoint naming the tag at fault.

    At most :data:`MAX_EXECUTION_TAGS` of them, each text at most
    :data:`MAX_TAG_VALUE_LENGTH` characters.
    """
    if not isinstance(tags, Mapping):
        raise InvalidPoint(f"tags must be an object of names to text, got {_type(tags)}")
    if not tags:
        raise InvalidPoint("tags must name at least one tag")
    if len(tags) > MAX_EXECUTION_TAGS:
        raise InvalidPoint(f"{len(tags)} tags, the limit is {MAX_EXECUTION_TAGS}")
    for name, value in tags.items():
        validate_name("tag name", name)
        if value is None and removing:
            continue
        if not isinstance(value, str):
            raise InvalidPoint(f"tag {name!r} must be text, got {_type(value)}{_sample(value)}")
        validate_name(f"tag {name!r}", value)
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise InvalidPoint(
                f"tag {name!r} is {len(value)} characters long (limit {MAX_TAG_VALUE_LENGTH})"
            )
    return orjson.dumps(dict(tags)).decode()


def _values_json(values: object, kind: str) -> str:
    if not isinstance(values, Mapping):
        raise InvalidPoint(f"{kind}s must be an object of names to values, got {_type(values)}")
    if len(values) > MAX_INPUTS:
        raise InvalidPoint(f"{len(values)} {kind}s, the limit is {MAX_INPUTS}")
    clean: dict[str, object] = {}
    for name, value in values.items():
        validate_name(f"{kind} name", name)
        if value is None or isinstance(value, bool | str):
            if isinstance(value, str):
                validate_name(f"{kind} {name!r}", value)
            clean[name] = value
        elif isinstance(value, numbers.Integral) and abs(int(value)) < 2**53:
            clean[name] = int(value)
        elif isinstance(value, numbers.Real) and float(value) - float(value) == 0.0:
            clean[name] = _shortest(value)
        elif type(value).__name__ in ("bool_", "bool"):  # numpy's bool, not a number type
            clean[name] = bool(value)
        else:
            raise InvalidPoint(
                f"{kind} {name!r} must be text, a finite number, true/false or null,"
                f" got {_type(value)}{_sample(value)}"
            )
    text = orjson.dumps(clean).decode()
    if len(text.encode()) > MAX_INPUTS_BYTES:
        raise InvalidPoint(
            f"{kind}s are {len(text.encode())} bytes as JSON (limit {MAX_INPUTS_BYTES})"
        )
    return text


_LEVEL_NAMES = {"WARN": "WARNING", "FATAL": "CRITICAL", "ERR": "ERROR", "TRACE": "DEBUG"}


def log_level(value: object) -> str:
    """A log item's level as one of ``catalogue.LOG_LEVELS`` (any case; WARN, FATAL, ERR
    and TRACE are read as WARNING, CRITICAL, ERROR and DEBUG); InvalidPoint otherwise."""
    if value is None:
        return "INFO"
    if isinstance(value, str):
        name = value.strip().upper()
        name = _LEVEL_NAMES.get(name, name)
        if name in LOG_LEVELS:
            return name
    known = ", ".join(LOG_LEVELS)
    raise InvalidPoint(f"level must be one of {known}, got {_type(value)}{_sample(value)}")


def cut_message(text: str) -> tuple[str, int]:
    """``text`` as a log line keeps it: valid UTF-8 (a lone surrogate or a NUL becomes
    U+FFFD), cut to :data:`MAX_LOG_MESSAGE_BYTES` at a character boundary; and how many
    bytes were cut (0 when it fits)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        data = text.encode("utf-8", "replace")
        text = data.decode("utf-8")
    if len(data) <= MAX_LOG_MESSAGE_BYTES:
        return text, 0
    kept = data[:MAX_LOG_MESSAGE_BYTES].decode("utf-8", "ignore")
    return kept, len(data) - len(kept.encode("utf-8"))


def _shortest(value: numbers.Real) -> float:
    """A float as the user wrote it: numpy's float32 0.001 stays 0.001, not 0.0010000000474."""
    if type(value) is float:
        return value
    try:
        return float(str(value))
    except ValueError:
        return float(value)


def _sample(value: object) -> str:
    """A short look at a refused value; nothing of a container, which may nest deeply."""
    if isinstance(value, dict | list | tuple | set):
        return ""
    try:
        return f" {str(value)[:40]!r}"
    except Exception:  # a value whose str() fails says nothing more
        return ""


def _type(value: object) -> str:
    return "null" if value is None else type(value).__name__
