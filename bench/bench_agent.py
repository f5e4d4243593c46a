"""Agent overhead benchmark: CPU and memory of the agent next to Prometheus' node_exporter.

All three run side by side for the same ``--seconds`` (default 60) on free loopback ports:

- ``node_exporter`` (Debian package ``prometheus-node-exporter``, default collectors);
- Glances (PyPI ``glances``) exporting every plugin to CSV once per interval
  (``glances --quiet --export csv -t 1``), the other common way to keep a record of a
  host; it is skipped, and said so, when ``glances`` is not installed;
- ``fleetgauge agent --interval 1`` with every collector, a SQLite store and its
  spool in a temporary directory, writing at its default ``--flush-interval`` (10 s:
  a user who samples every second gets that unless they ask otherwise; ``--flush-interval 1``
  measures a write every second), and ``--gpus`` (default
  ``GPUS``) GPUs of the tests' fake NVML for its GPU collector to read
  (``bench/gpu_agent.py``: a throttled H100 and a MIG-partitioned one, the fake's
  own Python counted against the agent); ``--gpus 0`` runs the plain agent.

The benchmark scrapes both ``/metrics`` every second the way Prometheus 2.42
does (kept-alive connection, ``Accept-Encoding: gzip``, OpenMetrics
negotiated; ``--scrape plain`` for bare uncompressed GETs), so both do the
work a Prometheus at a 1 s scrape interval asks of them (node_exporter
collects at scrape time; the agent samples on its own schedule and renders at
scrape time). After a warm-up it reads each process's CPU time (its CPU-time clock,
to the nanosecond, plus its reaped children's from ``/proc/PID/stat``) at the start and
end of the measured window and reports it as percent of one core; memory is the peak RSS
(``VmHWM``) and the current RSS (``VmRSS``) from ``/proc/PID/status``. The
agent's figure includes writing every point to SQLite; node_exporter writes
nothing.

A second agent, the same but for ``REGISTERED`` processes (sleeping children of the
benchmark) registered with it through ``POST /v1/processes``, runs beside them: the
difference of the two agents' CPU ratios to node_exporter is what sampling those
processes costs (issue 23: at most ``PROCESS_DELTA_TARGET``). Both agents run with their
default ``--process-flush-interval`` (10 s): process samples go to the store in one write
per 10 s, the agent's other samples every ``--flush-interval``.

Targets: agent CPU <= 0.35x node_exporter's, agent peak RSS <= 60 MB (10^6 bytes), process
sampling <= +0.05 of the ratio; the ratio to Glances is reported without a target.
Run ``python -m bench.bench_agent`` from the repository root (or ``scripts/bench
agent``); ``--seconds 10`` gives a quick run. The table is printed and written as
markdown to ``bench/out/agent.md``; the exit status is 1 when a target is missed.
``--profile`` then runs the agent's work in this process and says where its CPU goes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

from bench import results
from bench.agent_profile import free_port, profile_agent
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure
from fleetgauge import catalogue, protocol
from fleetgauge.agent.config import AgentConfig

__all__ = ["main", "ProcessUsage", "usage_of"]

REPORT_PATH = OUT_DIR / "agent.md"
NODE_EXPORTER = "prometheus-node-exporter"
GLANCES = [sys.executable, "-m", "glances"]
GLANCES_HINT = "Glances not installed: pip install glances (scripts/bench does)"
INSTALL_HINT = (
    "node_exporter not found: install it with `apt-get update && DEBIAN_FRONTEND=noninteractive"
    " apt-get install -y --no-install-recommends prometheus-node-exporter`"
)
CPU_RATIO_TARGET = 0.35  # issue 26 (0.5 before it)
REGISTERED = 10
GPUS = 2
FLUSH_INTERVAL = AgentConfig.flush_interval  # what `fleetgauge agent` writes at unless told
PROCESS_DELTA_TARGET = 0.05
RSS_TARGET_BYTES = 60 * 1000**2
MB = 1000**2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_CPUCLOCK_SCHED = 2  # linux/posix-timers.h: a process CPU clock counting scheduled time
WORKER = "bench-agent"
# What Prometheus 2.42 sends with every scrape (scrape/scrape.go): it negotiates OpenMetrics,
# asks for gzip and keeps the connection open. "plain" is a bare curl-like GET instead.
SCRAPE_HEADERS = {
    "prometheus": {
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "Accept-Encoding": "gzip",
        "User-Agent": "Prometheus/2.42.0",
        "X-Prometheus-Scrape-Timeout-Seconds": "5",
    },
    "plain": {"Accept": "text/plain", "Connection": "close"},
}
SCRAPE_STYLES = {
    "prometheus": "as Prometheus 2.42 does: kept-alive connection, gzip, OpenMetrics",
    "plain": "a new connection per scrape, uncompressed text format",
}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- /proc -------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float, float]:
    """(ppid, own CPU seconds, reaped children's CPU seconds) from /proc/PID/stat; own CPU
    from the process's CPU clock where it can be read (:func:`_cpu_clock_s`)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    own = _cpu_clock_s(pid)
    if own is None:
        own = (utime + stime) / CLOCK_TICKS
    return int(rest[1]), own, (cutime + cstime) / CLOCK_TICKS


def _cpu_clock_s(pid: int) -> float | None:
    """CPU seconds of all threads of ``pid`` (exited ones included) to the nanosecond, from
    its CPU-time clock (what clock_getcpuclockid(3) returns: ``~pid << 3 | CPUCLOCK_SCHED``);
    None where the kernel does not let us read it.

    /proc/PID/stat's utime + stime count the same time in 10 ms clock ticks: over a 30 s
    window an agent at 0.5 % of a core is 15 ticks, so one tick more or less moves its
    ratio to node_exporter by 0.02, and the difference of two such ratios by twice that.
    """
    try:
        return time.clock_gettime((~pid << 3) | _CPUCLOCK_SCHED)
    except (OSError, OverflowError, ValueError):
        return None


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError):
                children.setdefault(_stat(int(entry.name))[0], []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


@dataclass
class ProcessUsage:
    """CPU seconds (with children) and memory of a process tree at one moment."""

    cpu_s: float
    rss_bytes: int
    hwm_bytes: int


def usage_of(pid: int) -> ProcessUsage:
    """Sum over ``pid`` and its live descendants; reaped children count through cutime."""
    cpu = rss = hwm = 0
    for p in descendants(pid):
        with contextlib.suppress(OSError):
            _, own, reaped = _stat(p)
            cpu += own + reaped
            rss += _status_kib(p, "VmRSS") * 1024
            hwm += _status_kib(p, "VmHWM") * 1024
    return ProcessUsage(cpu, rss, hwm)


# --- the two processes ---------------------------------------------------------------
@dataclass
class Subject:
    """One benchmarked process: how it was started, its /metrics and what was measured."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    start: ProcessUsage | None = None
    end: ProcessUsage | None = None
    window_s: float = 0.0
    scrapes: int = 0
    scrape_errors: int = 0
    scrape_s: list[float] = field(default_factory=list)
    scrape_style: str = "prometheus"
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    @property
    def cpu_percent(self) -> float:
        """CPU time over the window as percent of one core."""
        assert self.start is not None and self.end is not None
        return (self.end.cpu_s - self.start.cpu_s) / self.window_s * 100

    @property
    def scraped(self) -> bool:
        """Whether it serves /metrics (Glances writes a file instead)."""
        return self.port > 0

    def scrape(self) -> str:
        """GET /metrics in ``scrape_style`` (see SCRAPE_HEADERS); the decompressed text."""
        t0 = time.perf_counter()
        try:
            try:
                resp = self._get()
            except (OSError, http.client.HTTPException):  # a kept-alive connection went away
                self.close()
                resp = self._get()
            body = resp.read()
            if resp.status != 200:
                raise OSError(f"{self.url}: HTTP {resp.status}")
            if resp.getheader("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return body.decode()
        except (OSError, http.client.HTTPException):
            self.scrape_errors += 1
            self.close()
            raise
        finally:
            self.scrape_s.append(time.perf_counter() - t0)
            self.scrapes += 1

    def _get(self) -> http.client.HTTPResponse:
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self._conn.request("GET", "/metrics", headers=SCRAPE_HEADERS[self.scrape_style])
        return self._conn.getresponse()

    def close(self) -> None:
        """Close the kept-alive scrape connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_bytes()[-3000:].decode(errors="replace")
            raise RuntimeError(f"{self.name} exited {self.proc.returncode}; log tail:\n{tail}")


@contextlib.contextmanager
def launched(
    name: str,
    argv: list[str],
    port: int,
    tmp: Path,
    scrape_style: str,
    ready: Callable[[], bool] | None = None,
) -> Iterator[Subject]:
    """Start ``argv``, wait until its /metrics answers (or ``ready()``), SIGTERM it afterwards."""
    log_path = tmp / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=tmp)
    subject = Subject(name, proc, port, log_path, scrape_style=scrape_style)
    try:
        deadline = time.monotonic() + 30
        while ready is not None:
            subject.alive()
            if ready():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start writing within 30 s")
            time.sleep(0.1)
        while ready is None:
            subject.alive()
            try:
                with urllib.request.urlopen(subject.url, timeout=2) as resp:
                    resp.read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} /metrics did not answer on {subject.url}") from None
                time.sleep(0.1)
        yield subject
    finally:
        subject.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def metric_sum(body: str, name: str) -> float:
    """Sum of the samples called ``name`` (all label sets) in a /metrics text or OpenMetrics."""
    parse = openmetrics_families if body.rstrip().endswith("# EOF") else text_families
    return sum(s.value for family in parse(body) for s in family.samples if s.name == name)


