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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fleetgauge import catalogue
from fleetgauge.agent.delivery.spool import Segment, Spool, SpoolError, SpoolFull
from fleetgauge.agent.health import Health
from fleetgauge.catalogue import Point
from fleetgauge.stores import StoreError, StoreUnavailable, StoreWriter
from fleetgauge.validation import InvalidPoint, validate_point

__all__ = ["Delivery", "Spool", "SpoolError", "SpoolFull"]

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

# Measurements the collectors sample; every other point was pushed and acknowledged.
_SAMPLED = frozenset(m.name for m in catalogue.RESOURCE_MEASUREMENTS)

# Bytes a spooled point takes, until the spool has measured its own.
_POINT_BYTES = 200


class Delivery:
    """Buffers points and writes them to a store, spooling to disk while it is down."""

    def __init__(
        self,
        store: StoreWriter,
        spool: Spool | None,
        health: Health,
        batch_size: int = 5000,
        max_buffer: int = MAX_BUFFER,
        max_reserve: int | None = None,
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
        self._spool_problem: SpoolError | None = None
        # what could be neither written nor spooled, oldest first; only flush() takes from it
        self._reserve: list[Point] = []
        self._poster: ThreadPoolExecutor | None = None  # sends prepared batches (_write_batches)
        self.max_reserve = 2 * max_buffer if max_reserve is None else max_reserve
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
        # the writer is stuck: move the buffer to disk now, unless a flush is under way (it
        # takes the buffer next); the spool and the reserve change only under this lock
        if size > self.max_buffer and self._flushing.acquire(blocking=False):
            try:
                self._spool_points(self._take())
            finally:
                self._flushing.release()
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

    def backpressure(self) -> tuple[str, float] | None:
        """Why pushed values cannot be taken now, and seconds to wait; None when they can.

        Pushes are refused while anything waits in the reserve (the store is
        failing and the spool cannot take more), and while the store is failing
        with the spool so close to its limit that the buffer would not fit.
        """
        retry = max(1.0, self._retry_at - self._clock())
        if self._reserve:
            return f"the store is unavailable and {self._spool_problem}", retry
        spool = self.spool
        if self._delay and spool is not None:
            held, limit = spool.bytes, spool.max_bytes
            per_point = held / spool.points if spool.points else _POINT_BYTES
            headroom = min(limit // 4, (self.max_buffer + self.batch_size) * per_point)
            if held > limit - headroom:
                return (
                    f"the store is unavailable and the spool is nearly full ({held} of"
                    f" {limit} bytes, spool_max_bytes)",
                    retry,
                )
        return None

    @property
    def reserved(self) -> int:
        """Points waiting in memory because they could be neither written nor spooled."""
        return len(self._reserve)

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
        if self._poster is not None:
            self._poster.shutdown()
            self._poster = None
        lost = len(self._reserve)
        if lost:
            self._reserve.clear()
            self.health.dropped(self._drop_reason(), lost)
            log.error(
                "%d points could be neither written nor spooled before stopping: lost (%s)",
                lost,
                self._spool_problem,
            )
        self._update_spool_gauges()

    @property
    def buffered(self) -> int:
        """Points waiting in memory for the next flush."""
        return len(self._buffer)

    def forget_idle(self) -> None:
        """Let the store drop what it caches about series not written since the last call.

        Under the flush lock: the store's write caches belong to the writer.
        """
        with self._flushing:
            self.store.forget_idle()

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
            unsettled = self._write_batches(points)
            if unsettled is not None:
                self._spool_points(points[unsettled:])

    def _write_batches(self, points: list[Point]) -> int | None:
        """Write ``points`` batch by batch; the index of the first one not written because the
        store is unavailable, or None when all are settled.

        A store that can prepare a batch apart from sending it (InfluxDB) has the next
        batch formatted here while the last one is on its way on the poster thread, so the
        agent's CPU and the store's work overlap instead of taking turns. While a full
        batch more waits in the buffer, it is taken (appended to ``points``) and written
        in the same way, so a flood of pushed values streams without a pause per flush.
        """
        size = self.batch_size
        if getattr(self.store, "prepare", None) is None:
            for i in range(0, len(points), size):
                if not self._write(points[i : i + size]):
                    return i
            return None
        if self._poster is None:
            self._poster = ThreadPoolExecutor(1, thread_name_prefix="delivery-post")
        store: Any = self.store
        ahead, ahead_end = None, 0  # the batch at i, prepared while the last was being sent
        i = 0
        while i < len(points):
            if ahead is not None:
                current, end = ahead, ahead_end
            else:
                end = min(i + size, len(points))
                current = self._prepared(points[i:end], None)
            batch, ahead = points[i:end], None
            if current is None:  # preparing failed (a bug, logged): the plain write says why
                if not self._write(batch):
                    return i
                i = end
                continue
            sent = self._poster.submit(store.send, current)
            # let the poster thread take the interpreter lock now, so the request is on its
            # way before this thread formats the next batch (else it waits a switch interval,
            # and the store idles meanwhile)
            time.sleep(0)
            if end >= len(points):
                points += self._take_batch()
            if end < len(points):
                ahead_end = min(end + size, len(points))
                ahead = self._prepared(points[end:ahead_end], current)
            written = self._settle(batch, sent.result)
            if written is None:
                return i
            if written:
                store.commit(current)
            else:  # dropped: the next was staged on rows that are not the store's
                ahead = None
            i = end
        return None

    def _take_batch(self) -> list[Point]:
        """A batch from the head of the buffer when a full one waits there (and the writer is
        not stopping); else nothing."""
        with self._lock:
            if self._stopping or len(self._buffer) < self.batch_size:
                return []
            taken = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            self._room.notify_all()
        return taken

    def _prepared(self, batch: list[Point], after: Any) -> Any:
        try:
            return self.store.prepare(batch, validated=True, after=after)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a bug in a store: the batch is written the plain way
            log.exception("preparing %d points failed (a bug: report it)", len(batch))
            return None

    def _replay(self) -> bool:
        """Send spooled segments oldest first; False when the store is still down."""
        if self.spool is None:
            return self._write_reserve()
        while item := self.spool.oldest():
            segment, points = item
            # a segment is one batch, written whole or not at all; its points are checked again
            # (they were read back from disk)
            if not self._write(points, validated=False):
                return False
            self._done(segment)
        self.health.dropped("spool_error", self.spool.take_bad())
        return self._write_reserve()

    def _write_reserve(self) -> bool:
        """Write the reserve to the store, oldest first; False when the store is still down."""
        while self._reserve:
            batch = self._reserve[: self.batch_size]
            if not self._write(batch):
                return False
            del self._reserve[: len(batch)]
            if not self._reserve:
                log.info("wrote the points held in memory; taking pushes again")
                self._update_spool_gauges()
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
        return self._settle(batch, lambda: self.store.write(batch, validated=validated)) is not None

    def _settle(self, batch: list[Point], write: Callable[[], object]) -> bool | None:
        """Run ``write`` of ``batch`` and count the outcome: True when written, False when
        refused for good (dropped), None when the store is unavailable (backing off)."""
        try:
            write()
        except StoreUnavailable as e:
            self.health.write_errors.inc()
            self._failed(e)
            return None
        except (StoreError, InvalidPoint) as e:
            self.health.write_errors.inc()
            self.health.dropped("rejected", len(batch))
            log.error("store refused %d points, dropped: %s", len(batch), e)
            return False
        except Exception:  # a bug in a store: it must not end the writer thread with it
            self.health.write_errors.inc()
            self.health.dropped("rejected", len(batch))
            log.exception("store failed on %d points, dropped (a bug: report it)", len(batch))
            return False
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
        """Spool points behind the reserve; what the spool refuses waits in the reserve."""
        if not points:
            return
        # the reserve keeps what it holds until _hold replaces it: a push arriving while the
        # spool is being written is still refused (an empty reserve meanwhile let one in)
        points = self._reserve + points
        spooled = 0
        if self.spool is not None:
            try:
                for i in range(0, len(points), self.batch_size):
                    chunk = points[i : i + self.batch_size]
                    self.spool.append(chunk)
                    spooled += len(chunk)
            except SpoolError as e:
                if self._spool_problem is None:
                    log.error(
                        "cannot spool %d points, holding them in memory and refusing pushes"
                        " (503) until the store or the spool takes them: %s",
                        len(points) - spooled,
                        e,
                    )
                self._spool_problem = e
        elif self._spool_problem is None:
            self._spool_problem = SpoolError(0, "there is no spool")
        if spooled == len(points) and self._spool_problem is not None:
            log.info("the spool takes points again")
            self._spool_problem = None
        self.health.points_spooled.inc(spooled)
        self._hold(points[spooled:])
        self._update_spool_gauges()

    def _hold(self, points: list[Point]) -> None:
        """Keep points in the reserve (replacing what it held: they are among them), in order.

        Pushed points were acknowledged: all are kept (backpressure stops more
        arriving, so they are at most what was buffered and being written when
        the refusals began). Sampled points are kept up to ``max_reserve``;
        the newest beyond it are dropped and counted.
        """
        room = self.max_reserve
        kept = []
        for p in points:
            if p.measurement not in _SAMPLED:
                kept.append(p)
            elif room:
                kept.append(p)
                room -= 1
        self._reserve = kept
        dropped = len(points) - len(kept)
        if dropped:
            self.health.dropped(self._drop_reason(), dropped)
            log.warning(
                "store down and spool refusing (%s): %d points held in memory (at most %d"
                " samples, reserve_max_points); dropped %d new samples",
                self._spool_problem,
                len(kept),
                self.max_reserve,
                dropped,
            )

    def _drop_reason(self) -> str:
        return "spool_full" if isinstance(self._spool_problem, SpoolFull) else "spool_error"

    def _update_spool_gauges(self) -> None:
        if self.spool is not None:
            self.health.spool_bytes.set(self.spool.bytes)
            self.health.spool_points.set(self.spool.points)
        self.health.reserve_points.set(len(self._reserve))
