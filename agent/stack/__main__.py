"""``python -m fleetgauge.agent.stack [--check] [--root DIR]``: write or check the stack files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from fleetgauge.agent.stack import generated_files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fleetgauge.agent.stack",
        description="Write the Grafana dashboards and Prometheus rules generated from the"
        " data model (fleetgauge.catalogue), or check that the committed ones are up to date.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[2],
        help="repository root to write under (default: this checkout)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming each file that is missing or differs",
    )
    args = parser.parse_args(argv)
    try:
        files = generated_files()
    except ModuleNotFoundError as e:  # a repository tool: its YAML writer comes with the tests
        hint = f"python -m fleetgauge.agent.stack needs {e.name}: pip install -e '.[test]'"
        print(hint, file=sys.stderr)
        return 2
    stale = []
    for relative, text in sorted(files.items()):
        path = args.root / relative
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(relative)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "out of date (run python -m fleetgauge.agent.stack)" if args.check else "written"
    for relative in stale:
        print(f"{relative}: {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