def _version(binary: str) -> str:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown ({e})"
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown"


# --- the run ---------------------------------------------------------------------------
@dataclass
class Result:
    """What one side-by-side run measured."""

    seconds: float
    agent: Subject
    node: Subject
    samples: float
    points_written: float
    sample_mean_ms: float
    glances: Subject | None = None
    glances_rows: int = 0
    registered: Subject | None = None
    """The twin agent sampling ``REGISTERED`` registered processes."""
    gpus: int = 0
    """Fake GPUs each agent's GPU collector read."""
    flush: float = FLUSH_INTERVAL
    """Seconds between the agents' store writes (``--flush-interval``)."""

    @property
    def what(self) -> str:
        """What the agents sampled, for the table."""
        gpus = f", {self.gpus} fake GPUs" if self.gpus else ""
        return f"all collectors{gpus}, written every {self.flush:g} s"

    @property
    def ratio(self) -> float:
        node = self.node.cpu_percent
        return self.agent.cpu_percent / node if node else float("inf")

    @property
    def process_delta(self) -> float | None:
        """How much the registered processes add to the agent's ratio to node_exporter."""
        if self.registered is None or not self.node.cpu_percent:
            return None
        return self.registered.cpu_percent / self.node.cpu_percent - self.ratio

    @property
    def process_met(self) -> bool:
        return self.process_delta is not None and self.process_delta <= PROCESS_DELTA_TARGET

    @property
    def glances_ratio(self) -> float | None:
        if self.glances is None or not self.glances.cpu_percent:
            return None
        return self.agent.cpu_percent / self.glances.cpu_percent

    @property
    def subjects(self) -> list[Subject]:
        found = (self.agent, self.node, self.glances, self.registered)
        return [s for s in found if s is not None]

    @property
    def agent_hwm(self) -> int:
        assert self.agent.end is not None
        return self.agent.end.hwm_bytes

    @property
    def cpu_met(self) -> bool:
        return self.ratio <= CPU_RATIO_TARGET

    @property
    def rss_met(self) -> bool:
        return self.agent_hwm <= RSS_TARGET_BYTES

    @property
    def passed(self) -> bool:
        errors = self.agent.scrape_errors + self.node.scrape_errors
        return (
            self.cpu_met and self.rss_met and self.process_met and not errors and self.samples > 0
        )


