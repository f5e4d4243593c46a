"""The agent process: wiring only — collectors, delivery, /metrics and the schedule.

An APScheduler job *sample* runs every ``interval`` on its own thread (all
collectors, points to the exposition snapshot and the delivery buffer); the
delivery's writer thread writes the buffer and spool to the store every
``flush_interval`` (sooner when a full batch waits), and the push endpoint
feeds the same buffer. A slow store therefore never delays sampling.
:meth:`Agent.run` blocks until SIGTERM or SIGINT, then stops the schedule and
the push endpoint, flushes (spooling what the store does not take) and
returns, so the process exits 0 within a few seconds.
"""

from __future__ import annotations

import gc
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry

from fleetgauge import catalogue
from fleetgauge.agent.collectors import ResourceCollector, build_collectors
from fleetgauge.agent.collectors.process import ProcessRegistry
from fleetgauge.agent.config import AgentConfig, ConfigError
from fleetgauge.agent.connections import Limits, default_max_connections, raise_descriptor_limit
from fleetgauge.agent.delivery import Delivery, Spool
from fleetgauge.agent.exposition import (
    MetricsServer,
    PipelineSeries,
    Registry,
    SelfProcess,
    Snapshot,
)
from fleetgauge.agent.health import Health
from fleetgauge.agent.push import PushParser, PushServer
from fleetgauge.agent.push.series import SeriesLimit
from fleetgauge.agent.writer_lock import WriterLock
from fleetgauge.stores import Store, StoreError, open_store
from fleetgauge.timeutil import NS_PER_S
from fleetgauge.validation import forget_checked_tags

__all__ = ["Agent"]

log = logging.getLogger("fleetgauge.agent")

GC_THRESHOLDS = (50_000, 20, 20)
"""The cyclic collector's generation thresholds in the agent (Python's: 700, 10, 10)."""
SWITCH_INTERVAL_S = 0.001
"""How long a thread may hold the interpreter lock while another waits for it (Python: 5 ms)."""


