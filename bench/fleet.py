"""A fleet's resource history, generated in columns and bulk-loaded into a store.

The dashboard, store-read and export figures need a week of 32 workers at
10 s in each store: 9.7 million points, 44.5 million field values. Writing
them through ``store.write`` takes minutes per store on two cores (that rate is
measured on its own, by ``bench_store`` and the suite), so the read benchmarks
load the same rows the stores' own write path would store, built with numpy:

- raw values: one row per series, time and field (SQLite ``sample``) or one
  line per series and time (InfluxDB);
- rollups: count, sum, min and max per tier bucket, computed over the whole
  series at once. Each bucket is stored as one generation (0), which is what
  ``TierAccumulator`` produces for a backfill in time order, up to the random
  generation number that reads merge away.

``tests/test_bench_fleet.py`` checks that a store loaded here answers every
read (raw and each tier) exactly as one loaded through ``store.write``.
"""

from __future__ import annotations

import itertools
import math
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fleetgauge import catalogue
from fleetgauge.catalogue import TIER_AGGREGATES, TIERS, Point, tier_field, tier_measurement
from fleetgauge.stores.influx_text import _head, _tag

__all__ = [
    "Series",
    "fleet",
    "fields_of",
    "points",
    "load_sqlite",
    "load_influxdb",
    "FLEET_MEASUREMENTS",
]

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S
EVERY_NS = 10 * NS_PER_S
GIB = 1024.0**3
ENVIRONMENT = "bench"
FLEET_MEASUREMENTS = (
    catalogue.CPU,
    catalogue.MEMORY,
    catalogue.DISK,
    catalogue.NETWORK,
    catalogue.GPU_MEASUREMENT,
)
_EXTRA_TAGS = {
    catalogue.DISK.name: {catalogue.MOUNT: "/"},
    catalogue.NETWORK.name: {catalogue.INTERFACE: "eth0"},
    catalogue.GPU_MEASUREMENT.name: {catalogue.GPU: "0"},
}


@dataclass(frozen=True)
class Series:
    """One series: its measurement, tags, times (ns) and one array per field."""

    measurement: str
    tags: dict[str, str]
    times: np.ndarray
    columns: dict[str, np.ndarray]

    @property
    def points(self) -> int:
        return len(self.times)

    @property
    def values(self) -> int:
        return len(self.times) * len(self.columns)


def fields_of(m: catalogue.Measurement) -> tuple[str, ...]:
    """The fields the fleet has of ``m``: every one, in the schema's order, except the GPU's
    health and depth fields (clocks, ECC, throttle reasons, ...): the dashboard's pages
    read its seven use fields, which are what this data set measures."""
    return m.field_names[:7] if m is catalogue.GPU_MEASUREMENT else m.field_names


def worker_name(index: int) -> str:
    return f"worker-{index:02d}"


