"""The yardstick for ``fleetgauge export resources``: the store's own CSV, with nothing on top.

Run as a child process by ``bench_fleet`` so its wall time and peak RSS are its own:

    python -m bench.export_reference influxdb BASE_URL DATABASE START_NS END_NS OUT
    python -m bench.export_reference sqlite PATH START_NS END_NS OUT

- influxdb: influxd writes the CSV itself (``/query`` with ``Accept: application/csv``,
  chunked, ``SELECT *`` of every resource measurement), streamed to ``OUT``.
- sqlite: ``csv.writer`` over the stored rows of every resource series (one row
  per series, time and field: no pivot, no names, no formula guard).

Prints the number of data rows written.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
import urllib.parse
import urllib.request

from fleetgauge import catalogue

MEASUREMENTS = [
    catalogue.CPU.name,
    catalogue.MEMORY.name,
    catalogue.DISK.name,
    catalogue.NETWORK.name,
    catalogue.GPU_MEASUREMENT.name,
]


def influxdb(base_url: str, database: str, start_ns: int, end_ns: int, out: str) -> int:
    names = ", ".join(f'"{m}"' for m in MEASUREMENTS)
    query = urllib.parse.urlencode(
        {
            "db": database,
            "q": f"SELECT * FROM {names} WHERE time >= {start_ns} AND time < {end_ns}",
            "chunked": "true",
            "chunk_size": "10000",
            "epoch": "ns",
        }
    )
    request = urllib.request.Request(
        f"{base_url}/query?{query}", headers={"Accept": "application/csv"}
    )
    lines = 0
    with urllib.request.urlopen(request, timeout=600) as answer, open(out, "wb") as f:
        while chunk := answer.read(1 << 16):
            f.write(chunk)
            lines += chunk.count(b"\n")
    # Each chunk repeats the header line; count data rows only.
    with open(out, "rb") as f:
        headers = sum(1 for text in f if text.startswith(b"name,tags,time"))
    return lines - headers


def sqlite(path: str, start_ns: int, end_ns: int, out: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    marks = ", ".join("?" for _ in MEASUREMENTS)
    query = f"SELECT id FROM series WHERE measurement IN ({marks})"
    series = [sid for (sid,) in db.execute(query, MEASUREMENTS)]
    rows = 0
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["series_id", "time", "field_id", "value"])
        for sid in series:
            cursor = db.execute(
                "SELECT series_id, time, field_id, value FROM sample"
                " WHERE series_id = ? AND time >= ? AND time < ?",
                (sid, start_ns, end_ns),
            )
            while batch := cursor.fetchmany(10_000):
                writer.writerows(batch)
                rows += len(batch)
    return rows


def main(argv: list[str]) -> int:
    if argv[:1] == ["influxdb"] and len(argv) == 6:
        print(influxdb(argv[1], argv[2], int(argv[3]), int(argv[4]), argv[5]))
        return 0
    if argv[:1] == ["sqlite"] and len(argv) == 5:
        print(sqlite(argv[1], int(argv[2]), int(argv[3]), argv[4]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
