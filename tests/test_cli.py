"""The fleetgauge command as a user runs it: real processes, real stores, CSV read back."""

from __future__ import annotations

import csv
import io
import os
import pty
import re
import select
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from fleetgauge.catalogue import Point
from fleetgauge.cli import build_parser
from fleetgauge.stores import Store

S = 1_000_000_000
T0 = 1_767_225_600 * S
START, END = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def fleetgauge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleetgauge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_explains_every_command_and_flag() -> None:
    top = fleetgauge("--help")
    assert top.returncode == 0
    for command in ("agent", "dashboard", "demo", "export"):
        assert command in top.stdout
        sub = fleetgauge(command, "--help")
        assert sub.returncode == 0, sub.stderr
        parser = build_parser()._subparsers._group_actions[0].choices[command]  # noqa: SLF001
        for action in parser._actions:  # noqa: SLF001
            for flag in action.option_strings:
                assert flag in sub.stdout, (command, flag)
            assert action.help, (command, action.dest)


def test_demo_creates_the_store_and_says_where(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = fleetgauge("demo", "--seed-only", "--store", url, "--hours", "0.5", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert url in result.stdout
    out = tmp_path / "resources.csv"
    exported = fleetgauge("export", "resources", "--store", url, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open()))
    assert {r["worker"] for r in rows} == {"demo-gpu-node-01", "demo-gpu-node-02"}
    assert {r["measurement"] for r in rows} >= {"cpu", "memory", "disk", "network", "gpu"}


def store_env(store: Store) -> dict[str, str]:
    return {"FLEETGAUGE_STORE": store.url}


def test_export_metrics_matches_the_data_cell_by_cell(store: Store, tmp_path: Path) -> None:
    store.write(
        [
            Point(
                "pipeline_metric",
                {
                    "environment": "prod",
                    "worker": "w1",
                    "deployment": "fraud-v2",
                    "metric": "score",
                },
                {"value": 1.0},
                T0 + 90 * S,
            ),
            Point(
                "pipeline_metric",
                {
                    "environment": "prod",
                    "deployment": '=HYPERLINK("x")',
                    "metric": "score",
                    "execution_id": "run-1",
                    "team": "+vision",
                },
                {"value": -0.25},
                T0 + 30 * S + 500_000_000,
            ),
            Point(
                "pipeline_metric",
                {"environment": "prod", "deployment": "late", "metric": "score"},
                {"value": 3.0},
                T0 + 3600 * S,
            ),  # at --end: excluded
        ]
    )
    out = tmp_path / "metrics.csv"
    result = fleetgauge(
        "export", "metrics", "--start", START, "--end", END, "--out", str(out), env=store_env(store)
    )
    assert result.returncode == 0, result.stderr
    assert "2 rows" in result.stderr
    assert list(csv.reader(out.open(newline=""))) == [
        [
            "time",
            "measurement",
            "environment",
            "worker",
            "pipeline",
            "deployment",
            "metric",
            "execution_id",
            "value",
            "step",
            "other_tags",
        ],
        [
            "2026-01-01T00:00:30.500000000Z",
            "pipeline_metric",
            "prod",
            "",
            "",
            '\'=HYPERLINK("x")',
            "score",
            "run-1",
            "-0.25",
            "",
            '{"team": "+vision"}',
        ],
        [
            "2026-01-01T00:01:30.000000000Z",
            "pipeline_metric",
            "prod",
            "w1",
            "",
            "fraud-v2",
            "score",
            "",
            "1.0",
            "",
            "",
        ],
    ]
    # Piped: no progress line (its \r would read as a line break here), only the summary.
    assert result.stderr.startswith("2 rows of metrics") and result.stderr.count("\n") == 1


def test_export_resources_filters_by_worker_and_neutralizes_formulas(store: Store) -> None:
    store.write(
        [
            Point("cpu", {"environment": "prod", "worker": "@evil"}, {"usage_percent": 50.0}, T0),
            Point(
                "disk",
                {"environment": "prod", "worker": "@evil", "mount": "-data"},
                {"used_percent": 12.5},
                T0 + S,
            ),
            Point("cpu", {"environment": "prod", "worker": "other"}, {"usage_percent": 9.0}, T0),
        ]
    )
    result = fleetgauge(
        "export",
        "resources",
        "--start",
        START,
        "--end",
        END,
        "--worker",
        "@evil",
        env=store_env(store),
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [
        (r["measurement"], r["worker"], r["mount"], r["usage_percent"], r["used_percent"])
        for r in rows
    ] == [("cpu", "'@evil", "", "50.0", ""), ("disk", "'@evil", "'-data", "", "12.5")]


def test_export_one_csv_per_measurement_as_a_zip_or_one_measurement_alone(
    store: Store, tmp_path: Path
) -> None:
    tags = {"environment": "prod", "worker": "w1"}
    store.write(
        [
            Point("cpu", tags, {"usage_percent": 50.0, "load1": 0.5}, T0),
            Point("memory", tags, {"used_percent": 25.0}, T0 + S // 2),
            Point("disk", {**tags, "mount": "/"}, {"used_percent": 12.5}, T0 + S),
        ]
    )
    out = tmp_path / "resources.zip"
    window = ("--start", START, "--end", END)
    result = fleetgauge(
        "export", "resources", *window, "--layout", "per-measurement", "--out", str(out),
        env=store_env(store),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cpu.csv, cpu_core.csv, memory.csv" in result.stderr
    with zipfile.ZipFile(out) as archive:
        tables = {
            name: list(csv.DictReader(io.StringIO(archive.read(name).decode())))
            for name in archive.namelist()
        }
        cpu_header = next(csv.reader(io.StringIO(archive.read("cpu.csv").decode())))
    assert "gpu.csv" in tables and tables["gpu.csv"] == []  # every measurement, a header each
    assert cpu_header[:4] == ["time", "measurement", "environment", "worker"]
    assert "used_percent" not in cpu_header and "mount" not in cpu_header  # its columns only
    assert [(r["time"], r["usage_percent"], r["load1"]) for r in tables["cpu.csv"]] == [
        ("2026-01-01T00:00:00.000000000Z", "50.0", "0.5")
    ]
    assert [(r["time"], r["used_percent"]) for r in tables["memory.csv"]] == [
        ("2026-01-01T00:00:00.500000000Z", "25.0")
    ]
    assert [(r["mount"], r["used_percent"]) for r in tables["disk.csv"]] == [("/", "12.5")]
    result = fleetgauge(
        "export", "resources", *window, "--measurement", "memory", env=store_env(store)
    )
    assert result.returncode == 0, result.stderr
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert "usage_percent" not in header and "used_percent" in header
    assert len(rows) == 1 and rows[0][0] == "2026-01-01T00:00:00.500000000Z"


def test_export_of_nothing_still_writes_the_header(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "empty.csv"
    result = fleetgauge(
        "export",
        "resources",
        "--start",
        START,
        "--end",
        END,
        "--out",
        str(out),
        env=store_env(store),
    )
    assert result.returncode == 0, result.stderr
    (header,) = list(csv.reader(out.open()))
    assert header[:4] == ["time", "measurement", "environment", "worker"]
    assert "usage_percent" in header and "receive_bytes_per_second" in header


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "metrics", "--start", "yesterday"], "not a time: 'yesterday'"),
        (["export", "metrics", "--start", END, "--end", START], "is not before --end"),
        (["export", "metrics", "--store", "postgres://x"], "unsupported store URL"),
        (["export", "metrics", "--worker", "w"], "--worker applies to 'export resources' only"),
        (
            ["export", "resources", "--deployment", "d"],
            "--deployment applies to 'export metrics' and 'export events' only",
        ),
        (["export", "events", "--end", "inf"], "--end: time 'inf' is outside the times"),
        (["export", "resources", "--measurement", "cpuu"], "unknown resources measurement 'cpuu'"),
        (["export", "resources", "--layout", "per-measurement"], "give --out FILE.zip"),
        (
            ["export", "metrics", "--start", "1767225600000000000"],
            "outside the times a store can hold",
        ),
        (
            ["export", "metrics", "--store", "influxdb+http://u:secret@h:1/b"],
            "do not put credentials",
        ),
    ],
)
def test_bad_arguments_get_a_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    result = fleetgauge(*args, env={"FLEETGAUGE_STORE": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 2
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "usage", "hint"),
    [
        (["agent", "--intervall", "5"], "usage: fleetgauge agent", "did you mean --interval?"),
        (["dashboard", "--prot", "8050"], "usage: fleetgauge dashboard", "did you mean --port?"),
        (["demo", "--workerz", "3"], "usage: fleetgauge demo", "did you mean --workers?"),
        (["agent", "--push_port=9"], "usage: fleetgauge agent", "did you mean --push-port?"),
    ],
)
def test_a_mistyped_flag_shows_the_commands_usage_and_the_closest_flag(
    args: list[str], usage: str, hint: str
) -> None:
    result = fleetgauge(*args)
    assert result.returncode == 2
    assert usage in result.stderr and hint in result.stderr, result.stderr
    assert "usage: fleetgauge [-h]" not in result.stderr


def test_export_from_a_missing_sqlite_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    result = fleetgauge("export", "metrics", "--store", f"sqlite:///{missing}")
    assert result.returncode == 1 and "no store at" in result.stderr
    assert not missing.exists()


def test_export_from_an_unreachable_influxdb_fails_without_leaving_a_file(tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    result = fleetgauge(
        "export",
        "metrics",
        "--store",
        "influxdb+http://127.0.0.1:9/b?timeout=2",
        "--out",
        str(out),
        env={"FLEETGAUGE_INFLUX_TOKEN": "s3cret-token"},
    )
    assert result.returncode == 1 and "unreachable" in result.stderr
    assert "s3cret-token" not in result.stderr + result.stdout
    assert not out.exists()


@pytest.mark.parametrize(
    ("where", "reason"),
    [("no-such-dir/x.csv", "No such file or directory"), (".", "Is a directory")],
)
def test_export_to_an_unwritable_path_is_one_clear_line(
    store: Store, tmp_path: Path, where: str, reason: str
) -> None:
    out = tmp_path / where
    result = fleetgauge(
        "export", "events", "--start", START, "--end", END, "--out", str(out), env=store_env(store)
    )
    assert result.returncode == 1
    assert result.stderr == f"fleetgauge: error: cannot write {out}: {reason}\n"
    assert not list(tmp_path.glob("**/*.partial"))


def test_export_events_filtered_by_deployment(store: Store) -> None:
    def event(deployment: str, t: int) -> Point:
        tags = {"environment": "prod", "name": "deployed", "deployment": deployment}
        return Point("event", tags, {"metadata": '{"by": "ci"}'}, t)

    store.write([event("a", T0 + S), event("b", T0 + 2 * S)])
    result = fleetgauge(
        "export",
        "events",
        "--start",
        START,
        "--end",
        END,
        "--deployment",
        "b",
        env=store_env(store),
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["time"], r["name"], r["deployment"], r["metadata"]) for r in rows] == [
        ("2026-01-01T00:00:02.000000000Z", "deployed", "b", '{"by": "ci"}')
    ]


def on_a_terminal(*args: str, env: dict[str, str], stdout_too: bool = False) -> tuple[int, str]:
    """Run fleetgauge with stderr (and stdout when asked) on a pseudo-terminal; its output."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetgauge", *args],
            stdin=subprocess.DEVNULL,
            stdout=slave if stdout_too else subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, **env},
        )
    finally:
        os.close(slave)
    chunks, deadline = [], time.monotonic() + 120
    try:
        while select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=10), b"".join(chunks).decode()


def test_export_draws_a_progress_line_on_a_terminal_and_wipes_it(
    store: Store, tmp_path: Path
) -> None:
    store.write([Point("cpu", {"environment": "e", "worker": "w"}, {"load1": 1.0}, T0)])
    out = tmp_path / "r.csv"
    code, screen = on_a_terminal(
        "export",
        "resources",
        "--start",
        START,
        "--end",
        END,
        "--out",
        str(out),
        env=store_env(store),
    )
    assert code == 0, screen
    drawn = r"\rexporting resources: (\d) rows written, \d+\.\d s elapsed"
    wiped = r"\r {50,}\r"  # as wide as the line drawn
    summary = f"1 rows of resources from {START} to {END} written to {out}\r\n"
    match = re.fullmatch(f"({drawn})+{wiped}{re.escape(summary)}", screen)
    assert match, repr(screen)
    assert screen.startswith("\rexporting resources: 0 rows written, 0.0 s elapsed")
    assert len(list(csv.reader(out.open(newline="")))) == 2


def test_no_progress_line_when_the_csv_goes_to_the_same_terminal(store: Store) -> None:
    code, screen = on_a_terminal(
        "export", "metrics", "--start", START, "--end", END, env=store_env(store), stdout_too=True
    )
    assert code == 0, screen
    assert "rows written" not in screen
    assert screen.startswith("time,measurement,environment,worker,pipeline,deployment,metric")
