"""The recording client: what model and training code calls, and the context it carries.

A recording call runs inside the model's own work, so it never blocks and never
raises: it stamps the time and appends a tuple to its sender's bounded queue
(about a microsecond). Everything else, checking the value with the agent's
rules, batching, HTTP and retries, happens on the sender's thread
(:mod:`fleetgauge.sdk.sender`).

Arguments left as None come from the environment: ``FLEETGAUGE_PUSH_URL``
(default ``http://127.0.0.1:9109``), ``FLEETGAUGE_PUSH_TOKEN``,
``FLEETGAUGE_DEPLOYMENT``, ``FLEETGAUGE_PIPELINE`` and ``FLEETGAUGE_EXECUTION_ID``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from fleetgauge import catalogue, protocol
from fleetgauge.sdk.items import (
    EVENT,
    EXECUTION,
    LIST,
    LOG,
    METRIC,
    ItemBuilder,
    as_values,
    metadata_json,
)
from fleetgauge.sdk.sender import Sender
from fleetgauge.sdk.transport import hide_userinfo, parse_url
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = ["MetricsClient", "Execution"]

log = logging.getLogger("fleetgauge.sdk")

FLUSH_TIMEOUT = 10.0
"""Seconds :meth:`MetricsClient.flush` waits by default (``timeout=None`` waits for ever)."""

_ENV = {
    "url": protocol.PUSH_URL_ENV,
    "token": "FLEETGAUGE_PUSH_TOKEN",
    catalogue.DEPLOYMENT: "FLEETGAUGE_DEPLOYMENT",
    catalogue.PIPELINE: "FLEETGAUGE_PIPELINE",
    catalogue.EXECUTION_ID: "FLEETGAUGE_EXECUTION_ID",
}
_time_ns = time.time_ns


def _env(key: str, given: str | None) -> str | None:
    return given if given is not None else (os.environ.get(_ENV[key]) or None)


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token:
        if not token.isprintable() or any(c.isspace() for c in token):
            raise ValueError("the push token contains spaces or control characters")
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _defaults(
    deployment: str | None, pipeline: str | None, execution_id: str | None
) -> dict[str, str]:
    """The client's context: given values, else the environment's; checked as names."""
    given = dict(zip(protocol.PUSH_CONTEXT, (deployment, pipeline, execution_id), strict=True))
    defaults = {}
    for key, value in given.items():
        value = _env(key, value)
        if value is not None:
            defaults[key] = validate_name(f"{key} ({_ENV[key]})", value)
    return defaults


def _encoded(encode: Any, value: object) -> str | InvalidPoint:
    """``encode(value)``, or the problem, which the sender reports and counts as invalid."""
    try:
        return str(encode(value))
    except InvalidPoint as e:
        return e


class MetricsClient:
    """Records metric values and events in the calling thread; a daemon thread sends them.

    Arguments left as None come from the environment (see the module docstring).
    ``deployment``, ``pipeline``, ``execution_id`` and ``tags`` are defaults for
    every call; a call's own keyword arguments override them. ``max_queue`` bounds
    the values held (queued plus in flight), ``batch_size`` the values per request,
    ``flush_interval`` the seconds between sends, ``timeout`` one HTTP exchange and
    ``exit_timeout`` the wait for delivery at process exit. A bad URL or context
    is logged once and every value is then dropped as ``misconfigured``.
    ``register_process`` (default True) tells the agent which process this is and
    what it works for, so that its CPU, memory and GPU use is recorded under the
    deployment, pipeline or execution of the values it sends.
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
        register_process: bool = True,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("max_queue and batch_size must be >= 1, the intervals > 0")
        url = _env("url", url) or protocol.DEFAULT_PUSH_URL
        self.url = hide_userinfo(url)
        self._defaults: dict[str, str] = {}
        settings: dict[str, Any] = {
            "max_queue": max_queue,
            "batch_size": batch_size,
            "flush_interval": flush_interval,
            "timeout": timeout,
            "exit_timeout": exit_timeout,
        }
        try:
            target = parse_url(url)
            headers = _headers(_env("token", token))
            builder = ItemBuilder(_defaults(deployment, pipeline, execution_id), tags or {})
        except (ValueError, InvalidPoint) as e:
            log.error("fleetgauge sdk: not recording: %s", e)
            self._sender = Sender(
                None, {}, None, shown_url=self.url, refused="misconfigured", **settings
            )
        else:
            self.url = target.shown
            self._defaults = builder.defaults
            self._sender = Sender(
                target,
                headers,
                builder,
                shown_url=self.url,
                register_process=register_process,
                **settings,
            )
        self._queue = self._sender.queue
        self._full = self._sender.full

    # --- recording: the calling thread -------------------------------------------
    def record_metric_value(self, name: str, value: float, **context: Any) -> None:
        """Record one value of metric ``name`` now (for example ``score`` 1 after a prediction).

        ``context``: ``deployment``, ``pipeline``, ``execution_id`` (override the
        client's), ``time`` (epoch seconds, datetime or ISO 8601; default now) and
        ``tags`` (up to 16 extra names to text). Never blocks, never raises: a bad
        value is counted as ``invalid`` when the sender checks it.
        """
        queue = self._queue
        entry = (METRIC, _time_ns(), name, value, context or None)
        n = len(queue)
        if n < self._sender.room:
            queue.append(entry)
            if n == self._full:  # a full batch now: sent at once, not at the next tick
                self._sender.wake()
        else:
            self._sender.overflow_one(entry)

    def record_list_metric_values(
        self, name: str, values_or_value: Any, step: int | None = None, **context: Any
    ) -> None:
        """Record list-metric elements: a list gives one element per value, a scalar one.

        Elements get steps ``step``, ``step + 1``, ...; without ``step`` they continue
        after the last step recorded for this name and context (from 0). ``context``
        as for :meth:`record_metric_value`. Never blocks, never raises.
        """
        t = _time_ns()
        values = as_values(values_or_value)
        queue = self._queue
        n = len(queue)
        fits = max(0, min(len(values), self._sender.room - n))
        context = context or None  # a tuple holding a dict stays tracked by the GC
        entries = [(LIST, t, name, values[i], context, step, i) for i in range(len(values))]
        queue.extend(entries[:fits])
        if n <= self._full < n + fits:
            self._sender.wake()
        if fits < len(values):
            self._sender.overflow(entries[fits:])

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
        entry = (EVENT, _time_ns(), name, source, metadata_json(metadata), context or None)
        if len(queue) < self._sender.room:
            queue.append(entry)
        else:
            self._sender.overflow_one(entry)

    def record_log(
        self, message: str, level: str = "INFO", logger: str = "root", **context: Any
    ) -> None:
        """Record one log line now: ``level`` DEBUG, INFO, WARNING, ERROR or CRITICAL,
        ``logger`` the name it came from. ``context``: ``deployment``, ``pipeline``,
        ``execution_id`` (one is needed), ``time``. A message over 16 KiB is cut (the
        bytes cut are counted with it). Never blocks, never raises; see
        :class:`fleetgauge.LogHandler` to send ``logging`` records."""
        self.queue_log(_time_ns(), message, level, logger, context or None)

    def queue_log(
        self, t_ns: int, message: str, level: str, logger: str, context: dict[str, Any] | None
    ) -> None:
        """:meth:`record_log` for callers that have the time and the context at hand
        (:class:`fleetgauge.LogHandler`): one tuple appended, nothing else."""
        queue = self._queue
        entry = (LOG, t_ns, message, level, logger, context)
        if len(queue) < self._sender.room:
            queue.append(entry)
        else:
            self._sender.overflow_one(entry)

    def start_execution(
        self,
        pipeline: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        execution_id: str | None = None,
        time: Any = None,
        tags: Mapping[str, str] | None = None,
        capture_logs: bool = False,
        capture_output: bool = False,
        defaults: Mapping[str, Any] | None = None,
    ) -> Execution:
        """Record that an execution of ``pipeline`` starts now with ``inputs``; returns it.

        ``execution_id`` is made up (``20261122T101500-3fa2c1d0``) when not given;
        ``pipeline`` defaults to the client's; ``tags`` (names to text) label it
        and can be changed later (:meth:`set_execution_tags`). Record its values
        through the returned :class:`Execution` (they carry its id and pipeline)
        and end it with :meth:`Execution.finish`, or use it as a context
        manager: it ends ``succeeded``, or ``failed`` when the block raises.
        ``capture_logs`` sends the records reaching the root logger (those its
        level lets through) as the execution's log lines until it ends;
        ``capture_output`` the lines written to ``sys.stdout`` and ``sys.stderr``.
        ``defaults``: the run's default inputs; those ``inputs`` does not give are
        recorded as inputs taken from a default (the execution's page says so).
        Never raises: bad inputs are dropped as ``invalid`` (the values
        recorded still count).
        """
        t_ns = _time_ns()
        if execution_id is None:
            execution_id = protocol.new_execution_id(t_ns)
        pipeline = pipeline if pipeline is not None else self._defaults.get(catalogue.PIPELINE)
        data: Any = _encoded(protocol.inputs_json, {} if inputs is None else inputs)
        if defaults:
            unused = {k: v for k, v in defaults.items() if k not in (inputs or {})}
            data = (data, _encoded(protocol.inputs_json, unused))
        labels = None if tags is None else _encoded(protocol.execution_tags_json, tags)
        self._record_execution(t_ns, execution_id, pipeline, catalogue.RUNNING, data, time, labels)
        run = Execution(self, execution_id, pipeline)
        if capture_logs or capture_output:
            run.capture(capture_logs, capture_output)
        return run

    def finish_execution(
        self,
        execution_id: str,
        status: str = catalogue.SUCCEEDED,
        pipeline: str | None = None,
        time: Any = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that execution ``execution_id`` ended now, ``succeeded`` or ``failed``,
        with its ``outputs`` (names to text, numbers, true/false or null, as inputs).

        For an execution started elsewhere (another process); one started here
        ends with :meth:`Execution.finish`. Never raises.
        """
        problem: str | InvalidPoint | None = None
        if outputs is not None:
            problem = _encoded(protocol.outputs_json, outputs)
        if status not in catalogue.END_STATUSES:
            problem = InvalidPoint(f"an execution ends succeeded or failed, not {status!r}")
        self._record_execution(_time_ns(), execution_id, pipeline, status, problem, time, None)

    def set_execution_tags(
        self,
        execution_id: str,
        tags: Mapping[str, str | None],
        pipeline: str | None = None,
        time: Any = None,
    ) -> None:
        """Set ``tags`` (names to text; None removes a tag) on an execution, during or
        after it; the latest write of a tag wins and earlier ones stay in the store.
        ``pipeline`` defaults to the client's. Never raises."""
        data = _encoded(protocol.execution_tags_json, tags)
        self._record_execution(_time_ns(), execution_id, pipeline, None, None, time, data)

    def remove_execution_tags(
        self, execution_id: str, names: Any, pipeline: str | None = None, time: Any = None
    ) -> None:
        """Remove the tags called ``names`` (a name or a list of them) from an execution."""
        names = [names] if isinstance(names, str) else list(names)
        self.set_execution_tags(execution_id, dict.fromkeys(names), pipeline, time)

    def _record_execution(self, *entry: Any) -> None:
        queue = self._queue
        if len(queue) < self._sender.room:
            queue.append((EXECUTION, *entry))
        else:
            self._sender.overflow([(EXECUTION, *entry)])

    # --- control -------------------------------------------------------------------
    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> bool:
        """Send everything recorded before this call; wait at most ``timeout`` seconds.

        True when nothing recorded before the call is still waiting: all of it was
        accepted by the agent, or dropped and counted (invalid, rejected). False at
        the timeout (the agent is slow or down: the values stay queued and are
        retried) or when the client cannot send. The default timeout is
        ``FLUSH_TIMEOUT`` (10 s); ``timeout=None`` waits as long as it takes.
        """
        return self._sender.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush (waiting at most ``timeout`` seconds), stop the sender and drop later calls.

        What could not be delivered is counted as ``undelivered_at_close`` and logged.
        """
        self._sender.close("undelivered_at_close", timeout)

    def stats(self) -> dict[str, Any]:
        """Counts so far: ``recorded`` values, ``sent`` (accepted by the agent), ``queued``,
        ``in_flight``, and ``dropped`` per reason (see ``DROP_REASONS``)."""
        return self._sender.stats()


class Execution:
    """One execution started by :meth:`MetricsClient.start_execution`.

    Its ``record_*`` and ``log_event`` methods are the client's with this
    execution's id and pipeline filled in. As a context manager it ends
    ``succeeded``, or ``failed`` when the block raises (the exception goes on).
    """

    def __init__(self, client: MetricsClient, execution_id: str, pipeline: str | None) -> None:
        self.client, self.execution_id, self.pipeline = client, execution_id, pipeline
        self.status = catalogue.RUNNING
        self._handler: Any = None
        self._output: Any = None
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

    def capture(self, logs: bool = True, output: bool = False) -> None:
        """Send the root logger's records (``logs``) and the lines of ``sys.stdout`` and
        ``sys.stderr`` (``output``) as this execution's log lines until it finishes."""
        from fleetgauge.sdk.logs import LogHandler, OutputCapture

        if logs and self._handler is None:
            self._handler = LogHandler(self.client, **self._context)
            logging.getLogger().addHandler(self._handler)
        if output and self._output is None:
            self._output = OutputCapture(self.client, **self._context)
            self._output.start()

    def record_log(self, message: str, level: str = "INFO", logger: str = "root") -> None:
        """:meth:`MetricsClient.record_log` for this execution."""
        self.client.record_log(message, level, logger, **self._context)

    def _release(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        if self._output is not None:
            self._output.stop()
            self._output = None

    def set_tags(self, tags: Mapping[str, str | None] | None = None, **more: str | None) -> None:
        """Set tags on this execution (``run.set_tags(stage="tuned")``); None removes one."""
        self.client.set_execution_tags(self.execution_id, {**(tags or {}), **more}, self.pipeline)

    def remove_tags(self, *names: str) -> None:
        """Remove the tags called ``names`` from this execution."""
        self.client.remove_execution_tags(self.execution_id, names, self.pipeline)

    def finish(
        self,
        status: str = catalogue.SUCCEEDED,
        time: Any = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that this execution ended now (``succeeded`` or ``failed``) with its
        ``outputs`` (``{"model_path": "/models/7.pt"}``); once only."""
        if self.status != catalogue.RUNNING:
            return
        self._release()  # its last lines are queued before its end
        self.status = status
        self.client.finish_execution(self.execution_id, status, self.pipeline, time, outputs)

    def __enter__(self) -> Execution:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.finish(catalogue.SUCCEEDED if kind is None else catalogue.FAILED)