def scrape_both(subjects: Sequence[Subject], until: float, interval: float) -> None:
    """Scrape every subject once per ``interval`` on a fixed grid until ``until``."""
    tick = time.monotonic()
    while tick < until:
        for s in subjects:
            s.alive()
            if s.scraped:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    s.scrape()
        tick += interval
        time.sleep(max(0.0, tick - time.monotonic()))


def _agent_argv(
    tmp: Path, name: str, interval: float, flush: float, gpus: int
) -> tuple[list[str], int, int]:
    """An agent with every collector on a SQLite store of its own, written every ``flush``
    seconds, ``gpus`` fake GPUs; its argv, /metrics and push ports."""
    metrics_port, push_port = free_port(), free_port()
    launcher = [str(REPO / "bench" / "gpu_agent.py"), str(gpus)] if gpus else ["-m", "fleetgauge"]
    argv = [
        sys.executable,
        *launcher,
        "agent",
        *("--store", f"sqlite:///{tmp / f'{name}.db'}"),
        *("--spool-dir", str(tmp / f"{name}-spool")),
        *("--metrics-port", str(metrics_port), "--push-port", str(push_port)),
        *("--interval", f"{interval:g}", "--flush-interval", f"{flush:g}"),
        *("--worker", f"{WORKER}-{name}", "--environment", "bench"),
    ]
    return argv, metrics_port, push_port


