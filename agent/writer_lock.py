"""One agent per SQLite file: a lock next to the database, held while the agent runs.

Two agents writing one SQLite file both work, but they fight for its write lock
(one spooled 740,075 points in the attack on issue 20) and nothing said so. An
agent now takes an exclusive ``flock`` on ``<database>.agent-lock`` (its pid
written inside) when it opens a SQLite store; a second agent on the same file
refuses to start, naming the pid, unless told to share (``share_store``).
Readers (the dashboard, ``fleetgauge export``) take no lock. The kernel drops
the lock when the process ends, SIGKILL included.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

__all__ = ["WriterLock", "StoreInUse"]


class StoreInUse(OSError):
    """Another agent holds the SQLite file's writer lock; ``holder`` is its pid as written."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


class WriterLock:
    """The writer lock of the SQLite database at ``database``; :meth:`release` to let go."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".agent-lock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreInUse(
                f"another agent (pid {holder}) writes this SQLite file; run one agent per"
                " file, or set share_store (--share-store) to let them take turns",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
