"""Delivery: the only path from collected points to the store, losing nothing it can keep.

Points are buffered in memory and written every flush interval in batches.
When the store is unreachable or answers 5xx, the batch goes to the on-disk
:class:`~fleetgauge.agent.delivery.spool.Spool` and the next tries wait with exponential
backoff; while the spool holds anything, new batches queue behind it, so the
store receives points in the order they were taken. A batch the store refuses
as bad data (4xx) is logged with the reason and dropped, not retried forever.
Every outcome is counted in :class:`~fleetgauge.agent.health.Health`.

Collection never waits on delivery: :meth:`Delivery.add` only appends to the
buffer. A writer thread (:meth:`Delivery.start`) flushes every flush interval,
and at once when a full batch is buffered, so a burst of pushed values goes out
in full batches without waiting for the clock. A SIGKILL loses the buffer: at
most one flush interval of points.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from fleetgauge.agent.delivery.spool import Segment, Spool, SpoolError
from fleetgauge.agent.health import Health
from fleetgauge.catalogue import Point
from fleetgauge.stores import StoreError, StoreUnavailable, StoreWriter
from fleetgauge.validation import InvalidPoint, validate_point

__all__ = ["Delivery", "Spool", "SpoolError"]

log = logging.getLogger("fleetgauge.agent.delivery")

# Points held in memory before producers wait (or the buffer goes to the spool).
# A point costs about 1 KB in Python; while one buffer is being written the next
# one fills, so the agent holds about twice this. Four default batches keep the
# writer busy (the store, not the buffer, limits throughput) and a push flood
# bounded to tens of MiB.
MAX_BUFFER = 20_000

# Retry pauses while the store is down: doubling from 1 s, capped so that data
# flows again within about 10 s of the store coming back (a failed try against a
# store that is down costs one refused connection; 60 s kept dashboards blank
# for up to a minute after an outage).
BACKOFF = (1.0, 10.0)


class Delivery:
    """Buffers points and writes them to a store, spooling to disk while it is down."""

    def __init__(
        self,
        store: StoreWriter,
        spool: Spool | None,
        health: Health,
        batch_size: int = 5000,
        max_buffer: int = MAX_BUFFER,
        backoff: tuple[float, float] = BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.spool = spool
        self.health = health
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self._backoff_min, self._backoff_max = backoff
        self._delay = 0.0
        self._retry_at = 0.0
        self._failed_at = float("-inf")
        self._clock = clock
        self._buffer: list[Point] = []
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._spool_failing = False
        self._update_spool_gauges()

    # --- intake --------------------------------------------------------------
    def add(self, points: Sequence[Point], validated: bool = False) -> int:
        """Queue points for the next flush; returns how many were refused as invalid.

        ``validated`` skips the catalogue check for points their producer has
        already checked (the push endpoint validates every item it accepts).
        """
        good = points if validated else self._valid(points)
        with self._lock:
            self._buffer.extend(good)
            size = len(self._buffer)
        if size >= self.batch_size:
            self._wake.set()
        if size > self.max_buffer:  # the writer is stuck: move the buffer to disk now
            self._spool_points(self._take())
        return len(points) - len(good)

    def _valid(self, points: Sequence[Point]) -> list[Point]:
        good = []
        for p in points:
            try:
                validate_point(p)
            except InvalidPoint as e:
                log.error("dropped an invalid point from %s: %s", p.measurement, e)
                self.health.dropped("invalid", 1)
                continue
            good.append(p)
        return good

    def wait_for_room(self, timeout: float) -> bool:
        """Block until the buffer is below its limit (True) or ``timeout`` passes (False).

        Producers that can wait (the push endpoint, whose clients retry) call
        this before :meth:`add`, so a flood is slowed down instead of filling
        memory or the spool while the store keeps up.
        """
        with self._room:
            return self._room.wait_for(lambda: len(self._buffer) < self.max_buffer, timeout)

    def _take(self) -> list[Point]:
        with self._lock:
            taken, self._buffer = self._buffer, []
            self._room.notify_all()
        return taken

    # --- the writer thread ------------------------------------------------------
    def start(self, interval: float) -> None:
        """Flush every ``interval`` seconds, and at once when a full batch is buffered."""

        def run() -> None:
            while not self._stopping:
                self._wake.wait(interval)
                self._wake.clear()
                if not self._stopping:
                    self.flush()

        self._stopping = False
        self._writer = threading.Thread(target=run, name="delivery-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Stop the writer thread (after the flush it is in), then flush one last time."""
        self._stopping = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        self.flush(final=True)

    @property
    def buffered(self) -> int:
        """Points waiting in memory for the next flush."""
        return len(self._buffer)

    # --- flushing ------------------------------------------------------------
    def flush(self, final: bool = False) -> None:
        """Write what is spooled, then what is buffered; spool whatever the store refuses.

        During a backoff pause nothing is sent: the buffer goes straight to the
        spool. ``final`` (at shutdown) makes one try even during a pause unless
        the store failed in the last second, so stopping stays quick.
        """
        with self._flushing:
            points = self._take()
            now = self._clock()
            waiting = now < self._retry_at and not (final and now - self._failed_at > 1.0)
            if waiting or not self._replay():
                self._spool_points(points)
                return
            for i in range(0, len(points), self.batch_size):
                if not self._write(points[i : i + self.batch_size]):
                    self._spool_points(points[i:])
                    return

    def _replay(self) -> bool:
        """Send spooled segments oldest first; False when the store is still down."""
        if self.spool is None:
            return True
        while item := self.spool.oldest():
            segment, points = item
            # a segment is one batch, written whole or not at all; its points are checked again
            # (they were read back from disk)
            if not self._write(points, validated=False):
                return False
            self._done(segment)
        self.health.dropped("spool_error", self.spool.take_bad())
        return True

    def _done(self, segment: Segment) -> None:
        assert self.spool is not None
        self.spool.remove(segment)
        self._update_spool_gauges()
        log.info("replayed %d spooled points", segment.points)

    def _write(self, batch: list[Point], validated: bool = True) -> bool:
        """One store write; True when the batch is settled (written or refused for good).

        Buffered points were checked on the way in (:meth:`add`), so by default
        the store does not check them again.
        """
        if not batch:
            return True
        try:
            self.store.write(batch, validated=validated)
        except StoreUnavailable as e:
            self.health.write_errors.inc()
            self._failed(e)
            return False
        except (StoreError, InvalidPoint) as e:
            self.health.write_errors.inc()
            self.health.dropped("rejected", len(batch))
            log.error("store refused %d points, dropped: %s", len(batch), e)
            return True
        if self._delay:
            log.info("store is back: %s", self.store.url)
        self._delay = 0.0
        self.health.points_written.inc(len(batch))
        self.health.last_write.set(time.time())
        return True

    def _failed(self, error: Exception) -> None:
        first = not self._delay
        self._delay = min(self._backoff_max, max(self._backoff_min, self._delay * 2))
        self._failed_at = self._clock()
        self._retry_at = self._failed_at + self._delay * random.uniform(0.9, 1.1)
        if first:
            log.warning("store unavailable, spooling and retrying with backoff: %s", error)

    def _spool_points(self, points: list[Point]) -> None:
        if not points:
            return
        if self.spool is None:
            self.health.dropped("spool_error", len(points))
            return
        dropped = spooled = 0
        error = None
        try:
            for i in range(0, len(points), self.batch_size):
                chunk = points[i : i + self.batch_size]
                dropped += self.spool.append(chunk)
                spooled += len(chunk)
        except SpoolError as e:
            error = e
        if error is not None:
            # what was spooled before the error stays spooled; only the rest is lost
            self.health.dropped("spool_error", len(points) - spooled)
            if not self._spool_failing:
                log.error(
                    "cannot spool %d points, dropped (will keep trying): %s",
                    len(points) - spooled,
                    error,
                )
            self._spool_failing = True
        elif self._spool_failing:
            log.info("spool writable again: %s", self.spool.directory)
            self._spool_failing = False
        self.health.points_spooled.inc(spooled)
        if dropped:
            self.health.dropped("spool_full", dropped)
            log.warning(
                "spool full (%d bytes): dropped the %d oldest points", self.spool.max_bytes, dropped
            )
        self._update_spool_gauges()

    def _update_spool_gauges(self) -> None:
        if self.spool is not None:
            self.health.spool_bytes.set(self.spool.bytes)
            self.health.spool_points.set(self.spool.points)