def _register(push_port: int, pids: Sequence[int]) -> None:
    """Register ``pids`` with the agent on ``push_port``, one deployment each."""
    body = json.dumps(
        {
            "processes": [
                {"pid": pid, "deployment": f"bench-model-{i}"} for i, pid in enumerate(pids)
            ]
        }
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{push_port}{protocol.PUSH_PROCESSES_PATH}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        registered = json.loads(answer.read())["registered"]
    if registered != len(pids):
        raise RuntimeError(f"the agent registered {registered} of {len(pids)} processes")


def run(
    seconds: float,
    warmup: float,
    interval: float,
    tmp: Path,
    scrape: str,
    gpus: int = GPUS,
    flush: float = FLUSH_INTERVAL,
) -> Result:
    """Start them all, warm up, measure ``seconds`` of scraping them every ``interval``."""
    node_port = free_port()
    node_argv = [
        shutil.which(NODE_EXPORTER) or NODE_EXPORTER,
        f"--web.listen-address=127.0.0.1:{node_port}",
    ]
    agent_argv, agent_port, _ = _agent_argv(tmp, "agent", interval, flush, gpus)
    twin_argv, twin_port, twin_push = _agent_argv(tmp, "registered", interval, flush, gpus)
    glances_csv = tmp / "glances.csv"
    with contextlib.ExitStack() as stack:
        node = stack.enter_context(launched("node_exporter", node_argv, node_port, tmp, scrape))
        agent = stack.enter_context(launched("agent", agent_argv, agent_port, tmp, scrape))
        sleepers = [
            subprocess.Popen(["sleep", "86400"], stdin=subprocess.DEVNULL)
            for _ in range(REGISTERED)
        ]
        for p in sleepers:
            stack.callback(p.wait)
            stack.callback(p.kill)
        name = f"agent, {REGISTERED} registered processes"
        twin = stack.enter_context(launched(name, twin_argv, twin_port, tmp, scrape))
        _register(twin_push, [p.pid for p in sleepers])
        subjects: tuple[Subject, ...] = (agent, node)
        if glances_available():
            glances_argv = [*GLANCES, "--quiet", "--export", "csv"]
            glances_argv += ["--export-csv-file", str(glances_csv), "-t", f"{interval:g}"]
            ready = functools.partial(_has_rows, glances_csv)
            glances = launched("glances", glances_argv, 0, tmp, scrape, ready=ready)
            subjects += (stack.enter_context(glances),)
        else:
            _progress(f"[agent] {GLANCES_HINT}: measuring without it")
        subjects += (twin,)
        _progress(
            f"[agent] {', '.join(s.name for s in subjects)} up; warming up {warmup:g} s,"
            f" scraping every {interval:g} s"
        )
        scrape_both(subjects, time.monotonic() + warmup, interval)
        before = agent.scrape()
        t0 = time.monotonic()
        for s in subjects:
            s.start = usage_of(s.proc.pid)
        end = t0 + seconds
        step = max(10.0, seconds / 6)
        while (now := time.monotonic()) < end:
            scrape_both(subjects, min(end, now + step), interval)
            elapsed = time.monotonic() - t0
            cpu = {s.name: (usage_of(s.proc.pid).cpu_s - s.start.cpu_s) / elapsed for s in subjects}
            shares = ", ".join(f"{name} {share:.2%}" for name, share in cpu.items())
            _progress(f"[agent] {elapsed:4.0f} s: CPU {shares} of one core")
        for s in subjects:
            s.end = usage_of(s.proc.pid)
            s.window_s = time.monotonic() - t0
        after = agent.scrape()
        glances_rows = _has_rows(glances_csv) if glances_available() else 0

    def delta(name: str) -> float:
        return metric_sum(after, name) - metric_sum(before, name)

    duration = catalogue.AGENT_SAMPLE_SECONDS.name
    samples, count = delta(catalogue.AGENT_SAMPLES.name), delta(duration + "_count")
    mean_ms = delta(duration + "_sum") / count * 1000 if count else 0.0
    written = delta(catalogue.AGENT_POINTS_WRITTEN.name)
    glances = next((s for s in subjects if s.name == "glances"), None)
    return Result(
        *(seconds, agent, node, samples, written, mean_ms, glances, glances_rows, twin, gpus),
        flush,
    )


def glances_available() -> bool:
    return importlib.util.find_spec("glances") is not None


def _version_of_module(name: str) -> str:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return "unknown"


def _has_rows(path: Path) -> int:
    """Data rows Glances has written to its CSV (the first line is the header)."""
    with contextlib.suppress(OSError):
        with path.open("rb") as f:
            return max(0, sum(1 for _ in f) - 1)
    return 0


# --- report --------------------------------------------------------------------------
HEADERS = ("process", "CPU % of one core", "peak RSS MB", "RSS now MB", "scrapes", "scrape ms")


def table_rows(r: Result) -> list[list[str]]:
    """One row per process."""
    rows = []
    for s in r.subjects:
        assert s.end is not None
        ms = sorted(s.scrape_s)
        rows.append(
            [
                s.name,
                f"{s.cpu_percent:.2f}",
                f"{s.end.hwm_bytes / MB:.1f}",
                f"{s.end.rss_bytes / MB:.1f}",
                f"{s.scrapes} ({s.scrape_errors} failed)" if s.scraped else "-",
                f"{ms[len(ms) // 2] * 1000:.1f}" if ms else "-",
            ]
        )
    return rows


def verdict_lines(r: Result) -> list[str]:
    """Targets, their outcome and the agent's own counts."""

    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    return [
        f"CPU ratio agent / node_exporter: {r.ratio:.3f} (target <= {CPU_RATIO_TARGET}):"
        f" {met(r.cpu_met)}",
        f"agent peak RSS: {r.agent_hwm / MB:.1f} MB (target <= {RSS_TARGET_BYTES / MB:.0f} MB):"
        f" {met(r.rss_met)}",
        (
            f"CPU ratio agent / Glances: {r.glances_ratio:.3f} (no target); Glances wrote"
            f" {r.glances_rows} CSV rows"
            if r.glances_ratio is not None
            else f"Glances: not measured ({GLANCES_HINT})"
        ),
        (
            f"process sampling ({REGISTERED} registered processes): the agent's ratio"
            f" {r.ratio:.3f} -> {r.ratio + r.process_delta:.3f}, {r.process_delta:+.3f}"
            f" (target <= +{PROCESS_DELTA_TARGET}): {met(r.process_met)}"
            if r.process_delta is not None
            else "process sampling: not measured"
        ),
        f"agent in the window: {r.samples:.0f} samples, {r.points_written:.0f} points written"
        f" to SQLite, mean sample (all collectors) {r.sample_mean_ms:.1f} ms",
        f"result: {'PASS' if r.passed else 'FAIL'}",
    ]


def markdown(args: argparse.Namespace, r: Result, info: list[tuple[str, str]]) -> str:
    """The report as markdown: parameters, table, verdict and machine."""
    return markdown_report(
        "Agent overhead benchmark",
        f"python -m bench.bench_agent --seconds {args.seconds:g} --warmup {args.warmup:g}"
        f" --interval {args.interval:g} --flush-interval {args.flush_interval:g}"
        f" --scrape {args.scrape}",
        f"The processes ran side by side; the agent and node_exporter were scraped every"
        f" {args.interval:g} s ({args.scrape}: {SCRAPE_STYLES[args.scrape]}) and Glances"
        f" exported to CSV every {args.interval:g} s; CPU"
        f" time (the process's CPU clock, plus reaped children) over {r.seconds:g} s after a"
        f" {args.warmup:g} s warm-up. The agent ran every collector at --interval"
        f" {args.interval:g} with a SQLite store written every {args.flush_interval:g} s, so its"
        " figure includes writing every point;"
        " node_exporter (default collectors) writes nothing. MB = 10^6 bytes.",
        HEADERS,
        table_rows(r),
        verdict_lines(r),
        info,
    )


# --- main ------------------------------------------------------------------------------
def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value:g}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_agent", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--seconds", type=_positive, default=60.0, help="measured window (default 60)"
    )
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds before measuring (default 5)"
    )
    parser.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        help="agent interval and scrape interval in seconds (default 1)",
    )
    parser.add_argument(
        "--flush-interval",
        type=_positive,
        default=FLUSH_INTERVAL,
        help="the agents' --flush-interval: seconds between store writes (default"
        f" {FLUSH_INTERVAL:g}, the agent's own default)",
    )
    parser.add_argument(
        "--scrape",
        choices=tuple(SCRAPE_HEADERS),
        default="prometheus",
        help="how both are scraped: " + "; ".join(f"{k}: {v}" for k, v in SCRAPE_STYLES.items()),
    )
    parser.add_argument(
        "--gpus",
        type=int,
        default=GPUS,
        help=f"fake GPUs (the tests' NVML) each agent's GPU collector reads (default {GPUS};"
        " 0: none)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, run the agent's work in-process and print where its CPU goes",
    )
    return parser.parse_args(argv)