def fleet(start_ns: int, days: float, workers: int, every_ns: int = EVERY_NS) -> Iterator[Series]:
    """Every series of ``workers`` workers over ``days`` from ``start_ns``, one at a time.

    Values follow a daily wave per worker (phase by index) plus seeded noise;
    worker 0 runs hot (CPU, memory and GPU above the default warning levels).
    """
    times = start_ns + np.arange(int(days * DAY_NS // every_ns), dtype=np.int64) * every_ns
    day_phase = (times % DAY_NS) / DAY_NS * 2 * math.pi
    for w in range(workers):
        rng = np.random.default_rng(1000 + w)
        wave = 0.5 + 0.5 * np.sin(day_phase + 0.7 * w)
        noise = rng.uniform(-1.0, 1.0, len(times))
        if w == 0:
            cpu = 84 + 8 * wave + 2 * noise
            memory = 0.86 + 0.05 * wave
            gpu = np.minimum(100.0, 96 + 3 * wave + noise)
            gpu_memory = 84 + 4 * wave
        else:
            cpu = np.clip(15 + 55 * wave + 5 * noise, 0.0, 100.0)
            memory = 0.30 + 0.35 * wave
            gpu = np.clip(20 + 60 * wave + 8 * noise, 0.0, 100.0)
            gpu_memory = 0.7 * gpu
        disk = np.full(len(times), 40.0 + 1.5 * (w % 32))  # at most 86.5 %, whatever the fleet
        total = 64 * GIB
        ones = np.ones(len(times))
        columns = {
            catalogue.CPU.name: {
                "usage_percent": cpu,
                "load1": cpu / 12,
                "load5": cpu / 13,
                "load15": cpu / 14,
                "logical_count": 16 * ones,
            },
            catalogue.MEMORY.name: {
                "used_bytes": total * memory,
                "available_bytes": total * (1 - memory),
                "total_bytes": total * ones,
                "used_percent": 100 * memory,
                "swap_used_bytes": 0 * ones,
                "swap_used_percent": 0 * ones,
            },
            catalogue.DISK.name: {
                "used_bytes": 500 * GIB * disk / 100,
                "total_bytes": 500 * GIB * ones,
                "used_percent": disk,
            },
            catalogue.NETWORK.name: {
                "receive_bytes_per_second": 4e6 * wave,
                "transmit_bytes_per_second": 1e6 * wave,
            },
            catalogue.GPU_MEASUREMENT.name: {
                "utilization_percent": gpu,
                "memory_used_bytes": 80 * GIB * gpu_memory / 100,
                "memory_total_bytes": 80 * GIB * ones,
                "memory_used_percent": gpu_memory,
                "temperature_celsius": 40 + gpu / 3,
                "power_draw_watts": 100 + 5 * gpu,
                "power_limit_watts": 700 * ones,
            },
        }
        base = {catalogue.ENVIRONMENT: ENVIRONMENT, catalogue.WORKER: worker_name(w)}
        for m in FLEET_MEASUREMENTS:
            cols = columns[m.name]
            assert tuple(cols) == fields_of(m), f"{m.name}: fields differ from the schema"
            yield Series(m.name, {**base, **_EXTRA_TAGS.get(m.name, {})}, times, cols)


def points(series: Sequence[Series]) -> Iterator[Point]:
    """The same data as Points, time by time (every series per timestamp), for ``store.write``."""
    lists = [(s, s.times.tolist(), {k: v.tolist() for k, v in s.columns.items()}) for s in series]
    n = min((len(t) for _, t, _ in lists), default=0)
    for i in range(n):
        for s, times, cols in lists:
            yield Point(s.measurement, s.tags, {k: v[i] for k, v in cols.items()}, times[i])


# --- rollups --------------------------------------------------------------------------
def rollups(s: Series, width_ns: int) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, ...]]]:
    """Bucket starts and, per field, (count, sum, min, max) arrays for one tier width."""
    buckets = s.times - s.times % width_ns
    starts, index, counts = np.unique(buckets, return_index=True, return_counts=True)
    stats = {
        name: (
            counts,
            np.add.reduceat(values, index),
            np.minimum.reduceat(values, index),
            np.maximum.reduceat(values, index),
        )
        for name, values in s.columns.items()
    }
    return starts, stats


# --- SQLite ---------------------------------------------------------------------------
def _stats_blobs(fids: Sequence[int], stats: dict[str, tuple[np.ndarray, ...]]) -> list[bytes]:
    """One ``tier.stats`` blob per bucket, as :func:`fleetgauge.stores.sqlite.pack_stats` makes."""
    buckets = len(next(iter(stats.values()))[0])
    packed = np.empty((buckets, len(fids), 5), dtype="<f8")
    for i, (fid, (count, total, low, high)) in enumerate(zip(fids, stats.values(), strict=True)):
        packed[:, i] = np.column_stack((np.full(len(count), fid), count, total, low, high))
    size = packed.shape[1] * packed.shape[2] * 8
    data = packed.tobytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


