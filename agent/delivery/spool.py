"""A bounded on-disk spool: where points wait while the store is down.

Each failed batch becomes one *segment* file, ``<sequence>-<points>.jsonl``
(one point per line), written to a temporary name, flushed to disk and then
renamed, so a segment is either whole or absent, even after a crash or a
SIGKILL. Segments are replayed oldest first, which keeps points in the order
they were taken. A segment that would take the spool past ``max_bytes`` is
refused (:class:`SpoolFull`): what the spool holds was acknowledged to clients,
so it is never deleted to make room (the delivery keeps the refused points in
memory and the push endpoint answers 503 until the store is back).

A segment that cannot be read back (edited, truncated by a full disk) is
renamed ``*.bad``, kept for inspection and counted as dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
from pathlib import Path
from typing import NamedTuple

from fleetgauge.catalogue import Point

__all__ = ["Spool", "Segment", "SpoolError", "SpoolFull"]

log = logging.getLogger("fleetgauge.agent.spool")

_SUFFIX = ".jsonl"


class SpoolError(OSError):
    """The spool directory cannot be written (read-only, missing permission, disk full)."""


class SpoolFull(SpoolError):
    """A segment would take the spool past its size limit."""


class Segment(NamedTuple):
    """One spooled batch, named by its sequence number."""

    sequence: int
    points: int
    bytes: int
    path: Path


def _encode(p: Point) -> bytes:
    record = [p.measurement, dict(p.tags), dict(p.fields), p.time_ns]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes) -> Point:
    measurement, tags, fields, time_ns = json.loads(line)
    return Point(measurement, tags, fields, time_ns)


class Spool:
    """Segments of points on disk, bounded in bytes, read back oldest first. Thread-safe."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bad = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SpoolError(e.errno, f"cannot create spool directory {self.directory}: {e}") from e
        self._scan()

    def check_writable(self) -> None:
        """Raise OSError now when no segment could be written here (read-only, not ours, full)."""
        probe = self.directory / f".write-check-{os.getpid()}{_SUFFIX}.tmp"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0")
                f.flush()
                os.fsync(f.fileno())
        finally:
            probe.unlink(missing_ok=True)

    def _scan(self) -> None:
        for path in self.directory.glob(f"*{_SUFFIX}.tmp"):
            path.unlink(missing_ok=True)  # a write cut short; its batch was not acknowledged
        for path in self.directory.glob(f"*{_SUFFIX}"):
            sequence, _, points = path.stem.partition("-")
            if sequence.isdigit() and points.isdigit():
                size = path.stat().st_size
                self._segments.append(Segment(int(sequence), int(points), size, path))
        self._segments.sort()

    @property
    def points(self) -> int:
        """Points waiting in the spool."""
        return sum(s.points for s in self._segments)

    @property
    def bytes(self) -> int:
        """Bytes the waiting segments take on disk."""
        return sum(s.bytes for s in self._segments)

    def __bool__(self) -> bool:
        return bool(self._segments)

    def append(self, points: list[Point]) -> None:
        """Store a batch as one segment, whole or not at all.

        Raises :class:`SpoolFull` when it would take the spool past ``max_bytes``
        and SpoolError when the directory cannot be written.
        """
        lines = [_encode(p) for p in points]
        size = sum(map(len, lines))
        if not lines:
            return
        with self._lock:
            if self.bytes + size > self.max_bytes:
                raise SpoolFull(
                    errno.ENOSPC,
                    f"spool full: {self.bytes} bytes held, limit {self.max_bytes}"
                    f" (spool_max_bytes)",
                )
            sequence = self._segments[-1].sequence + 1 if self._segments else 1
            path = self.directory / f"{sequence:012d}-{len(lines)}{_SUFFIX}"
            tmp = path.with_name(path.name + ".tmp")
            try:
                with open(tmp, "wb") as f:
                    f.writelines(lines)
                    f.flush()
                    os.fsync(f.fileno())
                tmp.rename(path)
            except OSError as e:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise SpoolError(
                    e.errno, f"cannot write spool segment in {self.directory}: {e}"
                ) from e
            self._segments.append(Segment(sequence, len(lines), size, path))

    def oldest(self) -> tuple[Segment, list[Point]] | None:
        """The oldest segment and its points, or None when empty.

        An unreadable segment is set aside as ``*.bad`` and reported through
        :meth:`take_bad`.
        """
        with self._lock:
            while self._segments:
                segment = self._segments[0]
                try:
                    with open(segment.path, "rb") as f:
                        return segment, [_decode(line) for line in f if line.strip()]
                except (OSError, ValueError, TypeError) as e:
                    log.error("spool segment %s unreadable, set aside: %s", segment.path, e)
                    self._segments.pop(0)
                    self._bad += segment.points
                    try:
                        segment.path.rename(segment.path.with_suffix(".bad"))
                    except OSError:
                        segment.path.unlink(missing_ok=True)
            return None

    def take_bad(self) -> int:
        """Points in segments set aside as unreadable since the last call."""
        with self._lock:
            bad, self._bad = self._bad, 0
        return bad

    def remove(self, segment: Segment) -> None:
        """Forget a segment once the store has acknowledged its points."""
        with self._lock:
            if segment in self._segments:
                self._segments.remove(segment)
            segment.path.unlink(missing_ok=True)
