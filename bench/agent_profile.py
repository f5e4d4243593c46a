"""Where the agent's CPU goes: its real schedule in this process, each part timed on its thread.

Used by ``python -m bench.bench_agent --profile``. It builds :class:`fleetgauge.agent.daemon.Agent`
exactly as ``fleetgauge agent`` does (every collector, SQLite store, /metrics on a
free loopback port), wraps each collector's ``collect``, the sample job, the flush
job and the /metrics WSGI app with a thread-CPU-time counter, runs the real
schedule for ``seconds`` while a thread here scrapes /metrics every ``interval``,
and reports each part in ms per call and as percent of one core. What is left of
the process's CPU time (minus the scraping thread) is the runtime around the
jobs: APScheduler, the HTTP server's thread per request, the garbage collector.

Then it cProfiles the same work done synchronously in this thread (sample,
flush, render /metrics) and prints the functions with the most own time; the
stats are written to ``bench/out/agent-profile.prof``.
"""

from __future__ import annotations

import cProfile
import http.client
import io
import os
import pstats
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import disable_created_metrics

from bench.gpu_agent import install_fake_nvml
from fleetgauge.agent.collectors import build_collectors
from fleetgauge.agent.config import AgentConfig
from fleetgauge.agent.daemon import Agent
from fleetgauge.agent.exposition import Renderer

__all__ = ["profile_agent", "free_port"]

PROFILE_CYCLES = 200


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Costs:
    """Thread CPU seconds and calls per part, from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - t0
                with self._lock:
                    self.seconds[name] = self.seconds.get(name, 0.0) + spent
                    self.calls[name] = self.calls.get(name, 0) + 1

        return timed


class _TimedCollector:
    def __init__(self, inner: Any, costs: _Costs) -> None:
        self.name = inner.name
        self.collect = costs.wrap(f"  collect {inner.name}", inner.collect)
        self.close = getattr(inner, "close", lambda: None)


def _process_cpu() -> float:
    return sum(os.times()[:2])


def _config(
    tmp: Path, interval: float, metrics_port: int, flush: float | None = None
) -> AgentConfig:
    return AgentConfig(
        store=f"sqlite:///{tmp / 'agent.db'}",
        worker="bench-profile",
        environment="bench",
        interval=interval,
        flush_interval=interval if flush is None else flush,
        spool_dir=str(tmp / "spool"),
        metrics_port=metrics_port,
        log_level="warning",
    )


def scheduled_costs(
    seconds: float,
    interval: float,
    tmp: Path,
    headers: Mapping[str, str],
    flush: float | None = None,
) -> list[tuple[str, float, int]]:
    """(part, CPU seconds, calls) of the real schedule over ``seconds``; first row the total.

    The scraper sends ``headers`` on one connection, reopened when the agent closes it.
    """
    costs = _Costs()
    config = _config(tmp, interval, metrics_port=free_port(), flush=flush)
    plain = build_collectors(config.identity_tags())
    agent = Agent(config, collectors=[_TimedCollector(c, costs) for c in plain])
    agent.sample = costs.wrap("sample job (all collectors + buffer)", agent.sample)
    # the delivery's writer thread flushes on its own schedule, not through agent.flush
    agent.delivery.flush = costs.wrap("flush (delivery thread, SQLite write)", agent.delivery.flush)
    assert agent.metrics is not None
    # behind the token check: the agent's own renderer, or the library's WSGI app
    agent.metrics._scrape = costs.wrap("render /metrics (WSGI)", agent.metrics._scrape)
    agent.metrics._app = costs.wrap("render /metrics (library WSGI app)", agent.metrics._app)
    conn = http.client.HTTPConnection("127.0.0.1", config.metrics_port, timeout=5)
    agent.start()
    try:
        time.sleep(2 * interval)
        scraper_s = 0.0
        cpu0, t0 = _process_cpu(), time.monotonic()
        costs.seconds.clear()
        costs.calls.clear()
        tick = t0
        while tick < t0 + seconds:
            s0 = time.thread_time()
            conn.request("GET", "/metrics", headers=dict(headers))
            conn.getresponse().read()
            scraper_s += time.thread_time() - s0
            tick += interval
            time.sleep(max(0.0, tick - time.monotonic()))
        total = _process_cpu() - cpu0 - scraper_s
    finally:
        conn.close()
        agent.stop()
    rows = [("agent process (less this scraper)", total, 0)]
    rows += [(k, v, costs.calls[k]) for k, v in costs.seconds.items()]
    parts = sum(v for k, v, _ in rows[1:] if not k.startswith("  "))
    rows.append(("rest: scheduler, HTTP server threads, GC", total - parts, 0))
    return rows


def hot_functions(cycles: int, tmp: Path, stats_path: Path) -> str:
    """cProfile ``cycles`` synchronous rounds of sample + flush + render; top by own time."""
    agent = Agent(_config(tmp, 1.0, metrics_port=0))
    render = Renderer(agent.registry).render  # what a Prometheus scrape gets
    try:
        agent.sample()
        agent.flush()
        render("openmetrics")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(cycles):
            agent.sample()
            agent.flush()
            render("openmetrics")
        profile.disable()
    finally:
        agent.store.close()
    stats_path.parent.mkdir(parents=True, exist_ok=True)
    profile.dump_stats(stats_path)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def profile_agent(
    seconds: float,
    interval: float,
    tmp: Path,
    out_dir: Path,
    headers: Mapping[str, str],
    gpus: int = 0,
    flush: float | None = None,
) -> None:
    """Print the per-part costs of the scheduled agent, then its hottest functions; the
    agent as ``fleetgauge agent`` runs it (no ``*_created`` series), reading ``gpus`` GPUs
    of the tests' fake NVML, its store written every ``flush`` seconds (default: every
    interval)."""
    if gpus:
        install_fake_nvml(gpus)
    disable_created_metrics()
    (tmp / "scheduled").mkdir(parents=True, exist_ok=True)
    (tmp / "sync").mkdir(parents=True, exist_ok=True)
    _progress(f"[profile] running the agent in-process for {seconds:g} s, parts timed")
    rows = scheduled_costs(seconds, interval, tmp / "scheduled", headers, flush)
    print(f"\nWhere the agent's CPU goes ({seconds:g} s, interval {interval:g} s, cold caches):")
    print(f"{'part':44} {'% of one core':>13} {'ms per call':>11} {'calls':>6}")
    for name, spent, calls in rows:
        per_call = f"{spent / calls * 1000:.2f}" if calls else ""
        print(f"{name:44} {spent / seconds * 100:13.3f} {per_call:>11} {calls or '':>6}")
    _progress(f"[profile] cProfile of {PROFILE_CYCLES} synchronous sample+flush+render rounds")
    stats_path = out_dir / "agent-profile.prof"
    print(f"\nHottest functions, {PROFILE_CYCLES} rounds back to back (warm caches):")
    print(hot_functions(PROFILE_CYCLES, tmp / "sync", stats_path))
    print(f"full stats in {stats_path}")
