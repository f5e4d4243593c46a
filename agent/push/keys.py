"""Idempotency keys: a batch sent again after a lost answer is answered again, stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RecentKeys"]

_KEY_WINDOW_S = 300.0  # an Idempotency-Key is remembered 5 to 10 minutes ...
_KEYS_PER_WINDOW = 5_000  # ... and at most 10,000 keys at once


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
