"""One row per figure, the same shape for every benchmark, and the table they make together.

Every benchmark saves its figures to ``bench/out/NAME.figures.json`` next to its
own markdown report; ``python -m bench.suite`` (``scripts/bench``) gathers them
into one table (figure, value, reference measured in the same run, ratio,
target, pass/fail) and writes it to ``bench/RESULTS.md`` with the machine.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.bench_store import OUT_DIR, REPO, machine, markdown_report, markdown_table, text_table

__all__ = ["Figure", "save", "load", "rows", "report", "HEADERS"]

HEADERS = ("figure", "value", "reference (same run)", "ratio", "target", "result")


@dataclass(frozen=True)
class Figure:
    """A measured value beside its reference; ``passed`` is None when no target applies."""

    name: str
    value: str
    reference: str
    ratio: float | None
    target: str
    passed: bool | None

    @property
    def result(self) -> str:
        return {True: "PASS", False: "FAIL", None: "-"}[self.passed]


def path_of(bench: str) -> Path:
    return OUT_DIR / f"{bench}.figures.json"


def save(bench: str, figures: Sequence[Figure]) -> Path:
    """Write one benchmark's figures (replacing those of its last run)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = path_of(bench)
    path.write_text(json.dumps([asdict(f) for f in figures], indent=1) + "\n")
    return path


def load(bench: str) -> list[Figure]:
    """The figures a benchmark saved; none when it did not get that far."""
    path = path_of(bench)
    if not path.exists():
        return []
    return [Figure(**item) for item in json.loads(path.read_text())]


def rows(figures: Sequence[Figure]) -> list[list[str]]:
    return [
        [
            f.name,
            f.value,
            f.reference,
            "-" if f.ratio is None else f"{f.ratio:.3f}" if f.ratio < 10 else f"{f.ratio:.1f}",
            f.target,
            f.result,
        ]
        for f in figures
    ]


def text(figures: Sequence[Figure]) -> str:
    return text_table(HEADERS, rows(figures))


def markdown(figures: Sequence[Figure]) -> list[str]:
    return markdown_table(HEADERS, rows(figures))


def report(
    path: Path, title: str, command: str, figures: Sequence[Figure], notes: Sequence[str]
) -> int:
    """Print the figures' table and the notes, write both (with the machine) as markdown to
    ``path``; the exit status: 0 when no target was missed, 1 otherwise."""
    table = rows(figures)
    print(text_table(HEADERS, table))
    print()
    print("\n".join(notes))
    path.write_text(markdown_report(title, command, "", HEADERS, table, list(notes), machine()))
    print(f"\nwritten to {path.relative_to(REPO)}")
    return 0 if all(f.passed is not False for f in figures) else 1