def _raw(s: Series, raw_from_ns: int | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """The times and columns of ``s`` kept as raw rows: from ``raw_from_ns`` on (all if None)."""
    if raw_from_ns is None:
        return s.times, list(s.columns.values())
    keep = s.times >= raw_from_ns
    return s.times[keep], [c[keep] for c in s.columns.values()]


def load_sqlite(store: object, series: Iterator[Series], raw_from_ns: int | None = None) -> int:
    """Insert the rows ``SQLiteStore.write`` would, one transaction per series; returns points.

    With ``raw_from_ns`` the raw rows before it are left out (their tiers are written): a
    month-long view reads the tiers only, and a month of raw rows would take most of the
    load. Rows go in primary-key order. Durability is off and the page cache large
    while loading, then restored: a benchmark's data can be rebuilt, a user's cannot.
    """
    db = store._db  # type: ignore[attr-defined]
    (cache_size,) = db.execute("PRAGMA cache_size").fetchone()
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-262144")  # 256 MiB
    loaded = 0
    try:
        for s in series:
            with db:
                sid = store._series_id(s.measurement, s.tags)  # type: ignore[attr-defined]
                fids = [store._field_id(name) for name in s.columns]  # type: ignore[attr-defined]
                times, columns = _raw(s, raw_from_ns)
                n, k = len(times), len(fids)
                values = np.column_stack(columns).ravel().tolist()
                db.executemany(
                    "INSERT OR REPLACE INTO sample VALUES (?, ?, ?, ?)",
                    zip(
                        itertools.repeat(sid),
                        np.repeat(times, k).tolist(),
                        fids * n,
                        values,
                        strict=False,  # repeat() is endless
                    ),
                )
                for tier in TIERS:
                    starts, stats = rollups(s, tier.width_ns)
                    db.executemany(
                        "INSERT OR REPLACE INTO tier VALUES (?, ?, ?, 0, ?)",
                        zip(
                            itertools.repeat(tier.width_ns // NS_PER_S),
                            itertools.repeat(sid),
                            starts.tolist(),
                            _stats_blobs(fids, stats),
                            strict=False,  # repeat() is endless
                        ),
                    )
            loaded += s.points
    finally:
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA cache_size={int(cache_size)}")
    return loaded


# --- InfluxDB -------------------------------------------------------------------------
def _lines(head: str, names: Sequence[str], times: list[int], cols: list[list]) -> Iterator[str]:
    keys = [_tag(n) for n in names]
    template = head + ",".join(f"{k}=%r" for k in keys) + " %d"
    for row in zip(*cols, times, strict=True):
        yield template % row


def _tier_lines(s: Series) -> Iterator[str]:
    for tier in TIERS:
        starts, stats = rollups(s, tier.width_ns)
        head = _head(Point(tier_measurement(s.measurement, tier), s.tags, {}, 0))
        fields, cols = [], []
        for name, arrays in stats.items():
            for agg, values in zip(TIER_AGGREGATES, arrays, strict=True):
                kind = "%di" if agg == "count" else "%r"
                fields.append(f"{_tag(tier_field(name, agg))}={kind}")
                cols.append(values.tolist())
        template = head + ",".join(fields) + " %d"
        for row in zip(*cols, starts.tolist(), strict=True):
            yield template % row


def load_influxdb(
    base_url: str,
    database: str,
    series: Iterator[Series],
    chunk_lines: int = 20_000,
    raw_from_ns: int | None = None,
) -> int:
    """POST the line protocol ``InfluxDBStore.write`` would, to InfluxDB 1.x ``/write``
    (raw lines from ``raw_from_ns`` on, as :func:`load_sqlite`)."""
    url = f"{base_url.rstrip('/')}/write?db={database}&precision=ns"
    loaded = 0
    for s in series:
        head = _head(Point(s.measurement, s.tags, {}, 0))
        times, columns = _raw(s, raw_from_ns)
        cols = [c.tolist() for c in columns]
        lines = [*_lines(head, list(s.columns), times.tolist(), cols), *_tier_lines(s)]
        for i in range(0, len(lines), chunk_lines):
            body = "\n".join(lines[i : i + chunk_lines]).encode()
            request = urllib.request.Request(url, data=body, method="POST")
            with urllib.request.urlopen(request, timeout=120) as answer:
                if answer.status != 204:
                    raise RuntimeError(f"influxd /write answered {answer.status}")
        loaded += s.points
    return loaded