class Agent:
    """One running agent; build with a config, then :meth:`run` (or :meth:`start`/:meth:`stop`)."""

    def __init__(
        self,
        config: AgentConfig,
        store: Store | None = None,
        collectors: Sequence[ResourceCollector] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or Registry()  # its collectors listed: rendered from rows
        self.registry.register(SelfProcess())  # process_*: what the library's collector writes
        self.health = Health(self.registry, config.worker, config.environment)
        self.snapshot = Snapshot()
        self.processes = ProcessRegistry(config.host_proc)
        self.registry.register(self.snapshot)
        self.collectors = list(
            collectors
            if collectors is not None
            else build_collectors(
                config.identity_tags(),
                processes=self.processes,
                mounts=config.mounts,
                include_loopback=config.include_loopback,
                enabled=config.collectors,
                host_proc=config.host_proc,
                host_root=config.host_root,
            )
        )
        self.health.track_collectors([c.name for c in self.collectors])
        try:
            self.store = store or open_store(config.store)
        except (OSError, StoreError) as e:
            raise _start_error(config, "store", "cannot open the store", e) from None
        self._writer_lock = None
        try:
            self._claim(config)
            self._listen(config)
        except BaseException:
            if store is None:
                self.store.close()
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        self._failing: set[str] = set()
        self._held: list[catalogue.Point] = []  # process samples waiting for process_flush_interval
        self._held_since = time.monotonic()
        self._stop = threading.Event()
        # The sample job runs on the scheduler's own thread (DebugExecutor), not handed to a
        # pool thread: at a 1 s interval the hand-off (a future, a queue, a second thread
        # woken) cost a quarter of what the scheduler costs. A sample still late when its
        # next run is due is coalesced into one run, as max_instances=1 did before.
        self._scheduler = BackgroundScheduler(
            executors={"sample": DebugExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )

    def _claim(self, config: AgentConfig) -> None:
        """Take the SQLite file's writer lock, unless agents are told to share it."""
        database = getattr(self.store, "path", None)
        if database is None or config.share_store:
            return
        try:
            self._writer_lock = WriterLock(database)
        except OSError as e:
            raise _start_error(config, "store", "cannot write there", e) from None

    def _listen(self, config: AgentConfig) -> None:
        """The spool, the delivery and both listeners; a start-up error names its setting."""
        try:
            spool = Spool(config.spool_dir, config.spool_max_bytes)
            spool.check_writable()
        except OSError as e:
            raise _start_error(config, "spool_dir", "cannot keep a spool there", e) from None
        self.delivery = Delivery(
            self.store,
            spool,
            self.health,
            batch_size=config.batch_size,
            max_reserve=config.reserve_max_points,
        )
        self.series = PipelineSeries(config.worker, config.environment, config.push_histograms)
        self.registry.register(self.series)
        for c in self.collectors:  # GPU events (XID, ECC, lost) go out the moment they happen
            if (watch := getattr(c, "watch_events", None)) is not None:
                self.registry.register(watch(self.delivery.add))
        self.push = self.metrics = None
        try:
            self.push = self._push_server(config) if config.push_port else None
        except OSError as e:
            where = f"cannot listen on {config.push_host}"
            raise _start_error(config, "push_port", where, e) from None
        try:
            self.metrics = self._metrics_server(config) if config.metrics_port else None
        except OSError as e:
            if self.push is not None:
                self.push.close()
            where = f"cannot listen on {config.metrics_host}"
            raise _start_error(config, "metrics_port", where, e) from None

    def _limits(self, config: AgentConfig) -> Limits:
        descriptors = raise_descriptor_limit()
        return Limits(
            header_timeout=config.header_timeout,
            body_timeout=config.body_timeout,
            max_connections=config.max_connections or default_max_connections(descriptors),
            max_reading_bytes=config.push_max_reading_bytes,
        )

    def _push_server(self, config: AgentConfig) -> PushServer:
        return PushServer(
            config.push_host,
            config.push_port,
            PushParser(config.identity_tags()),
            self.delivery,
            self.health,
            self.series,
            token=config.push_token,
            max_body=config.push_max_body,
            processes=self.processes,
            series_limit=SeriesLimit(
                config.push_max_series,
                config.push_series_idle,
                lambda n: self.health.push_refused("series_limit", n),
            ),
            allowed_hosts=config.allowed_hosts,
            limits=self._limits(config),
        )

    def _metrics_server(self, config: AgentConfig) -> MetricsServer:
        return MetricsServer(
            config.metrics_host,
            config.metrics_port,
            self.registry,
            config.metrics_token,
            config.allowed_hosts,
            self.health.refused,
            self._limits(config),
        )

    # --- jobs ------------------------------------------------------------------
    def sample(self) -> None:
        """Run every collector once; a failing collector is logged once and counted."""
        started = time.perf_counter()
        now_ns = time.time_ns()
        for c in self.collectors:
            try:
                points = c.collect(now_ns)
            except Exception as e:  # one broken collector must not stop the others
                self.health.collector_failed(c.name)
                if c.name not in self._failing:
                    log.exception(
                        "collector %s failed (logged once until it recovers): %s", c.name, e
                    )
                self._failing.add(c.name)
                continue
            if c.name in self._failing:
                log.info("collector %s works again", c.name)
                self._failing.discard(c.name)
            self.snapshot.update(c.name, points)
            if c.name == catalogue.PROCESS_MEASUREMENT.name:
                self._hold(points)
            else:
                self.delivery.add(points)
        self.health.samples.inc()
        self.health.sample_seconds.observe(time.perf_counter() - started)

    def _hold(self, points: Sequence[catalogue.Point]) -> None:
        """Keep process samples until ``process_flush_interval`` has passed, then hand them on.

        A store write costs per series: 10 registered processes written every
        second cost the agent as much again as all its other collectors; held
        for 10 s they are one write of 10 points per process (see the README's
        attribution section for the figures). At most ``batch_size`` wait.
        """
        self._held.extend(points)
        now = time.monotonic()
        wait = max(self.config.process_flush_interval, self.config.flush_interval)
        wait -= self.config.interval / 2  # a sample a hair early does not wait a whole interval
        if now - self._held_since >= wait or len(self._held) >= self.config.batch_size:
            self._release_held(now)

    def _release_held(self, now: float) -> None:
        held, self._held, self._held_since = self._held, [], now
        if held:
            self.delivery.add(held)

    def forget_idle(self) -> None:
        """Give back the memory held for series without a value for ``push_series_idle``.

        Series come and go (a process id, a request id put in a deployment
        name): every per-series cache of the write path forgets the ones not
        seen since the last run, so the agent's memory follows the active
        series, not every series it ever saw.
        """
        if self.push is not None:
            idle_ns = int(self.config.push_series_idle * NS_PER_S)
            self.push.parser.forget_idle(time.time_ns(), idle_ns)
        forget_checked_tags()
        self.delivery.forget_idle()
        self.series.forget_idle()
        if self.metrics is not None:
            self.metrics.forget()

    def flush(self) -> None:
        """Write the buffer (and any spool) to the store."""
        self.delivery.flush()

    # --- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Serve /metrics and start the schedule (after a random delay up to ``jitter``)."""
        c = self.config
        # A thread that waits for the interpreter lock gets it within 1 ms rather than 5:
        # while a push flood keeps the handler and the writer busy formatting, the thread
        # posting to the store would otherwise wait up to 5 ms to send and again to read
        # the answer, every batch (1 ms took a writer from 190,000 to 255,000 points/s).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        if self.metrics is not None:
            self.metrics.start()
        if self.push is not None:
            self.push.start()
        now = datetime.now(UTC)
        first = now + timedelta(seconds=random.uniform(0, c.jitter))
        self._scheduler.add_job(
            self.sample,
            "interval",
            seconds=c.interval,
            next_run_time=first,
            start_date=first,
            executor="sample",
            misfire_grace_time=max(1, int(c.interval)),
        )
        self._scheduler.add_job(self.forget_idle, "interval", seconds=c.push_series_idle)
        self._scheduler.start()
        self.delivery.start(c.flush_interval)
        log.info(
            "agent started: worker %s, environment %s, every %gs, %d collectors (%s), store %s%s",
            c.worker,
            c.environment,
            c.interval,
            len(self.collectors),
            ", ".join(x.name for x in self.collectors),
            self.store.url,
            f", /metrics on {c.metrics_host}:{self.metrics.port}" if self.metrics else "",
        )
        if self.push is not None:
            log.info(
                "push endpoint on http://%s:%d/v1/metrics and /v1/events%s",
                c.push_host,
                self.push.port,
                " (bearer token required)" if c.push_token else "",
            )

    def stop(self) -> None:
        """Stop sampling, flush what is buffered (spooling it if the store is down), close."""
        self._scheduler.shutdown(wait=True)
        if self.push is not None:
            self.push.stop()
        self._release_held(time.monotonic())
        self.delivery.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for c in self.collectors:
            close = getattr(c, "close", None)
            if close is not None:
                close()
        self.store.close()
        if self._writer_lock is not None:
            self._writer_lock.release()
        h = self.health
        log.info(
            "agent stopped: %d samples, %d points written, %d spooled, %d dropped,"
            " %d waiting in the spool",
            h.total(catalogue.AGENT_SAMPLES),
            h.total(catalogue.AGENT_POINTS_WRITTEN),
            h.total(catalogue.AGENT_POINTS_SPOOLED),
            h.total(catalogue.AGENT_POINTS_DROPPED),
            self.delivery.spool.points if self.delivery.spool else 0,
        )

    def run(self) -> None:
        """Start, block until SIGTERM/SIGINT, then stop cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        gc.freeze()  # start-up objects (modules, collectors, registry) leave the GC's scans
        # A pushed value is a few objects freed by reference counting, not by the collector;
        # at Python's default a flood ran a young-generation scan every 700 of them (and a
        # full scan of every buffered point every 70,000): 5-8 % of the agent's CPU.
        gc.set_threshold(*GC_THRESHOLDS)
        self._stop.wait()
        log.info("stopping: flushing what is buffered")
        self.stop()

    def request_stop(self) -> None:
        """Make :meth:`run` return (what the signal handlers do)."""
        self._stop.set()


def _start_error(
    config: AgentConfig, setting: str, doing: str, error: BaseException
) -> ConfigError:
    """One line for a start-up failure: the setting, its value and source, what failed and why."""
    why = getattr(error, "strerror", None) or str(error)
    return ConfigError(f"{config.where(setting)}: {doing}: {why}")
