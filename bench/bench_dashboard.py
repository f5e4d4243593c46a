"""Dashboard benchmark: the resources page's first data callback over a week of a fleet.

Target (issue): the resources page for 32 workers x 7 days at 10 s answers its
first data callback in at most 0.5 s with at most 2 MB of figure JSON on each
store, because it reads the rollup tiers; the same view read from raw points is
reported beside it, as a ratio.

For each backend (SQLite in a temporary directory; InfluxDB as a throwaway
``influxd`` 1.x behind the v2 write front, both from ``bench_store``; the
dashboard, which only reads, talks InfluxQL to ``influxd`` itself as it would to
InfluxDB 2.x, not through the front's Python relay) it

1. loads ``--workers`` x ``--days`` of every resource point the page reads
   (``cpu``, ``memory``, ``gpu``, ``disk``, ``network``: the values of
   ``fleetgauge.agent.demo.seed``, every 10 s, no container points) with ``store.write`` in
   batches of 5000, ending at the last UTC midnight so every tier is closed,
   and waits for influxd to finish compacting (``bench_store.wait_idle``);
2. starts ``python -m agent dashboard --store URL --port 0`` as a child (the
   throwaway influxd runs without auth: no ``FLEETGAUGE_INFLUX_TOKEN`` needed),
   reads the callback graph from ``/_dash-dependencies`` and POSTs to
   ``/_dash-update-component`` what dash-renderer posts for the page's ``load``
   callback (the one writing ``cards.children``): charts 1000 px wide, the URL
   ``?range=custom&start=..&end=..`` over the whole data. It checks a 200 with
   a curve per drawn worker in every graph (every worker up to 12; past that the top 10
   and the fleet's band), and times it: median of 5 after one
   warm-up (the warm-up, the first call a fresh server answers, is shown too).
   Sizes: the whole response, and the graphs' ``figure`` props as Dash
   serialises them (``plotly.io.json.to_json_plotly``);
3. in process: ``read_resources`` + ``resource_figure`` + ``to_json_plotly``
   as planned (the tiers) and with ``level="raw"`` (raw points bucketed by the
   store), median of 3 each, and their ratio;
4. compares step 2 with the targets. When one is missed (or with
   ``--profile``) it cProfiles the same POST in process (the Dash app's Flask
   test client) into ``bench/out/dashboard-<backend>.prof`` and reports where
   the time goes.

Loading is most of the run: 9.7 M points per backend at full size, 6 to 9
minutes into SQLite and 4 to 6 into InfluxDB on 2 cores (12 to 17 minutes in
all). Run ``python -m bench.bench_dashboard`` from the repository root (or
``scripts/bench dashboard``); ``--days 1 --workers 4`` gives a quick run
(``--backend sqlite`` one store). The table is printed
and written as markdown to ``bench/out/dashboard.md``. The exit status is 0
whether or not the targets are met (a benchmark reports); it is not 0 when
something broke (a load failed, the callback answered wrongly).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import itertools
import json
import pstats
import random
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from plotly.io.json import to_json_plotly

from bench.bench_store import (
    _OPENERS,
    BACKENDS,
    BATCH_SIZE,
    DAY_NS,
    NS_PER_S,
    OUT_DIR,
    REPO,
    SAMPLE_EVERY_NS,
    WriteStats,
    _positive,
    _progress,
    _runs,
    _terminate,
    _write,
    data_start_ns,
    machine,
    markdown_report,
    profiled,
    text_table,
    timed,
)
from fleetgauge.agent.demo.seed import _resources
from fleetgauge.catalogue import Point
from fleetgauge.dashboard.data.listings import list_environments
from fleetgauge.dashboard.data.resources import (
    ALL_WORKERS_AT_MOST,
    DEFAULT_TOP,
    ResourceView,
    list_workers,
    read_resources,
)
from fleetgauge.dashboard.figures import resource_figure
from fleetgauge.dashboard.site import SiteConfig, configure, current, points_for
from fleetgauge.dashboard.thresholds import RESOURCES, load_thresholds
from fleetgauge.stores import Store, open_store
from fleetgauge.timeutil import format_time

__all__ = ["main", "DashboardResult", "resource_batches", "callback_payload"]

REPORT_PATH = OUT_DIR / "dashboard.md"
WIDTH_PX = 1000
HTTP_RUNS, TIER_RUNS, RAW_RUNS = 5, 3, 3
TARGET_MS = 500.0
TARGET_FIGURE_BYTES = 2_000_000
CARDS_OUTPUT = "cards.children"
UPDATE_PATH = "/_dash-update-component"
POINTS_PER_SAMPLE = len(_resources("w", 0, 0, random.Random(0)))
_URL_LINE = re.compile(r"fleetgauge dashboard on (http://[^\s/]+)")
_TOTAL_PREFIX = "all "  # the aggregate: "all selected (mean)", "all 256 workers (mean)"


# --- data ---------------------------------------------------------------------
def resource_batches(
    start_ns: int, days: int, workers: int, batch_size: int = BATCH_SIZE
) -> Iterator[list[Point]]:
    """Yield the resource points of every worker per 10 s, in time order, ``batch_size`` at a time.

    The points are those of ``fleetgauge.agent.demo.seed`` (one each of cpu, memory, disk,
    network and gpu per worker and timestamp), seeded so every run is the same.
    """
    rng = random.Random(7)
    names = [f"worker-{w:02d}" for w in range(workers)]
    points = itertools.chain.from_iterable(
        _resources(name, index, start_ns + step * SAMPLE_EVERY_NS, rng)
        for step in range(days * DAY_NS // SAMPLE_EVERY_NS)
        for index, name in enumerate(names)
    )
    while batch := list(itertools.islice(points, batch_size)):
        yield batch


def load_fleet(store: Store, name: str, start_ns: int, days: int, workers: int) -> WriteStats:
    """Write every batch (retrying a busy store), reporting progress every tenth of the data."""
    stats = WriteStats()
    total = days * (DAY_NS // SAMPLE_EVERY_NS) * workers * POINTS_PER_SAMPLE
    every = max(1, total // BATCH_SIZE // 10)
    wall0 = time.perf_counter()
    for batch in resource_batches(start_ns, days, workers):
        t0 = time.perf_counter()
        _write(store, batch, stats)
        stats.write_s += time.perf_counter() - t0
        stats.points += len(batch)
        stats.batches += 1
        if stats.batches % every == 0 or stats.points == total:
            _progress(
                f"  [{name}] {stats.points / total:4.0%} {stats.points:>10,} points,"
                f" {stats.points_per_s:,.0f} points/s in store.write,"
                f" {time.perf_counter() - wall0:.0f} s elapsed"
            )
    stats.wall_s = time.perf_counter() - wall0
    return stats


# --- the dashboard as the browser sees it --------------------------------------
@contextmanager
def dashboard_server(
    store_url: str, log_path: Path, timeout: float = 60.0, extra: Sequence[str] = ()
) -> Iterator[str]:
    """``fleetgauge dashboard --store URL --port 0 [extra...]`` as a child; yields its base
    URL."""
    command = [sys.executable, "-m", "fleetgauge", "dashboard", "--store", store_url, "--port", "0"]
    command += extra
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
        )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if select.select([proc.stdout], [], [], 0.5)[0]:
                text = proc.stdout.readline().decode(errors="replace").strip()
                if match := _URL_LINE.search(text):
                    yield match.group(1)
                    return
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the dashboard did not start (exit {proc.poll()}); log tail:\n{tail}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _http(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, response.read()


def _outputs(output: str) -> list[dict[str, str]]:
    """``..a.b...c.d..`` (a multi-output callback's id) as [{id: a, property: b}, ...]."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [dict(zip(("id", "property"), p.rsplit(".", 1), strict=True)) for p in parts]


def callback_payload(
    dependencies: Sequence[dict[str, Any]],
    values: dict[str, Any],
    trigger: str,
    output: str = CARDS_OUTPUT,
) -> dict[str, Any]:
    """The body dash-renderer posts for the callback that writes ``output`` (``id.property``:
    by default the resources page's ``cards.children``).

    ``values`` maps ``id.property`` to the value the browser holds; ``trigger``
    is the ``id.property`` that changed (the chart width, on a first load).
    """
    for dep in dependencies:
        outputs = _outputs(dep["output"])
        if any(f"{o['id']}.{o['property']}" == output for o in outputs):
            break
    else:
        raise RuntimeError(f"no callback in /_dash-dependencies writes {output}")

    def filled(specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**s, "value": values.get(f"{s['id']}.{s['property']}")} for s in specs]

    return {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": filled(dep["inputs"]),
        "changedPropIds": [trigger],
        "parsedChangedPropsIds": [trigger],
        "state": filled(dep["state"]),
    }


