"""SDK benchmark: what one ``record_metric_value`` call costs the model's thread.

Deployed model code records a value after every prediction, so the call must
stay far below the cost of the prediction itself. This measures, in one run and
interleaved round by round so machine noise hits both alike:

- ours: the module-level ``fleetgauge.sdk.record_metric_value("score", 1)`` on the
  default client;
- reference: ``prometheus_client``'s
  ``Counter("x", "x", ["a", "b"], registry=CollectorRegistry()).labels("d", "m").inc()``
  (the counter is made once; each call looks up the child and increments it),
  what a model instrumented with Prometheus pays per prediction.

Each round times ``--calls`` calls (default 1,000) with ``perf_counter_ns``; a
figure is the median (and the 99th percentile) over ``--rounds`` rounds
(default 200) after one warm-up round, in microseconds per call, the ``for``
loop included for both. Target: median <= 1.5 us for ours.

And what a run's logging pays for being captured: ``log.info("epoch %d: loss %.4f",
i, x)`` on a logger with fleetgauge's ``LogHandler`` (what ``capture_logs=True``
attaches), beside the same call on a logger whose handler only formats the record
(logging's own cost, which any handler pays). The difference is what capturing
adds per line. Target: at most the SDK's per-call target (1.5 us), so a run that
logs in a tight loop is slowed by no more than a recording call.

Isolation: the default client points at a loopback port nothing listens on,
with a queue big enough for every call and a flush interval of an hour, so its
sender thread sleeps through the measurement: the figure is the calling
thread's own cost (stamping the time and appending to the queue), not the
sending, which happens on another thread.

Run ``python -m bench.bench_sdk`` from the repository root (or ``scripts/bench
sdk``). The table is printed and written as markdown to ``bench/out/sdk.md``;
the exit status is 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter

from bench import results
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure
from fleetgauge import sdk

__all__ = ["main", "measure"]

REPORT_PATH = OUT_DIR / "sdk.md"
TARGET_US = 1.5
HEADERS = ("figure", "value (us/call)", "reference (us/call)", "ratio", "target", "result")
MACHINE_KEYS = ("CPUs (nproc)", "CPU model", "RAM", "OS", "Python")


def unused_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ours_round(calls: int) -> float:
    """Microseconds per call of the module-level ``record_metric_value``, one round."""
    record = sdk.record_metric_value
    loop = range(calls)
    started = time.perf_counter_ns()
    for _ in loop:
        record("score", 1)
    return (time.perf_counter_ns() - started) / calls / 1000


def reference_round(calls: int, counter: Counter) -> float:
    """Microseconds per call of ``counter.labels("d", "m").inc()``, one round."""
    loop = range(calls)
    started = time.perf_counter_ns()
    for _ in loop:
        counter.labels("d", "m").inc()
    return (time.perf_counter_ns() - started) / calls / 1000


class _FormatOnly(logging.Handler):
    """A handler that formats each record and keeps nothing: logging's own cost."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def log_round(calls: int, log: logging.Logger) -> float:
    """Microseconds per ``log.info(...)`` call, one round."""
    loop = range(calls)
    info = log.info
    started = time.perf_counter_ns()
    for i in loop:
        info("epoch %d: loss %.4f", i, 0.5)
    return (time.perf_counter_ns() - started) / calls / 1000


def measure_logs(rounds: int, calls: int) -> tuple[list[float], list[float]]:
    """Per-round costs (us/call) of a logging call with LogHandler and with a handler that
    only formats, rounds interleaved."""
    ours = _logger("bench.captured", sdk.LogHandler(execution_id="bench-run", pipeline="bench"))
    plain = _logger("bench.plain", _FormatOnly())
    log_round(calls, ours)
    log_round(calls, plain)
    captured, reference = [], []
    for _ in range(rounds):
        captured.append(log_round(calls, ours))
        reference.append(log_round(calls, plain))
    return captured, reference


def measure(rounds: int, calls: int) -> tuple[list[float], list[float]]:
    """Per-round costs (us/call) of ours and the reference, rounds interleaved."""
    counter = Counter("x", "x", ["a", "b"], registry=CollectorRegistry())
    ours_round(calls)
    reference_round(calls, counter)
    ours, reference = [], []
    for _ in range(rounds):
        ours.append(ours_round(calls))
        reference.append(reference_round(calls, counter))
    return ours, reference


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)))]


