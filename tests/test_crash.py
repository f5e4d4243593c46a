"""SIGKILL at random moments while values pour in (issue 20, point 8).

The real agent takes 1,000 values a second into a SQLite store and is killed
with SIGKILL 20 times, at random moments, then started again on the same store
and spool. After every kill the database passes ``PRAGMA integrity_check``; at
the end every value answered 202 is in the store, except the unwritten tail of
a killed agent (its buffer, acknowledged within a flush interval and a write
before the kill: never a value followed by a stored one), and nothing is stored
that was not sent.
"""

from __future__ import annotations

import http.client
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path

from agent_process import AgentProcess, push_metrics
from influx_server import free_port

from fleetgauge import catalogue
from fleetgauge.stores import open_store

S = 1_000_000_000
FLUSH_S = 0.5
KILLS = 20
RATE = 1000  # values a second, in batches of 50


class Pusher:
    """Sends numbered values at RATE a second; remembers when each was acknowledged."""

    def __init__(self, port: int, t0: float) -> None:
        self.port, self.t0 = port, t0
        self.next = 0
        self.acked: dict[int, float] = {}  # value -> monotonic time of its 202
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        tick = 50 / RATE
        due = time.monotonic()
        while not self._stop.is_set():
            due += tick
            first, self.next = self.next, self.next + 50
            items = [
                {"metric": "seq", "value": i, "deployment": "crash", "time": self.t0 + i / 1000}
                for i in range(first, first + 50)
            ]
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                status, _ = push_metrics(conn, items)
                if status == 202:
                    now = time.monotonic()
                    self.acked.update((i, now) for i in range(first, first + 50))
            except (OSError, http.client.HTTPException, ValueError):
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(max(0.0, due - time.monotonic()))


def _runs(values: list[int]) -> list[list[int]]:
    """Sorted values split where one is missing: runs acknowledged one after the other."""
    runs: list[list[int]] = []
    for i in values:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _before(t: float, kills: list[float]) -> str:
    """When ``t`` was, against the kills around it (for a failure message)."""
    later = [k - t for k in kills if k >= t]
    return f"{min(later):.2f} s before the next kill" if later else "after the last kill"


def _integrity(db: Path) -> str:
    with sqlite3.connect(db, timeout=10) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


def test_twenty_sigkills_leave_a_sound_store_and_lose_at_most_a_flush_interval(
    tmp_path: Path,
) -> None:
    db = tmp_path / "fg.db"
    store_url = f"sqlite:///{db}"
    push_port = free_port()
    rng = random.Random(20)
    args = (
        *("--store", store_url, "--worker", "crash-worker", "--interval", "0.5"),
        *("--flush-interval", str(FLUSH_S), "--collectors", "cpu", "--push-port", str(push_port)),
    )
    pusher = Pusher(push_port, time.time() - 3600)
    kills: list[float] = []
    pusher.start()
    try:
        for _ in range(KILLS):
            agent = AgentProcess(tmp_path, *args).start()
            time.sleep(rng.uniform(0.3, 2.0))
            assert agent.proc is not None
            kills.append(time.monotonic())
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(10)
            agent._log.close()
            assert _integrity(db) == "ok"
        last = AgentProcess(tmp_path, *args).start()  # replays the spool
        time.sleep(2)
    finally:
        pusher.stop()
    code, _ = last.stop()
    assert code == 0, last.log()
    assert _integrity(db) == "ok"
    assert last.log().count("agent started") == KILLS + 1

    store = open_store(store_url, create=False)
    try:
        stored = [
            int(p.fields["value"])
            for p in store.stream_points(catalogue.PIPELINE_METRIC.name, 0, time.time_ns() + S)
        ]
    finally:
        store.close()
    assert len(stored) == len(set(stored))  # nothing twice
    assert set(stored) <= set(range(pusher.next))  # nothing that was not sent
    kept = set(stored)
    lost = {i: t for i, t in pusher.acked.items() if i not in kept}
    # What a SIGKILL may lose is the agent's unwritten tail: values are written in the order
    # they were acknowledged, so within one run of values acknowledged in a row (one agent's
    # life, or part of it) the lost ones come after every stored one. A lost value followed by
    # a stored one is a hole, a real loss, whatever the timing.
    for run in _runs(sorted(pusher.acked)):
        gone = [i for i in run if i not in kept]
        if gone:
            after = [i for i in run if i > gone[0] and i in kept]
            assert not after, (
                f"value {gone[0]} was acknowledged and lost, but {after[0]}, acknowledged after it"
                f" by the same agent, was stored: a hole, not the tail a SIGKILL loses"
            )
    # ... and that tail is young: acknowledged within one flush interval, plus the write in
    # progress, before a kill. On this 2-core machine a SQLite commit that runs a WAL
    # checkpoint (an fsync) has taken over 1.5 s under CI's disk load, so 4 s is allowed for
    # it. An agent lives 0.3 to 2 s, so this bound alone would not catch a writer that never
    # flushed: the share stored below does (about 80 % here; such a writer keeps only the
    # last agent's values, a few percent).
    window = FLUSH_S + 4.0
    late = {i: t for i, t in lost.items() if not any(0 <= k - t <= window for k in kills)}
    assert not late, (
        f"{len(late)} acknowledged values lost outside {window} s before a kill: the first,"
        f" {min(late)}, acknowledged {_before(late[min(late)], kills)}"
    )
    assert len(pusher.acked) >= KILLS * 300, len(pusher.acked)  # values flowed between kills
    assert len(stored) >= 0.4 * len(pusher.acked), (len(stored), len(pusher.acked))
    print(
        f"crash: {KILLS} SIGKILLs, {len(pusher.acked)} values acknowledged, {len(stored)} stored,"
        f" {len(lost)} lost, all in an agent's unwritten tail within {window} s before a kill"
    )
