"""The CSV export as a user reads it: given points in a store, the user sees these cells.

Every test that reads a store runs on SQLite and on a real influxd. The CSV is
read back with the ``csv`` module, as a spreadsheet import would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeClock

from fleetgauge.catalogue import Point
from fleetgauge.read.export import ProgressLine, export_csv, export_file
from fleetgauge.stores import Store, StoreUnavailable, open_store
from fleetgauge.stores.base import RowReader

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
HOUR = 3600 * S

RESOURCE_HEADER = [
    "time",
    "measurement",
    "environment",
    "worker",
    "core",
    "mount",
    "device",
    "interface",
    "gpu",
    "pid",
    "gpu_instance",
    "compute_instance",
    "process",
    "deployment",
    "pipeline",
    "execution_id",
    "container_id",
    "pod_uid",
    "usage_percent",
    "load1",
    "load5",
    "load15",
    "logical_count",
    "used_bytes",
    "available_bytes",
    "total_bytes",
    "used_percent",
    "swap_used_bytes",
    "swap_used_percent",
    "read_bytes_per_second",
    "write_bytes_per_second",
    "receive_bytes_per_second",
    "transmit_bytes_per_second",
    "utilization_percent",
    "memory_used_bytes",
    "memory_total_bytes",
    "memory_used_percent",
    "temperature_celsius",
    "power_draw_watts",
    "power_limit_watts",
    "memory_utilization_percent",
    "sm_clock_hertz",
    "sm_clock_max_hertz",
    "memory_clock_hertz",
    "memory_clock_max_hertz",
    "graphics_clock_hertz",
    "graphics_clock_max_hertz",
    "memory_temperature_celsius",
    "energy_joules",
    "performance_state",
    "fan_speed_percent",
    "pcie_receive_bytes_per_second",
    "pcie_transmit_bytes_per_second",
    "nvlink_receive_bytes_per_second",
    "nvlink_transmit_bytes_per_second",
    "pcie_replays",
    "encoder_utilization_percent",
    "decoder_utilization_percent",
    "ecc_corrected_volatile_errors",
    "ecc_uncorrected_volatile_errors",
    "ecc_corrected_aggregate_errors",
    "ecc_uncorrected_aggregate_errors",
    "remapped_rows_correctable",
    "remapped_rows_uncorrectable",
    "remapped_rows_pending",
    "remapped_rows_failure",
    "throttle_power_cap",
    "throttle_thermal_software",
    "throttle_thermal_hardware",
    "throttle_hardware_slowdown",
    "throttle_sync_boost",
    "throttle_idle",
    "throttle_applications_clocks",
    "sm_active_percent",
    "sm_occupancy_percent",
    "tensor_active_percent",
    "dram_bandwidth_percent",
    "sm_utilization_percent",
    "cpu_cores",
    "cpu_seconds",
    "rss_bytes",
    "threads",
    "cpu_limit_cores",
    "cpu_used_percent",
    "memory_limit_bytes",
    "other_tags",
]
METRICS_HEADER = [
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
]
EVENTS_HEADER = [
    "time",
    "environment",
    "worker",
    "name",
    "source",
    "deployment",
    "pipeline",
    "execution_id",
    "metadata",
    "other_tags",
]


def export(store: Store, kind: str, start: int = T0, end: int = T0 + HOUR, **kw: object) -> list:
    out = io.StringIO(newline="")
    rows = export_csv(store, kind, start, end, out, **kw)  # type: ignore[arg-type]
    table = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows == len(table) - 1
    return table


def resource_row(**cells: str) -> list[str]:
    """A resource row: the given cells, every other column empty."""
    assert set(cells) <= set(RESOURCE_HEADER), set(cells) - set(RESOURCE_HEADER)
    return [cells.get(column, "") for column in RESOURCE_HEADER]


def res(measurement: str, worker: str, t: int, env: str = "prod", **fields: float) -> Point:
    return Point(measurement, {"environment": env, "worker": worker}, fields, t)


# --- a known data set, cell by cell ---------------------------------------------------
@pytest.fixture
def fleet(store: Store) -> Store:
    store.write(
        [
            res("cpu", "w1", T0 - 1, usage_percent=1.0),  # before --start: excluded
            res("cpu", "w1", T0, usage_percent=12.5, load1=0.25),  # at --start: included
            res(
                "memory",
                "w1",
                T0 + S // 2,
                used_bytes=8.0e9,
                total_bytes=1.6e10,
                used_percent=50.0,
            ),
            Point(
                "disk",
                {"environment": "prod", "worker": "w1", "mount": "/data"},
                {"used_percent": 25.0},
                T0 + 2 * S,
            ),
            Point(
                "gpu",
                {"environment": "prod", "worker": "w2", "gpu": "0", "team": "+vision"},
                {"utilization_percent": 97.0, "temperature_celsius": 71.0},
                T0 + 3 * S,
            ),
            Point(
                "network",
                {"environment": "prod", "worker": "w2", "interface": "eth0"},
                {"receive_bytes_per_second": 1000.0, "transmit_bytes_per_second": 0.0},
                T0 + 4 * S + 1,
            ),
            res("cpu", "w3", T0 + 5 * S, env="dev", usage_percent=3.0),
            res("cpu", "w1", T0 + HOUR, usage_percent=99.0),  # at --end: excluded
        ]
    )
    return store


def test_resources_export_matches_the_data_cell_by_cell(fleet: Store) -> None:
    assert export(fleet, "resources") == [
        RESOURCE_HEADER,
        resource_row(
            time="2026-01-01T00:00:00.000000000Z",
            measurement="cpu",
            environment="prod",
            worker="w1",
            usage_percent="12.5",
            load1="0.25",
        ),
        resource_row(
            time="2026-01-01T00:00:00.500000000Z",
            measurement="memory",
            environment="prod",
            worker="w1",
            used_bytes="8000000000.0",
            total_bytes="16000000000.0",
            used_percent="50.0",
        ),
        resource_row(
            time="2026-01-01T00:00:02.000000000Z",
            measurement="disk",
            environment="prod",
            worker="w1",
            mount="/data",
            used_percent="25.0",
        ),
        resource_row(
            time="2026-01-01T00:00:03.000000000Z",
            measurement="gpu",
            environment="prod",
            worker="w2",
            gpu="0",
            utilization_percent="97.0",
            temperature_celsius="71.0",
            other_tags='{"team": "+vision"}',
        ),
        resource_row(
            time="2026-01-01T00:00:04.000000001Z",
            measurement="network",
            environment="prod",
            worker="w2",
            interface="eth0",
            receive_bytes_per_second="1000.0",
            transmit_bytes_per_second="0.0",
        ),
        resource_row(
            time="2026-01-01T00:00:05.000000000Z",
            measurement="cpu",
            environment="dev",
            worker="w3",
            usage_percent="3.0",
        ),
    ]


def column(table: list[list[str]], name: str) -> list[str]:
    at = table[0].index(name)
    return [row[at] for row in table[1:]]


@pytest.mark.parametrize(
    ("where", "workers"),
    [
        ({"worker": ["w2"]}, ["w2", "w2"]),
        ({"worker": ["w1", "w3"]}, ["w1", "w1", "w1", "w3"]),
        ({"environment": ["dev"]}, ["w3"]),
        ({"environment": ["prod"], "worker": ["w3"]}, []),
        ({"worker": []}, []),
    ],
)
def test_filters_keep_only_matching_rows(
    fleet: Store, where: dict[str, list[str]], workers: list[str]
) -> None:
    table = export(fleet, "resources", where=where)
    assert table[0] == RESOURCE_HEADER
    assert column(table, "worker") == workers


def test_time_window_is_start_inclusive_end_exclusive(fleet: Store) -> None:
    table = export(fleet, "resources", start=T0 + 2 * S, end=T0 + 4 * S + 1)
    assert column(table, "time") == [
        "2026-01-01T00:00:02.000000000Z",
        "2026-01-01T00:00:03.000000000Z",
    ]
    table = export(fleet, "resources", start=T0 - 1, end=T0 + 1)
    assert column(table, "time") == [
        "2025-12-31T23:59:59.999999999Z",
        "2026-01-01T00:00:00.000000000Z",
    ]


def test_only_some_measurements_keep_their_own_columns(fleet: Store) -> None:
    table = export(fleet, "resources", only=["disk", "network"])
    assert table[0] == [
        "time",
        "measurement",
        "environment",
        "worker",
        "mount",
        "interface",
        "used_bytes",
        "total_bytes",
        "used_percent",
        "receive_bytes_per_second",
        "transmit_bytes_per_second",
        "other_tags",
    ]
    assert column(table, "measurement") == ["disk", "network"]


def test_an_empty_export_is_the_header_alone(store: Store) -> None:
    assert export(store, "resources") == [RESOURCE_HEADER]
    assert export(store, "metrics") == [METRICS_HEADER]
    assert export(store, "events") == [EVENTS_HEADER]


# --- metrics and events -----------------------------------------------------------------
def metric(t: int, value: float, deployment: str = "fraud-v2", **tags: str) -> Point:
    return Point(
        "pipeline_metric",
        {"environment": "prod", "worker": "gpu-01", "deployment": deployment, "metric": "score"}
        | tags,
        {"value": value},
        t,
    )


def test_metrics_export_holds_values_and_list_metrics_with_their_step(store: Store) -> None:
    store.write(
        [
            metric(T0 + S, -1.5, execution_id="run-1"),
            metric(T0 + 2 * S, 2, deployment="a-b"),  # an int in a float field
            Point(
                "list_metric",
                {"environment": "prod", "pipeline": "train", "metric": "accuracy"},
                {"value": 0.91, "step": 3},
                T0 + 3 * S,
            ),
        ]
    )
    assert export(store, "metrics") == [
        METRICS_HEADER,
        [
            "2026-01-01T00:00:01.000000000Z",
            "pipeline_metric",
            "prod",
            "gpu-01",
            "",
            "fraud-v2",
            "score",
            "run-1",
            "-1.5",
            "",
            "",
        ],
        [
            "2026-01-01T00:00:02.000000000Z",
            "pipeline_metric",
            "prod",
            "gpu-01",
            "",
            "a-b",
            "score",
            "",
            "2.0",
            "",
            "",
        ],
        [
            "2026-01-01T00:00:03.000000000Z",
            "list_metric",
            "prod",
            "",
            "train",
            "",
            "accuracy",
            "",
            "0.91",
            "3",
            "",
        ],
    ]


def test_events_export_keeps_metadata_as_json(store: Store) -> None:
    metadata = {"epoch": 3, "note": 'line\nbreak "quoted", comma'}
    store.write(
        [
            Point(
                "event",
                {
                    "environment": "prod",
                    "worker": "gpu-01",
                    "name": "checkpoint_started",
                    "source": "trainer",
                    "pipeline": "train",
                    "execution_id": "run-9",
                },
                {"metadata": json.dumps(metadata)},
                T0 + 7 * S,
            ),
            Point(
                "event",
                {"environment": "prod", "name": "=cmd", "deployment": "d"},
                {"metadata": "=1+1"},
                T0 + 8 * S,
            ),
        ]
    )
    table = export(store, "events", where={"environment": ["prod"]})
    assert table == [
        EVENTS_HEADER,
        [
            "2026-01-01T00:00:07.000000000Z",
            "prod",
            "gpu-01",
            "checkpoint_started",
            "trainer",
            "",
            "train",
            "run-9",
            json.dumps(metadata),
            "",
        ],
        ["2026-01-01T00:00:08.000000000Z", "prod", "", "'=cmd", "", "d", "", "", "'=1+1", ""],
    ]
    assert json.loads(table[1][8]) == metadata


# --- formulas ---------------------------------------------------------------------------
DANGEROUS = ['=HYPERLINK("http://evil.example","click")', "+1", "-1", "@SUM(A1:A9)", "\tx", "\rx"]


def test_every_formula_prefix_is_neutralised_and_numbers_stay_numbers(store: Store) -> None:
    store.write(
        [metric(T0 + i * S, -1.5, deployment=name) for i, name in enumerate(DANGEROUS)]
        + [
            metric(T0 + 10 * S, -2.0, deployment="safe-name", team="=x"),
            metric(T0 + 11 * S, 0.0, deployment="-", execution_id="@"),
        ]
    )
    table = export(store, "metrics")
    assert column(table, "deployment") == [
        *("'" + name for name in DANGEROUS),
        "safe-name",
        "'-",
    ]
    assert column(table, "value") == ["-1.5"] * len(DANGEROUS) + ["-2.0", "0.0"]
    assert column(table, "execution_id")[-1] == "'@"
    assert column(table, "other_tags")[-2] == '{"team": "=x"}'  # starts with "{": inert


def test_neutralised_cells_survive_a_file_round_trip(store: Store, tmp_path: Path) -> None:
    store.write([metric(T0 + i * S, 1.0, deployment=name) for i, name in enumerate(DANGEROUS)])
    path = tmp_path / "metrics.csv"
    assert export_file(store, "metrics", T0, T0 + HOUR, path) == len(DANGEROUS)
    with path.open(newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert column(table, "deployment") == ["'" + name for name in DANGEROUS]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for cell in r)


def test_a_failed_export_leaves_no_file(tmp_path: Path) -> None:
    store = open_store("influxdb+http://127.0.0.1:9/b?timeout=1")
    path = tmp_path / "metrics.csv"
    with pytest.raises(StoreUnavailable):
        export_file(store, "metrics", T0, T0 + HOUR, path)
    store.close()
    assert list(tmp_path.iterdir()) == []


# --- memory -------------------------------------------------------------------------------
BIG_ROWS, SMALL_ROWS, WORKERS = 100_000, 20_000, 4


def big_batches(size: int = 5000) -> Iterator[list[Point]]:
    for first in range(0, BIG_ROWS, size):
        yield [
            res("cpu", f"w{i % WORKERS}", T0 + i * S, usage_percent=float(i % 100))
            for i in range(first, first + size)
        ]


@pytest.fixture(scope="module")
def big_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('big') / 'big.db'}")
    for batch in big_batches():
        store.write(batch)
    yield store
    store.close()


def test_export_memory_does_not_grow_with_the_row_count(big_sqlite: Store) -> None:
    def peak(rows: int) -> int:
        with open(os.devnull, "w", newline="") as out:
            tracemalloc.start()
            written = export_csv(big_sqlite, "resources", T0, T0 + rows * S, out)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert written == rows
        return peak

    peak(1000)  # first-call allocations (caches, imports) out of the comparison
    small, big = peak(SMALL_ROWS), peak(BIG_ROWS)
    # Five times the rows, the same peak within 64 KiB (holding the rows would add tens of MB).
    assert big <= small + 64 * 1024, (small, big)


# --- progress -------------------------------------------------------------------------------
def test_progress_line_redraws_at_most_every_interval_and_wipes_itself() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = ProgressLine(out, "exporting metrics", interval_s=0.25, clock=clock)
    progress(0)
    clock.now += 0.1
    progress(1024)  # too soon: not drawn
    clock.now += 0.2
    progress(123_456)
    progress.close()
    first = "exporting metrics: 0 rows written, 0.0 s elapsed"
    second = "exporting metrics: 123,456 rows written, 0.3 s elapsed"
    assert out.getvalue() == f"\r{first}\r{second}\r{' ' * len(second)}\r"


def test_a_progress_line_never_drawn_writes_nothing() -> None:
    out = io.StringIO()
    ProgressLine(out, "exporting metrics").close()
    assert out.getvalue() == ""


def test_rows_are_what_the_csv_module_writes_for_the_same_cells(store: Store) -> None:
    """The export formats its lines itself (for speed); every one must be what ``csv.writer``
    writes for the cells a spreadsheet reads back: quotes, commas, line breaks, formulas,
    tags without a column, unicode, floats and integers as the catalogue types them."""
    texts = [
        "plain",
        'say "hi"',
        "a,b",
        "two\r\nlines",
        "cr\ronly",
        "lf\nonly",
        "=1+2",
        "-x",
        "@me",
        "100%",
        "%s %d",
        "\tlead",
        " space",
        "é✓",
        "'quoted'",
        ",",
        '"',
        "x" * 200,
    ]
    points = []
    for i, text in enumerate(texts):
        points.append(metric(T0 + i * S, float(i) - 0.5, deployment=text, team=text))
        points.append(metric(T0 + i * S, 3, deployment="d", execution_id=text))
    store.write(points)
    text = io.StringIO()
    export_csv(store, "metrics", T0, T0 + HOUR, text)
    table = list(csv.reader(io.StringIO(text.getvalue(), newline="")))
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\r\n").writerows(table)
    assert text.getvalue() == expected.getvalue()
    shown = {t if not t.startswith(("=", "-", "@", "\t")) else "'" + t for t in texts}
    assert set(column(table, "deployment")) == shown | {"d"}
    assert {json.loads(c)["team"] for c in column(table, "other_tags") if c} == set(texts)
    assert sorted(column(table, "value"), key=float)[:3] == ["-0.5", "0.5", "1.5"]
    assert column(table, "value").count("3.0") == len(texts)
    assert len(table) == 1 + len(points)


def test_rows_at_one_time_come_in_the_catalogues_order_of_measurements(store: Store) -> None:
    """cpu, memory, disk at one time: in the order the kind lists them (not by name, which
    put disk before memory), on both stores' reading paths, with sparse fields."""
    tags = {"environment": "prod", "worker": "w1"}
    store.write(
        [
            Point("disk", tags | {"mount": "/"}, {"used_percent": 50}, T0),
            Point("memory", tags, {"used_percent": 20.5}, T0),
            Point("cpu", tags, {"usage_percent": 1.0}, T0),
            Point("cpu", tags, {"usage_percent": 2.0, "load1": 0.5}, T0 + S),
            Point("disk", tags | {"mount": "/"}, {"used_bytes": 7}, T0 + S),
        ]
    )
    table = export(store, "resources")
    assert column(table, "measurement") == ["cpu", "memory", "disk", "cpu", "disk"]
    assert column(table, "used_percent") == ["", "20.5", "50.0", "", ""]
    assert column(table, "load1") == ["", "", "", "0.5", ""]
    assert column(table, "used_bytes")[-1] == "7.0"


def test_influxdb_exports_from_its_answers_rows_without_building_points(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's fast path is the one the tests above check, on InfluxDB."""
    store.write([metric(T0 + i * S, i + 0.25) for i in range(3)])
    if not isinstance(store, RowReader):  # SQLite: its own pivot builds points
        assert column(export(store, "metrics"), "value") == ["0.25", "1.25", "2.25"]
        return

    def no_points(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export built points")

    monkeypatch.setattr(store, "stream_points", no_points)
    assert column(export(store, "metrics"), "value") == ["0.25", "1.25", "2.25"]