def table_rows(ours: Sequence[float], reference: Sequence[float]) -> tuple[list[list[str]], bool]:
    """Table rows and whether the target was met."""
    rows = []
    passed = True
    figures: tuple[tuple[str, Callable[[Sequence[float]], float], bool], ...] = (
        ("record_metric_value, median", statistics.median, True),
        ("record_metric_value, p99 of rounds", p99, False),
    )
    for label, stat, targeted in figures:
        value, ref = stat(ours), stat(reference)
        ok = value <= TARGET_US
        if targeted:
            passed = ok
        rows.append(
            [
                label,
                f"{value:.3f}",
                f"{ref:.3f}",
                f"{value / ref:.2f}",
                f"<= {TARGET_US} us" if targeted else "-",
                ("PASS" if ok else "FAIL") if targeted else "-",
            ]
        )
    return rows, passed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="rounds (default 200)")
    parser.add_argument("--calls", type=int, default=1000, help="calls per round (default 1000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when the target is met, 1 otherwise."""
    args = parse_args(argv)
    port = unused_port()
    client = sdk.configure(
        url=f"http://127.0.0.1:{port}",
        deployment="bench",
        max_queue=2 * (args.rounds + 1) * args.calls + 1,
        flush_interval=3600,
        exit_timeout=0,
    )
    ours, reference = measure(args.rounds, args.calls)
    captured, formatted = measure_logs(args.rounds, args.calls)
    recorded = client.stats()["recorded"]
    # Nothing was meant to be delivered: close without the "not delivered" warning.
    logging.getLogger("fleetgauge.sdk").setLevel(logging.ERROR)
    client.close(timeout=0)
    rows, passed = table_rows(ours, reference)
    added = statistics.median(captured) - statistics.median(formatted)
    logs_ok = added <= TARGET_US
    rows.append(
        [
            "log.info with LogHandler, added cost per line (median)",
            f"{added:.3f}",
            f"{statistics.median(formatted):.3f} (formatting handler)",
            f"{statistics.median(captured) / statistics.median(formatted):.2f}",
            f"<= {TARGET_US} us added",
            "PASS" if logs_ok else "FAIL",
        ]
    )
    info = [(k, v) for k, v in machine() if k in MACHINE_KEYS]
    command = f"python -m bench.bench_sdk --rounds {args.rounds} --calls {args.calls}"
    notes = [
        f"ours: `fleetgauge.sdk.record_metric_value('score', 1)` (default client, {recorded} values"
        f" queued, sender idle: URL http://127.0.0.1:{port} with nothing listening,"
        " flush interval 1 h)",
        "reference: `Counter('x', 'x', ['a', 'b'], registry=CollectorRegistry())"
        ".labels('d', 'm').inc()` (prometheus_client)",
        "logs: `log.info('epoch %d: loss %.4f', i, 0.5)` with `fleetgauge.LogHandler` (what"
        " capture_logs=True attaches) beside the same call with a handler that only formats;"
        " the added cost is the difference of the medians",
        f"per round {args.calls} calls timed with perf_counter_ns, loop included;"
        f" {args.rounds} rounds interleaved with the reference's, after one warm-up round",
        f"result: {'PASS' if passed and logs_ok else 'FAIL'}",
    ]
    print(text_table(HEADERS, rows))
    print()
    for text in notes:
        print(text)
    for k, v in info:
        print(f"{k}: {v}")
    report = markdown_report("SDK benchmark", command, "", HEADERS, rows, notes, info)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(report)
    median, ref = statistics.median(ours), statistics.median(reference)
    results.save(
        "sdk",
        [
            Figure(
                "SDK record_metric_value, median per call",
                f"{median:.3f} us",
                f"prometheus_client Counter.labels().inc(): {ref:.3f} us",
                median / ref,
                f"<= {TARGET_US} us",
                passed,
            ),
            Figure(
                "SDK LogHandler, added cost per log.info line (median)",
                f"{added:.3f} us",
                f"the same call, formatting handler: {statistics.median(formatted):.3f} us",
                statistics.median(captured) / statistics.median(formatted),
                f"<= {TARGET_US} us added",
                logs_ok,
            ),
        ],
    )
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0 if passed and logs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
