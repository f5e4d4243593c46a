"""Failed logins per client address, limited: password guessing gets 429, not ten tries a second.

After ``ATTEMPTS`` failed logins from one address within ``WINDOW_S`` seconds,
that address is refused with 429 and ``Retry-After`` for ``WINDOW_S`` seconds,
whatever it sends (a right password too, or guessing would go on at full speed
and succeed). A request without credentials (a browser's first) is not a
failure. The counts live in a small SQLite file that the site's worker
processes share (``LOGINS_ENV`` names it; :func:`fleetgauge.dashboard.app.serve`
makes one per run), so the limit holds for the site, not per worker. Log lines
name the user and address, never the password. Behind a reverse proxy every
client has the proxy's address: limit logins at the proxy then.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["LoginLimiter", "LOGINS_ENV", "ATTEMPTS", "WINDOW_S"]

log = logging.getLogger(__name__)

LOGINS_ENV = "FLEETGAUGE_DASHBOARD_LOGINS"
ATTEMPTS = 5
WINDOW_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS failures (
    address TEXT PRIMARY KEY,
    first REAL NOT NULL,
    count INTEGER NOT NULL,
    blocked_until REAL NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0
)
"""


class LoginLimiter:
    """Failed logins by address, in the SQLite file at ``path`` (made when None)."""

    def __init__(
        self,
        path: str | Path | None = None,
        attempts: int = ATTEMPTS,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if path is None:
            path = os.environ.get(LOGINS_ENV) or Path(
                tempfile.mkdtemp(prefix="fleetgauge-logins-"), "logins.db"
            )
        self.path, self.attempts, self.window_s, self._clock = Path(path), attempts, window_s, clock
        self._local = threading.local()
        with self._db() as db:
            db.execute(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def blocked(self, address: str) -> float:
        """Seconds ``address`` is still refused (counted as one more refusal); 0 when it is not."""
        now = self._clock()
        db = self._db()
        row = db.execute(
            "SELECT blocked_until FROM failures WHERE address = ?", (address,)
        ).fetchone()
        if row is None or row[0] <= now:
            return 0.0
        db.execute("UPDATE failures SET refused = refused + 1 WHERE address = ?", (address,))
        return row[0] - now

    def failed(self, address: str, user: str) -> float:
        """Record a failed login; seconds ``address`` is now refused (0 while under the limit)."""
        now = self._clock()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT first, count, refused FROM failures WHERE address = ?", (address,)
            ).fetchone()
            first, count, refused = (
                (now, 1, 0)
                if row is None or now - row[0] > self.window_s
                else (
                    row[0],
                    row[1] + 1,
                    row[2],
                )
            )
            blocked_until = now + self.window_s if count >= self.attempts else 0.0
            db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)",
                (address, first, count, blocked_until, refused),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        shown = user[:64]
        if blocked_until:
            log.warning(
                "failed login for user %r from %s: %d failures in %g s, refusing this address"
                " (429) for %g s; %d requests refused while blocked before",
                shown,
                address,
                count,
                self.window_s,
                self.window_s,
                refused,
            )
            return self.window_s
        log.warning(
            "failed login for user %r from %s (%d of %d)", shown, address, count, self.attempts
        )
        return 0.0