def page_search(start_ns: int, end_ns: int) -> str:
    """The resources page's query string for a custom range."""
    return "?" + urlencode(
        {"range": "custom", "start": format_time(start_ns), "end": format_time(end_ns)}
    )


def figures_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The graphs' ``figure`` props in a ``load`` callback's answer."""
    graphs = answer.get("response", {}).get("graphs", {}).get("children") or []
    return [g["props"]["figure"] for g in graphs]


def drawn_workers(workers: int) -> int:
    """Worker curves a graph draws: every worker up to fleet size, then the top N."""
    return workers if workers <= ALL_WORKERS_AT_MOST else min(DEFAULT_TOP, workers)


def check_figures(figures: Sequence[dict[str, Any]], workers: int) -> list[str]:
    """Problems with the graphs: one per resource, each with a curve per drawn worker (and,
    at fleet size, the fleet's band)."""
    problems = []
    if len(figures) != len(RESOURCES):
        problems.append(f"{len(figures)} graphs, expected {len(RESOURCES)}")
    expected = drawn_workers(workers)
    for fig in figures:
        curves = {
            t["meta"]["worker"]
            for t in fig["data"]
            if "worker" in t.get("meta", {}) and not t["meta"]["worker"].startswith(_TOTAL_PREFIX)
        }
        title = fig["layout"]["title"]["text"].split("<br>")[0]
        if len(curves) != expected:
            problems.append(f"{title}: {len(curves)} worker curves, expected {expected}")
        band = any(str(t.get("name", "")).startswith("p10-p90") for t in fig["data"])
        if band != (workers > ALL_WORKERS_AT_MOST):
            problems.append(f"{title}: {'a' if band else 'no'} fleet band for {workers} workers")
    return problems


def figure_bytes(figures: Sequence[dict[str, Any]]) -> int:
    """Bytes of the figures as Dash serialises them."""
    return sum(len(to_json_plotly(f).encode()) for f in figures)


# --- results ------------------------------------------------------------------
@dataclass
class DashboardResult:
    """Everything measured on one backend."""

    backend: str
    write: WriteStats
    settle: str = ""
    cold_ms: float = 0.0
    http_ms: list[float] = field(default_factory=list)
    response_bytes: int = 0
    response_gzip_bytes: int = 0
    figure_bytes: int = 0
    graphs: int = 0
    note: str = ""
    tier_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    tier_level: str = ""
    tier_step_s: int = 0
    tier_figure_bytes: int = 0
    raw_figure_bytes: int = 0
    reference: str = "raw points"
    phase_ms: dict[str, float] = field(default_factory=dict)
    listing_ms: list[float] = field(default_factory=list)
    hot_spots: list[str] = field(default_factory=list)

    @property
    def http_median_ms(self) -> float:
        """Median time of the HTTP callback."""
        return statistics.median(self.http_ms)

    @property
    def ratio(self) -> float:
        """How many times longer the reference takes than the page's read (in process)."""
        return statistics.median(self.raw_ms) / statistics.median(self.tier_ms)

    @property
    def fast(self) -> bool:
        """The callback answers within the target."""
        return self.http_median_ms <= TARGET_MS

    @property
    def small(self) -> bool:
        """The figures are within the size target."""
        return self.figure_bytes <= TARGET_FIGURE_BYTES

    @property
    def passed(self) -> bool:
        """Both targets met, from a rollup tier."""
        return self.fast and self.small and self.tier_level != "raw"


# --- measurements ---------------------------------------------------------------
def measure_http(
    result: DashboardResult, base_url: str, search: str, workers: int
) -> dict[str, Any]:
    """Time the ``load`` callback over HTTP and size its answer; returns the payload posted."""
    _, body = _http(base_url + "/_dash-dependencies")  # urlopen raises on an error status
    values = {"resources-width.data": WIDTH_PX, "resources-refresh.n_clicks": 0}
    values |= {"resources-tick.n_intervals": 0, "_pages_location.search": search}
    payload = callback_payload(json.loads(body), values, "resources-width.data")
    data = json.dumps(payload).encode()

    def post() -> bytes:
        status, answer = _http(base_url + UPDATE_PATH, data)
        if status != 200:
            raise RuntimeError(f"{UPDATE_PATH} answered {status}: {answer[:500]!r}")
        return answer

    t0 = time.perf_counter()
    answer = post()
    result.cold_ms = (time.perf_counter() - t0) * 1000
    result.http_ms, answer = timed(post, HTTP_RUNS)
    figures = figures_of(json.loads(answer))
    problems = check_figures(figures, workers)
    if problems:
        raise RuntimeError(f"[{result.backend}] wrong answer: {'; '.join(problems)}")
    result.response_bytes = len(answer)
    result.response_gzip_bytes = len(gzip.compress(answer, 6))
    result.figure_bytes = figure_bytes(figures)
    result.graphs = len(figures)
    result.note = figures[0]["layout"]["title"]["text"].split("<sup>")[-1].removesuffix("</sup>")
    return payload


def measure_in_process(
    result: DashboardResult,
    store: Store,
    start_ns: int,
    end_ns: int,
    workers: int,
    raw_runs: int = RAW_RUNS,
) -> None:
    """Views + figures + JSON as the page reads them and as the reference does, in process.

    The reference: up to fleet size, the same view from raw points; past it, the view
    read the way it was before fleet views, one full curve per worker (planned tiers).
    The page's runs are also split by phase, and the listings the callback makes
    besides (workers and environments in the range) are timed on their own.
    """
    thresholds = load_thresholds()
    phases: dict[str, list[float]] = {"read_resources": [], "resource_figure": [], "JSON": []}
    fleet = workers > ALL_WORKERS_AT_MOST
    result.reference = "every worker's curve" if fleet else "raw points"

    def render(level: str | None, top: int | None = None) -> tuple[str, list[ResourceView]]:
        marks = [time.perf_counter()]
        views = read_resources(
            store, start_ns, end_ns, points_for(WIDTH_PX), thresholds, level=level, top=top
        )
        marks.append(time.perf_counter())
        figures = [resource_figure(v, thresholds.of(v.resource.key)) for v in views if v.curves]
        marks.append(time.perf_counter())
        text = to_json_plotly(figures)
        marks.append(time.perf_counter())
        if level is None and (top is not None or not fleet):
            for runs, a, b in zip(phases.values(), marks, marks[1:], strict=False):
                runs.append((b - a) * 1000)
        return text, views

    page_top = DEFAULT_TOP if fleet else None
    result.tier_ms, (tier_json, views) = timed(lambda: render(None, page_top), TIER_RUNS, warmup=1)
    result.phase_ms = {k: statistics.median(v[-TIER_RUNS:]) for k, v in phases.items()}
    result.tier_level, result.tier_step_s = views[0].level, views[0].step_ns // NS_PER_S
    result.tier_figure_bytes = len(tier_json.encode())
    result.listing_ms, _ = timed(
        lambda: (
            list_workers(store, start_ns, end_ns),
            list_environments(store, start_ns, end_ns),
        ),
        TIER_RUNS,
    )
    _progress(
        f"[{result.backend}] in process, level {result.tier_level}"
        f" ({result.tier_step_s} s buckets): runs (ms) {_runs(result.tier_ms)};"
        f" by phase (ms) {_phases(result.phase_ms)};"
        f" listing workers + environments (ms) {_runs(result.listing_ms)}"
    )
    reference = (lambda: render(None)) if fleet else (lambda: render("raw"))
    result.raw_ms, (raw_json, _) = timed(reference, raw_runs)
    result.raw_figure_bytes = len(raw_json.encode())
    _progress(
        f"[{result.backend}] in process, {result.reference}: runs (ms) {_runs(result.raw_ms)},"
        f" figure JSON {result.raw_figure_bytes:,} bytes"
    )


def _phases(phase_ms: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in phase_ms.items())


@functools.cache
def _site_app() -> Any:
    """The Dash site, built once per process (Dash registers page callbacks globally)."""
    from fleetgauge.dashboard.app import create_app

    return create_app(SiteConfig(store=""))


def profile_callback(result: DashboardResult, store_url: str, payload: dict[str, Any]) -> None:
    """cProfile one ``load`` callback in process (Flask test client); keep the hot spots."""
    app = _site_app()
    configure(SiteConfig(store=store_url))
    client = app.server.test_client()
    client.post(UPDATE_PATH, json=payload)  # warm-up: opens the store, fills caches
    path = OUT_DIR / f"dashboard-{result.backend}.prof"
    with profiled(True, path, f"{result.backend} load callback"):
        t0 = time.perf_counter()
        response = client.post(UPDATE_PATH, json=payload)
        total_ms = (time.perf_counter() - t0) * 1000
    current().pool.close()
    if response.status_code != 200:
        raise RuntimeError(f"[{result.backend}] in-process callback answered {response.status}")
    result.hot_spots = [f"whole callback under cProfile: {total_ms:,.0f} ms", *hot_spots(path)]


def hot_spots(path: Path, limit: int = 12) -> list[str]:
    """The repository's functions (and the JSON encoders) by cumulative time in a profile."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_, calls, own, cum, _) in stats.items():
        where = Path(filename)
        if where.is_relative_to(REPO):
            label = f"{where.relative_to(REPO)}:{line} {name}"
        elif name in ("dumps", "encode", "to_json_plotly", "dispatch"):
            label = f"{where.parent.name}/{where.name}:{line} {name}"
        else:
            continue
        if name.startswith("<"):  # comprehensions: their function is listed already
            continue
        rows.append(
            (cum, f"{label}: {cum * 1000:,.0f} ms cum, {own * 1000:,.0f} ms own, {calls:,} calls")
        )
    return [text for _, text in sorted(rows, reverse=True)[:limit]]


def bench_backend(
    name: str, store: Store, days: int, workers: int, tmp: Path, profile: bool
) -> DashboardResult:
    """Load the fleet into ``store``, then time the page over HTTP and in process."""
    start_ns = data_start_ns(days)
    end_ns = start_ns + days * DAY_NS
    total = days * (DAY_NS // SAMPLE_EVERY_NS) * workers * POINTS_PER_SAMPLE
    _progress(f"[{name}] writing {total:,} points ({workers} workers x {days} days, every 10 s)")
    result = DashboardResult(name, load_fleet(store, name, start_ns, days, workers))
    w = result.write
    _progress(f"[{name}] loaded in {w.wall_s:.0f} s ({w.points_per_s:,.0f} points/s in writes)")
    settle = getattr(store, "settle", None)
    if settle is not None:
        result.settle = settle()
        _progress(f"[{name}] {result.settle}")

    read_url = getattr(store, "read_url", store.url)
    with dashboard_server(read_url, tmp / "dashboard.log") as base_url:
        payload = measure_http(result, base_url, page_search(start_ns, end_ns), workers)
    _progress(
        f"[{name}] HTTP load callback: cold {result.cold_ms:,.0f} ms, runs (ms)"
        f" {_runs(result.http_ms)}; {result.response_bytes:,} bytes,"
        f" figures {result.figure_bytes:,} bytes; {result.note}"
    )
    reader = open_store(read_url) if read_url != store.url else store
    try:
        measure_in_process(result, reader, start_ns, end_ns, workers)
    finally:
        if reader is not store:
            reader.close()
    if profile or not (result.fast and result.small):
        profile_callback(result, read_url, payload)
    return result


# --- report ---------------------------------------------------------------------
HEADERS = (
    "backend",
    "points",
    "load wall (s)",
    "callback ms (median; cold)",
    "response bytes (gzip)",
    "figure JSON bytes",
    "in-process ms (tier, level)",
    "in-process ms (reference)",
    "reference / page",
    f"<= {TARGET_MS:.0f} ms",
    f"<= {TARGET_FIGURE_BYTES / 1e6:g} MB",
    "result",
)


def table_rows(results: Sequence[DashboardResult]) -> list[list[str]]:
    """One row of the summary table per backend."""
    return [
        [
            r.backend,
            f"{r.write.points:,}",
            f"{r.write.wall_s:.0f}",
            f"{r.http_median_ms:,.0f}; {r.cold_ms:,.0f}",
            f"{r.response_bytes:,} ({r.response_gzip_bytes:,})",
            f"{r.figure_bytes:,}",
            f"{statistics.median(r.tier_ms):,.0f} ({r.tier_level})",
            f"{statistics.median(r.raw_ms):,.0f} ({r.reference})",
            f"{r.ratio:.1f}x",
            "met" if r.fast else "missed",
            "met" if r.small else "missed",
            "PASS" if r.passed else "FAIL",
        ]
        for r in results
    ]


def detail_lines(results: Sequence[DashboardResult]) -> list[str]:
    """Per-backend details that do not fit the table, then the profile's hot spots."""
    lines = []
    for r in results:
        w = r.write
        lines.append(
            f"{r.backend}: load {w.batches:,} batches, {w.write_s:.0f} s in store.write"
            f" ({w.points_per_s:,.0f} points/s), {w.wall_s - w.write_s:.0f} s generating,"
            f" {w.retries} retries{'; ' + r.settle if r.settle else ''}."
            f" HTTP runs ms [{_runs(r.http_ms)}], {r.graphs} graphs, first graph says"
            f' "{r.note}". In process: {r.tier_step_s} s buckets from {r.tier_level},'
            f" tier runs ms [{_runs(r.tier_ms)}] (median by phase: {_phases(r.phase_ms)}),"
            f" {r.reference} runs ms [{_runs(r.raw_ms)}]; listing workers + environments as the"
            f" callback also does: {statistics.median(r.listing_ms):,.0f} ms;"
            f" figure JSON {r.tier_figure_bytes:,} bytes from the tier,"
            f" {r.raw_figure_bytes:,} from {r.reference}"
        )
        lines.extend(f"{r.backend} profile: {text}" for text in r.hot_spots)
    return lines


def markdown(args: argparse.Namespace, results: Sequence[DashboardResult]) -> str:
    """The report as markdown: parameters, table, details and machine."""
    return markdown_report(
        "Dashboard benchmark",
        f"python -m bench.bench_dashboard --days {args.days} --workers {args.workers}"
        f" --backend {args.backend}{' --profile' if args.profile else ''}",
        "Data: cpu, memory, gpu, disk and network points of `fleetgauge.agent.demo.seed`"
        f" for {args.workers} workers, {args.days} days every {SAMPLE_EVERY_NS // NS_PER_S} s"
        f" ({POINTS_PER_SAMPLE} points per worker and timestamp), batches of {BATCH_SIZE}."
        f" Callback: POST {UPDATE_PATH} of the resources page's `load` callback to a"
        f" `fleetgauge dashboard` child, charts {WIDTH_PX} px wide, custom range over the whole"
        f" data; median of {HTTP_RUNS} after 1 warm-up (cold = that warm-up, the first call"
        " the fresh server answers). Figure JSON: the graphs' `figure` props as Dash"
        " serialises them. In process: `read_resources` + `resource_figure` +"
        f" `to_json_plotly`, planned tier (median of {TIER_RUNS} after 1 warm-up) vs"
        f' `level="raw"` (median of {RAW_RUNS}). InfluxDB: the data is written through the'
        " test suite's v2 front (a Python relay) as in `bench_store`; the dashboard and the"
        " in-process reads talk InfluxQL to `influxd` directly, as to InfluxDB 2.x.",
        HEADERS,
        table_rows(results),
        detail_lines(results),
        machine(),
    )


# --- main ---------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_dashboard", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--days", type=_positive, default=7, help="days of data (default 7)")
    parser.add_argument("--workers", type=_positive, default=32, help="workers (default 32)")
    parser.add_argument(
        "--backend", choices=(*BACKENDS, "all"), default="all", help="backend(s) to run"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the callback in process even when the targets are met",
    )
    return parser.parse_args(argv)


def run_backend(name: str, args: argparse.Namespace) -> DashboardResult:
    """One backend in a temporary directory that is removed afterwards (servers stopped)."""
    with (
        tempfile.TemporaryDirectory(prefix=f"fleetgauge-bench-dashboard-{name}-") as tmp,
        _OPENERS[name](Path(tmp)) as store,
    ):
        return bench_backend(name, store, args.days, args.workers, Path(tmp), args.profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 unless something broke (a missed target is reported, not failed)."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # clean up as on Ctrl-C
    backends = list(BACKENDS) if args.backend == "all" else [args.backend]
    if "influxdb" in backends and shutil.which("influxd") is None:
        _progress("influxd not found: skipping the InfluxDB backend (apt-get install influxdb)")
        backends.remove("influxdb")
    try:
        results = [run_backend(name, args) for name in backends]
    except KeyboardInterrupt:
        _progress("interrupted: dashboard and influxd stopped, temporary files removed")
        return 130
    table = text_table(HEADERS, table_rows(results))
    print("\n".join(["", table, "", *detail_lines(results)]))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown(args, results))
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
