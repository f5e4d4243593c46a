"""``scripts/bench``'s suite runs end to end: every benchmark adds its rows to the one table.

Tiny sizes (``--quick``, about 40 s): the figures mean nothing here, so no target is
asserted; what is checked is that each benchmark ran against its real reference
(node_exporter, Glances, prometheus_client, raw ``/write``, the stores' own CSV) and
that the table has a value, a reference and a ratio on every row.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_suite_writes_one_table_with_every_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a target missed at tiny sizes
    report = (REPO / "bench" / "out" / "RESULTS-quick.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert not [row for row in rows if "benchmark failed" in row], report
    for figure, reference in [
        ("SDK record_metric_value, median per call", "prometheus_client"),
        ("import fleetgauge, median wall time", "import prometheus_client"),
        ("pip install fleetgauge (no extras), installed size", "pip install prometheus_client"),
        ("agent CPU (1 s interval, all collectors", "node_exporter"),
        ("SDK -> agent -> InfluxDB", "raw /write"),
        ("sqlite: store.write (rollups included)", "bulk rows"),
        ("influxdb: bucketed read, cpu x 2 workers, 1m tier", "raw scan"),
        ("sqlite: dashboard first callback, 2 workers x 1 day", "raw points"),
        ("influxdb: CSV export, 20,000 rows", "the store's own CSV"),
        ("gpu collector: own CPU per sample, 8 GPUs", "inside the fake NVML"),
    ]:
        found = [row for row in rows if row.startswith(f"| {figure}") and reference in row]
        assert found, f"{figure!r} against {reference!r} missing from:\n{report}"
    glances = "| agent CPU (1 s interval, all collectors"  # (", 2 fake GPUs)" with --gpus)
    assert any(row.startswith(glances) and "Glances, CSV export" in row for row in rows), report
    for row in rows[1:]:
        value, ref, ratio = row.split(" | ")[1:4]
        assert value and ref != "-" and ratio != "-", row
    assert "## Machine" in report and "CPUs (nproc)" in report


def test_quick_scale_group_measures_the_page_at_fleet_size_and_both_servers_under_load() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.suite", "--scale", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = (REPO / "bench" / "out" / "RESULTS-scale-quick.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line]
    assert not [row for row in rows if "benchmark failed" in row], report
    for figure, reference in [
        ("sqlite: dashboard first callback, 20 workers x 1 h", "every worker's curve"),
        ("influxdb: dashboard figure JSON, 20 workers x 1 h", "every worker's curve"),
        ("dashboard under load: p95 callback, 3 users x 3 pages", "development server"),
        ("dashboard under load: errors, 3 users x 3 pages", "development server: 0 of"),
    ]:
        found = [row for row in rows if row.startswith(f"| {figure}") and reference in row]
        assert found, f"{figure!r} against {reference!r} missing from:\n{report}"
    errors = next(row for row in rows if row.startswith("| dashboard under load: errors"))
    assert "| 0 of " in errors, errors  # the production server answered every poll
    assert "store.write" not in report and "CSV export" not in report  # --dashboard-only
