"""Import benchmark: what ``import fleetgauge`` costs a model-serving process, and its install.

Model code imports fleetgauge once at start-up and records after every
prediction, so the import must be as light as instrumenting with Prometheus.
This measures, in one run:

- ``import fleetgauge`` against ``import prometheus_client``: each in a fresh
  interpreter, ``--runs`` times (default 10), interleaved; wall time of the
  import statement alone (``perf_counter``, interpreter start-up excluded) and
  the growth of resident memory it causes (``/proc/self/statm``). Figures are
  medians. Targets: time <= 1.0x prometheus_client's, RSS growth <= 8 MB.
- ``pip install fleetgauge`` with no extras: the wheel built from this checkout
  installed into a fresh virtual environment (dependencies from the package
  index), against ``pip install prometheus_client`` into another; the size of
  everything installed besides pip and setuptools. Target: <= 5 MB.

Run ``python -m bench.bench_import`` from the repository root (or ``scripts/bench
import``). The table is printed and written as markdown to ``bench/out/import.md``;
the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import results
from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, text_table
from bench.results import Figure

__all__ = ["main", "import_cost", "install_size"]

REPORT_PATH = OUT_DIR / "import.md"
TIME_RATIO_TARGET = 1.0
RSS_TARGET_MB = 8.0
INSTALL_TARGET_MB = 5.0
HEADERS = ("figure", "value", "reference (same run)", "ratio", "target", "result")
MACHINE_KEYS = ("CPUs (nproc)", "CPU model", "RAM", "OS", "Python")
_PROBE = """
import os, time
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
before = rss()
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
print(t1 - t0, rss() - before)
"""
_PACKAGING = ("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence.pth")


def import_cost(module: str, python: str = sys.executable) -> tuple[float, float]:
    """(seconds, RSS growth in bytes) of ``import module`` in a fresh interpreter."""
    out = subprocess.run(
        [python, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # not the checkout: the installed package is measured
    ).stdout.split()
    return float(out[0]), float(out[1])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install_size(workdir: Path, requirement: str) -> tuple[int, list[tuple[str, int]]]:
    """Bytes that ``pip install REQUIREMENT`` adds to a fresh venv, and per entry.

    ``fleetgauge`` is the wheel of this checkout; anything else comes from the index.
    """
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    if requirement == "fleetgauge":
        requirement = str(_wheel(workdir))
    subprocess.run([*pip, "install", requirement], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    entries = [
        (p.name, _size(p) if p.is_dir() else p.stat().st_size)
        for p in sorted(site.iterdir())
        if not p.name.startswith(_PACKAGING) and p.name != "__pycache__"
    ]
    return sum(size for _, size in entries), entries


def _wheel(workdir: Path) -> Path:
    """The wheel of this checkout, built from a clean copy of what a wheel is built from."""
    wheels = workdir / "wheels"
    source = workdir / "source"  # a clean copy: no build/ left by an earlier build
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("fleetgauge", "agent", "dashboard"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
    )
    return next(wheels.glob("fleetgauge-*.whl"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="fresh interpreters each (10)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met, 1 otherwise."""
    args = parse_args(argv)
    ours: list[tuple[float, float]] = []
    reference: list[tuple[float, float]] = []
    import_cost("fleetgauge"), import_cost("prometheus_client")  # warm the file cache
    for _ in range(args.runs):
        ours.append(import_cost("fleetgauge"))
        reference.append(import_cost("prometheus_client"))
    t_ours = statistics.median(t for t, _ in ours)
    t_ref = statistics.median(t for t, _ in reference)
    rss_ours = statistics.median(r for _, r in ours) / 1e6
    rss_ref = statistics.median(r for _, r in reference) / 1e6
    with tempfile.TemporaryDirectory(prefix="fleetgauge-install-") as tmp:
        size, entries = install_size(Path(tmp) / "ours", "fleetgauge")
        ref_size, _ = install_size(Path(tmp) / "reference", "prometheus_client")
    size_mb, ref_mb = size / 1e6, ref_size / 1e6
    figures = [
        Figure(
            "import fleetgauge, median wall time",
            f"{t_ours * 1000:.1f} ms",
            f"import prometheus_client: {t_ref * 1000:.1f} ms",
            t_ours / t_ref,
            f"<= {TIME_RATIO_TARGET}x",
            t_ours / t_ref <= TIME_RATIO_TARGET,
        ),
        Figure(
            "import fleetgauge, median RSS growth",
            f"{rss_ours:.1f} MB",
            f"import prometheus_client: {rss_ref:.1f} MB",
            rss_ours / rss_ref if rss_ref else None,
            f"<= {RSS_TARGET_MB:g} MB",
            rss_ours <= RSS_TARGET_MB,
        ),
        Figure(
            "pip install fleetgauge (no extras), installed size",
            f"{size_mb:.2f} MB",
            f"pip install prometheus_client: {ref_mb:.2f} MB",
            size_mb / ref_mb,
            f"<= {INSTALL_TARGET_MB:g} MB",
            size_mb <= INSTALL_TARGET_MB,
        ),
    ]
    rows = [[f.name, f.value, f.reference, _ratio(f.ratio), f.target, f.result] for f in figures]
    info = [(k, v) for k, v in machine() if k in MACHINE_KEYS]
    command = f"python -m bench.bench_import --runs {args.runs}"
    notes = [
        f"each import in a fresh interpreter, {args.runs} times, interleaved with the"
        " reference's; times exclude interpreter start-up; RSS from /proc/self/statm",
        "installed: " + ", ".join(f"{name} {n / 1e6:.2f} MB" for name, n in entries),
        "the install is the wheel of this checkout in a fresh venv, dependencies from the"
        " package index (prometheus_client: from the index, in another venv); pip and"
        " setuptools are not counted",
    ]
    print(text_table(HEADERS, rows))
    print()
    for text in notes:
        print(text)
    report = markdown_report(
        "Import and install benchmark", command, "", HEADERS, rows, notes, info
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(report)
    results.save("import", figures)
    print(f"\nwritten to {REPORT_PATH.relative_to(REPO)}")
    return 0 if all(f.passed for f in figures) else 1


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.3f}"


if __name__ == "__main__":
    sys.exit(main())
