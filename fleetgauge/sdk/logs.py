"""Log lines of an execution: a ``logging.Handler`` and a tee of the process's output.

Both only queue a tuple on their client (:meth:`MetricsClient.record_log`), so a
program logging in a tight loop pays the SDK's per-call cost and never waits for
the agent or the store; the lines travel with the values (same batching, same
retries, spooled by the agent while the store is down). ``fleetgauge``'s own
loggers are never captured: a warning about sending could otherwise feed itself.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

import fleetgauge.sdk as _sdk  # (its get_client, read at call time: no import cycle)

if TYPE_CHECKING:
    from fleetgauge.sdk.client import MetricsClient

__all__ = ["LogHandler", "OutputCapture", "level_name"]

_OWN = "fleetgauge"
_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
_MAX_PENDING = 64 * 1024  # characters of an unfinished output line kept before it is sent


def level_name(levelno: int) -> str:
    """The standard level at or below ``levelno`` (a custom level 25 is INFO)."""
    for number, name in ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO")):
        if levelno >= number:
            return name
    return "DEBUG"


class LogHandler(logging.Handler):
    """Sends each record (formatted by the handler's formatter, with its traceback) as a
    log line of the execution, pipeline or deployment given, through ``client`` (the
    default client when None). ``level`` filters as for any handler.

    ``logging.getLogger().addHandler(LogHandler(execution_id="run-7", pipeline="train"))``
    is what ``start_execution(..., capture_logs=True)`` does for the run's duration.
    """

    def __init__(
        self,
        client: MetricsClient | None = None,
        level: int | str = logging.NOTSET,
        **context: str,
    ) -> None:
        super().__init__(level)
        self.client = client
        self.context = {k: v for k, v in context.items() if v is not None}

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record (about a microsecond over formatting it): its time, formatted
        text, level and logger name, and the handler's context."""
        name = record.name
        if name.startswith(_OWN):
            return
        try:
            message = self.format(record)
            client = self.client or _sdk._default or _sdk.get_client()
            level = _LEVELS.get(record.levelno) or level_name(record.levelno)
            client.queue_log(int(record.created * 1e9), message, level, name, self.context)
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:
            self.handleError(record)


class _Tee(io.TextIOBase):
    """Writes through to the stream it replaced and sends each complete line."""

    def __init__(self, stream: TextIO, send: Any, name: str) -> None:
        self._stream, self._send, self.name = stream, send, name
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        written = self._stream.write(text)
        with self._lock:
            if "\n" not in text and len(self._pending) + len(text) < _MAX_PENDING:
                self._pending += text
                return written
            lines = (self._pending + text).split("\n")
            self._pending = lines.pop()
            if len(self._pending) >= _MAX_PENDING:
                lines.append(self._pending)
                self._pending = ""
        for line in lines:
            self._send(line.rstrip("\r"))
        return written

    def flush(self) -> None:
        self._stream.flush()

    def finish(self) -> None:
        """Send what is left of an unfinished line."""
        if self._pending:
            line, self._pending = self._pending, ""
            self._send(line)

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


class OutputCapture:
    """While started, ``sys.stdout`` and ``sys.stderr`` lines are also sent as log lines
    (logger ``stdout``, level INFO; ``stderr``, level WARNING). Python-level writes only:
    a C extension writing to file descriptor 1 is not seen."""

    def __init__(self, client: MetricsClient, **context: str) -> None:
        self.client = client
        self.context = {k: v for k, v in context.items() if v is not None}
        self._saved: tuple[TextIO, TextIO] | None = None
        self._tees: list[_Tee] = []

    def start(self) -> None:
        if self._saved is not None:
            return
        self._saved = (sys.stdout, sys.stderr)
        out = _Tee(sys.stdout, lambda line: self._send(line, "INFO", "stdout"), "<stdout>")
        err = _Tee(sys.stderr, lambda line: self._send(line, "WARNING", "stderr"), "<stderr>")
        self._tees = [out, err]
        sys.stdout, sys.stderr = out, err  # type: ignore[assignment]

    def _send(self, line: str, level: str, logger: str) -> None:
        self.client.record_log(line, level, logger, **self.context)

    def stop(self) -> None:
        """Put the streams back (unless something replaced them since) and send what is left."""
        if self._saved is None:
            return
        out, err = self._tees
        if sys.stdout is out:
            sys.stdout = self._saved[0]
        if sys.stderr is err:
            sys.stderr = self._saved[1]
        self._saved = None
        for tee in (out, err):
            tee.finish()