def figures(r: Result) -> list[Figure]:
    """The rows this benchmark adds to the suite's table."""
    node, agent = r.node.cpu_percent, r.agent.cpu_percent
    rows = [
        Figure(
            f"agent CPU (1 s interval, {r.what})",
            f"{agent:.2f} % of a core",
            f"node_exporter: {node:.2f} %",
            r.ratio,
            f"<= {CPU_RATIO_TARGET} x node_exporter",
            r.cpu_met,
        )
    ]
    if r.registered is not None and r.process_delta is not None:
        rows.append(
            Figure(
                f"agent CPU, {REGISTERED} registered processes sampled",
                f"{r.registered.cpu_percent:.2f} % of a core",
                f"the same agent without them: {agent:.2f} %",
                r.process_delta,
                f"<= +{PROCESS_DELTA_TARGET} x node_exporter (ratio shown: the increase)",
                r.process_met,
            )
        )
    if r.glances is not None:
        rows.append(
            Figure(
                f"agent CPU (1 s interval, {r.what})",
                f"{agent:.2f} % of a core",
                f"Glances, CSV export every 1 s: {r.glances.cpu_percent:.2f} %",
                r.glances_ratio,
                "-",
                None,
            )
        )
    for s in (r.node, r.glances):
        if s is None:
            continue
        assert s.end is not None and r.agent.end is not None
        rows.append(
            Figure(
                "agent peak RSS",
                f"{r.agent_hwm / MB:.1f} MB",
                f"{s.name}: {s.end.hwm_bytes / MB:.1f} MB",
                r.agent_hwm / s.end.hwm_bytes,
                f"<= {RSS_TARGET_BYTES / MB:.0f} MB" if s is r.node else "-",
                r.rss_met if s is r.node else None,
            )
        )
    return rows


