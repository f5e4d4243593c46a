"""What one running dashboard knows: its settings and a small pool of open stores.

Dash registers page callbacks once per process, so the site is one per process
too: :func:`configure` is called by ``create_app`` before the pages are imported
and the pages read it with :func:`current`. The web server answers requests on
several threads; each read borrows a store from the pool (a SQLite connection
or an InfluxDB client is not shared between threads at the same time).
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from dataclasses import dataclass, field

from fleetgauge.dashboard.thresholds import Thresholds
from fleetgauge.read.usage import Prices
from fleetgauge.stores import StoreReader, open_store

__all__ = ["SiteConfig", "StorePool", "configure", "current", "DEFAULT_POINTS"]

DEFAULT_POINTS = 1000
"""Buckets per curve when the browser has not said how wide its charts are."""
MIN_POINTS, MAX_POINTS = 100, 2000


@dataclass(frozen=True)
class SiteConfig:
    """Settings of a running dashboard."""

    store: str
    host: str = "127.0.0.1"
    port: int = 8050
    thresholds: Thresholds = field(default_factory=Thresholds)
    users: dict[str, str] = field(default_factory=dict, repr=False)
    insecure: bool = False
    allowed_hosts: tuple[str, ...] = ()
    """Names the site answers to beyond loopback names (and, off loopback, IP addresses)."""
    prices: Prices = field(default_factory=Prices)
    """What an hour of a GPU, a core or a worker costs: the Pipeline page's cost column."""


class StorePool:
    """Open stores handed to one reader at a time; at most ``size`` are kept open."""

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self._idle: queue.LifoQueue[StoreReader] = queue.LifoQueue(maxsize=size)

    @contextlib.contextmanager
    def store(self) -> Iterator[StoreReader]:
        """A store for the length of the block; a failed one is closed, not kept."""
        try:
            s = self._idle.get_nowait()
        except queue.Empty:
            s = open_store(self.url, create=False)
        try:
            yield s
        except BaseException:
            s.close()
            raise
        try:
            self._idle.put_nowait(s)
        except queue.Full:
            s.close()

    def close(self) -> None:
        """Close every idle store."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


@dataclass
class Site:
    """The configuration and store pool of this process's dashboard."""

    config: SiteConfig
    pool: StorePool


_SITE: Site | None = None


def configure(config: SiteConfig) -> Site:
    """Set the site of this process (replacing any earlier one) and return it."""
    global _SITE
    if _SITE is not None:
        _SITE.pool.close()
    _SITE = Site(config, StorePool(config.store))
    return _SITE


def current() -> Site:
    """The site of this process; RuntimeError before :func:`configure`."""
    if _SITE is None:
        raise RuntimeError(
            "the dashboard is not configured: call fleetgauge.dashboard.app.create_app first"
        )
    return _SITE


def points_for(width: object) -> int:
    """Buckets per curve for a chart ``width`` pixels wide (about one per pixel)."""
    if isinstance(width, int | float) and width > 0:
        return int(min(MAX_POINTS, max(MIN_POINTS, width)))
    return DEFAULT_POINTS
