"""The fleetgauge command as a user runs it: real processes, real stores, CSV read back."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.schema import Point
from agent.stores import Store

S = 1_000_000_000
T0 = 1_767_225_600 * S
START, END = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"


def fleetgauge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
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
    result = fleetgauge("demo", "--store", url, "--hours", "0.5", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert url in result.stdout
    out = tmp_path / "resources.csv"
    exported = fleetgauge("export", "resources", "--store", url, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(out.open()))
    assert {r["worker"] for r in rows} == {"gpu-node-01", "gpu-node-02"}
    assert {r["measurement"] for r in rows} >= {"cpu", "memory", "disk", "network", "gpu"}


def store_env(store: Store) -> dict[str, str]:
    return {"FLEETGAUGE_STORE": store.url}


def test_export_metrics_matches_the_data_cell_by_cell(store: Store, tmp_path: Path) -> None:
    store.write(
        [
            Point(
                "pipeline_metric",
                {"environment": "prod", "deployment": "fraud-v2", "metric": "score"},
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
    assert list(csv.reader(out.open())) == [
        [
            "time",
            "environment",
            "pipeline",
            "deployment",
            "metric",
            "execution_id",
            "value",
            "other_tags",
        ],
        [
            "2026-01-01T00:00:30.5Z",
            "prod",
            "",
            '\'=HYPERLINK("x")',
            "score",
            "run-1",
            "-0.25",
            '{"team": "+vision"}',
        ],
        ["2026-01-01T00:01:30Z", "prod", "", "fraud-v2", "score", "", "1.0", ""],
    ]


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