def report(args: argparse.Namespace, result: Result, info: list[tuple[str, str]]) -> None:
    """Print the table and verdict, and write them as markdown to ``bench/out/agent.md``."""
    print()
    print(text_table(HEADERS, table_rows(result)))
    print()
    for text in verdict_lines(result):
        print(text)
    print()
    for k, v in info:
        print(f"{k}: {v}")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(markdown(args, result, info))
    results.save("agent", figures(result))
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}", flush=True)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when both targets are met, 1 otherwise, 2 without node_exporter."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # clean up as on Ctrl-C
    if shutil.which(NODE_EXPORTER) is None:
        _progress(INSTALL_HINT)
        return 2
    info = [row for row in machine() if row[0] != "influxd"]
    info.append(("node_exporter", _version(NODE_EXPORTER)))
    if glances_available():
        info.append(("Glances", _version_of_module("glances")))
    try:
        with tempfile.TemporaryDirectory(prefix="fleetgauge-bench-agent-") as tmp:
            result = run(
                *(args.seconds, args.warmup, args.interval, Path(tmp), args.scrape, args.gpus),
                args.flush_interval,
            )
            report(args, result, info)
            if args.profile:
                headers = SCRAPE_HEADERS[args.scrape]
                profile_agent(
                    *(args.seconds, args.interval, Path(tmp) / "profile", OUT_DIR, headers),
                    gpus=args.gpus,
                    flush=args.flush_interval,
                )
    except KeyboardInterrupt:  # the with blocks have stopped the processes and removed files
        _progress("interrupted: agent and node_exporter stopped, temporary files removed")
        return 130
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
