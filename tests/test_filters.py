"""The executions filter: ``search_executions`` against a plain Python filter, on both stores.

Forty executions with awkward values (quotes, ``;``, InfluxQL words, regex and
LIKE characters, missing values) are written once per store. Hypothesis builds
filter trees, renders them as text (any keyword case, any spacing, extra
parentheses), and ``search_executions`` must return exactly the executions a
plain Python reading of the same tree keeps. The reference here shares no code
with :mod:`fleetgauge.read.filters`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest
from conftest import make_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgauge import catalogue
from fleetgauge.catalogue import Point
from fleetgauge.read.filters import FilterError, parse_filter
from fleetgauge.read.query import search_executions
from fleetgauge.timeutil import format_time

S = 1_000_000_000
T0 = 1_790_000_000 * S  # 2026-09-21
OPTIMIZERS = ("adam", "sgd", "it's", 'say "hi"', "DROP MEASUREMENT x;", ".*", "50%_off", "Adam")
PIPELINES = ("train", "eval", "we'ird;pipe")
TEAMS = ("vision", "nlp", "a\\b")


@dataclass
class Run:
    """One written execution, and the value of each column the filters use (absent: missing)."""

    execution_id: str
    row: dict[str, object]


def make_runs() -> list[Run]:
    runs = []
    for k in range(40):
        row: dict[str, object] = {
            "execution_id": f"run-{k:02d}",
            "pipeline": PIPELINES[k % 3],
            "status": ("succeeded", "failed", "running")[k % 5 % 3],
            "start": T0 + k * 600 * S,
            "input.lr": (0.01, 0.001, 0.0001)[k % 3],
            "input.batch": (32, 64, 128)[k // 3 % 3],
            "input.optimizer": OPTIMIZERS[k % len(OPTIMIZERS)],
        }
        if k % 4:
            row["input.flag"] = k % 8 > 3
        if row["status"] != "running":
            row["duration_s"] = float(60 + 7 * k)
            if k % 6:
                row["output.model_path"] = f"/models/{row['pipeline']}/{k}.pt"
        if k % 5 != 4:
            row["tag.team"] = TEAMS[k % 3]
        if k % 7:
            row["metric.accuracy"] = round(0.5 + (k * 37 % 50) / 100, 2)
        if k % 9:
            losses = [round(1 / (k % 11 + e + 1), 4) for e in range(3)]
            row["list.loss.min"], row["list.loss.last"] = min(losses), losses[-1]
            row["_losses"] = losses
        runs.append(Run(str(row["execution_id"]), row))
    return runs


RUNS = make_runs()


def points_of(run: Run) -> list[Point]:
    row = run.row
    tags = {
        catalogue.ENVIRONMENT: "lab",
        catalogue.WORKER: "w1",
        catalogue.PIPELINE: str(row["pipeline"]),
        catalogue.EXECUTION_ID: run.execution_id,
    }
    start = int(row["start"])  # type: ignore[call-overload]
    inputs = {k[len("input.") :]: v for k, v in row.items() if k.startswith("input.")}
    points = [Point("execution", tags, {"inputs": json.dumps(inputs)}, start)]
    if "duration_s" in row:
        end = start + int(float(row["duration_s"]) * S)  # type: ignore[arg-type]
        fields = {"status": str(row["status"])}
        if "output.model_path" in row:
            fields["outputs"] = json.dumps({"model_path": row["output.model_path"]})
        points.append(Point("execution_end", tags, fields, end))
    if "tag.team" in row:
        written = {"team": "changed-later", "gone": "x"}
        points.append(Point("execution_tag", tags, {"tags": json.dumps(written)}, start + 1))
        latest = {"team": row["tag.team"], "gone": None}
        points.append(Point("execution_tag", tags, {"tags": json.dumps(latest)}, start + 2))
    if "metric.accuracy" in row:
        metric = {**tags, catalogue.METRIC: "accuracy"}
        points.append(
            Point("pipeline_metric", metric, {"value": row["metric.accuracy"]}, start + S)
        )
    for step, value in enumerate(row.get("_losses") or []):  # type: ignore[arg-type]
        metric = {**tags, catalogue.METRIC: "loss"}
        fields = {"value": value, "step": step}
        points.append(Point("list_metric", metric, fields, start + (step + 2) * S))
    return points


@pytest.fixture(scope="module", params=["sqlite", "influxdb"])
def runs_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    store = make_store(request.param, request, tmp_path_factory.mktemp("filters"))
    try:
        store.write([p for run in RUNS for p in points_of(run)])
        return store.url
    finally:
        store.close()


WINDOW = {"start": format_time(T0 - S), "end": format_time(T0 + 40 * 600 * S)}


# --- the reference: a plain reading of a tree of tuples ------------------------------
def like_items(pattern: str) -> list[tuple[str, str]]:
    """A LIKE pattern's items: ("%", ""), ("_", ""), or ("=", a character); a backslash
    makes the next character plain (a last one stands for itself)."""
    items, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            items.append(("=", pattern[i + 1]))
            i += 2
            continue
        items.append((c, "") if c in "%_" else ("=", c))
        i += 1
    return items


def like(text: str, pattern: str) -> bool:
    """SQL LIKE by dynamic programming over the text and the pattern's items."""
    items = like_items(pattern)
    ok = [[False] * (len(items) + 1) for _ in range(len(text) + 1)]
    ok[0][0] = True
    for j, (kind, _) in enumerate(items, 1):
        ok[0][j] = ok[0][j - 1] and kind == "%"
    for i, c in enumerate(text, 1):
        for j, (kind, char) in enumerate(items, 1):
            if kind == "%":
                ok[i][j] = ok[i][j - 1] or ok[i - 1][j]
            else:
                ok[i][j] = ok[i - 1][j - 1] and (kind == "_" or char == c)
    return ok[len(text)][len(items)]


def same_kind(a: object, b: object) -> bool:
    def kind(v: object) -> str:
        return "bool" if isinstance(v, bool) else "num" if isinstance(v, int | float) else "text"

    return kind(a) == kind(b)


def holds(tree: tuple, row: dict[str, object]) -> bool:
    op = tree[0]
    if op == "and":
        return all(holds(t, row) for t in tree[1])
    if op == "or":
        return any(holds(t, row) for t in tree[1])
    column, wanted = tree[1], tree[2]
    if column not in row:
        return op == "=" and wanted is None
    got = row[column]
    if wanted is None:
        return op == "!="
    if op in ("in", "not in"):
        inside = any(same_kind(got, w) and got == w for w in wanted)
        return inside == (op == "in")
    if op in ("like", "ilike"):
        if not isinstance(got, str):
            return False
        return like(got.lower(), wanted.lower()) if op == "ilike" else like(got, wanted)
    if not same_kind(got, wanted):
        return op == "!="
    if isinstance(got, bool) and op not in ("=", "!="):
        return False
    return {
        "=": got == wanted,
        "!=": got != wanted,
        "<": got < wanted,
        "<=": got <= wanted,
        ">": got > wanted,
        ">=": got >= wanted,
    }[op]


# --- filters as text --------------------------------------------------------------------
def like_text(text: str) -> str:
    """``text`` as a LIKE pattern matching only itself."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def quote(text: str, mark: str) -> str:
    return mark + text.replace("\\", "\\\\").replace(mark, "\\" + mark) + mark


def literal(value: object, mark: str, column: str) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if column == "start":
        return quote(format_time(int(value)), mark)  # type: ignore[call-overload]
    if isinstance(value, int | float):
        return repr(value)
    return quote(str(value), mark)


VALUES: dict[str, list[object]] = {}
for run in RUNS:
    for column, value in run.row.items():
        if not column.startswith("_"):
            VALUES.setdefault(column, []).append(value)
VALUES["input.optimizer"] += ["ADAM", "", "drop"]
VALUES["metric.accuracy"] += [0.75, 2, -1]
COLUMNS = sorted(c for c in VALUES if c != "execution_id")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "ilike")


@st.composite
def comparisons(draw: st.DrawFn) -> tuple:
    column = draw(st.sampled_from(COLUMNS))
    op = draw(st.sampled_from(OPERATORS))
    pool = VALUES[column]
    if op in ("in", "not in"):
        return (op, column, tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))))
    texts = [v for v in pool if isinstance(v, str)]
    if op in ("like", "ilike") and column != "start" and texts:
        base = draw(st.sampled_from(texts))
        cut = draw(st.integers(0, len(base)))
        head, tail = like_text(base[:cut]), like_text(base[cut:])
        pattern = draw(
            st.sampled_from([head + tail, head + "%", "%" + tail, "_" + like_text(base[1:])])
        )
        return (op, column, pattern)
    if op in ("like", "ilike"):
        op = "="
    value = draw(st.one_of(st.sampled_from(pool), st.just(None))) if op in ("=", "!=") else None
    if value is None and op not in ("=", "!="):
        value = draw(st.sampled_from([v for v in pool if v is not None]))
    return (op, column, value)


trees = st.recursive(
    comparisons(),
    lambda inner: st.tuples(
        st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def rendered(draw: st.DrawFn, tree: tuple) -> str:
    space = draw(st.sampled_from([" ", "  ", "\t", " \n "]))
    op = tree[0]
    if op in ("and", "or"):
        word = draw(st.sampled_from([op, op.upper(), op.capitalize()]))
        parts = []
        for sub in tree[1]:
            text = draw(rendered(sub))
            wrap = sub[0] in ("and", "or") or draw(st.booleans())
            parts.append(f"({text})" if wrap else text)
        return f"{space}{word}{space}".join(parts)
    column, value = tree[1], tree[2]
    mark = draw(st.sampled_from(['"', "'"]))
    shown = column
    if column.startswith("input.") and draw(st.booleans()):
        shown = "input.`" + column[len("input.") :] + "`"
    if op in ("in", "not in"):
        items = ", ".join(literal(v, mark, column) for v in value)
        word = op if draw(st.booleans()) else op.upper()
        return f"{shown} {word} ({items})"
    gap = draw(st.sampled_from(["", " "])) if op not in ("like", "ilike") else " "
    return f"{shown}{gap}{op}{gap}{literal(value, mark, column)}"


@st.composite
def filters(draw: st.DrawFn) -> tuple[tuple, str]:
    tree = draw(trees)
    return tree, draw(rendered(tree))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=filters())
def test_search_matches_a_plain_python_filter(runs_store: str, case: tuple[tuple, str]) -> None:
    tree, text = case
    found = search_executions(filter=text, store=runs_store, **WINDOW)
    expected = sorted((r.execution_id for r in RUNS if holds(tree, r.row)), reverse=True)
    assert [e["execution_id"] for e in found] == expected, text


def test_every_kind_of_value_reads_back(runs_store: str) -> None:
    """The fixture itself: what the filters compare is what was written."""
    by_id = {e["execution_id"]: e for e in search_executions(store=runs_store, **WINDOW)}
    assert len(by_id) == 40
    for run in RUNS:
        e = by_id[run.execution_id]
        assert e["tags"] == ({"team": run.row["tag.team"]} if "tag.team" in run.row else {})
        assert e["inputs"]["optimizer"] == run.row["input.optimizer"]


def where(**wanted: object) -> list[str]:
    """Ids of the runs whose columns have the ``wanted`` values (``input_batch`` for
    ``input.batch``)."""
    columns = {k.replace("_", ".", 1): v for k, v in wanted.items()}
    return [r.execution_id for r in RUNS if all(r.row.get(k) == v for k, v in columns.items())]


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('input.optimizer = "DROP MEASUREMENT x;"', where(input_optimizer="DROP MEASUREMENT x;")),
        ("input.optimizer = 'it\\'s'", where(input_optimizer="it's")),
        ("input.optimizer = 'say \"hi\"'", where(input_optimizer='say "hi"')),
        ("pipeline = \"train' OR '1'='1\"", []),
        ('input.optimizer = ".*"', where(input_optimizer=".*")),
        ('input.optimizer like ".*"', where(input_optimizer=".*")),
        ('input.optimizer like "50\\%%"', where(input_optimizer="50%_off")),
        ('input.optimizer like "50%\\_%"', where(input_optimizer="50%_off")),
        (
            'input.optimizer ilike "adam"',
            where(input_optimizer="adam") + where(input_optimizer="Adam"),
        ),
        (
            'pipeline = "we\'ird;pipe" and input.batch = 32',
            where(pipeline="we'ird;pipe", input_batch=32),
        ),
        ('tag.team = "a\\\\b" and input.batch = 32', where(tag_team="a\\b", input_batch=32)),
        (
            "tag.gone = null and input.batch = 128 and pipeline = 'train'",
            where(input_batch=128, pipeline="train"),
        ),
    ],
)
def test_injection_shaped_filters_match_literally(
    runs_store: str, text: str, ids: list[str]
) -> None:
    found = [e["execution_id"] for e in search_executions(filter=text, store=runs_store, **WINDOW)]
    assert sorted(found) == sorted(ids), text
    assert ids or "OR" in text  # every case but the injection finds something


def test_sql_quote_doubling_is_not_an_escape() -> None:
    with pytest.raises(FilterError, match="bad filter at column 23: expected 'and'"):
        parse_filter("input.optimizer = 'it''s'")


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("input.batch_size = ", 20, "expected a value"),
        ("input.batch_size >> 3", 19, "expected a value"),
        ("status = 'failed' and", 22, "expected a column"),
        ("foo.bar = 1", 1, "unknown column 'foo.bar'"),
        ("(status = 'failed'", 19, "expected ')' closing the '(' at column 1"),
        ('status = "failed', 10, "unexpected character '\"'"),
        ("input.optimizer = /adam/", 19, "unexpected character '/'"),
        ("metric.accuracy > 0.9; drop measurement x", 22, "unexpected character ';'"),
        ("list.loss.median < 1", 1, "unknown column 'list.loss.median'"),
        ("start > 'yesterday'", 9, "'yesterday' is not a time"),
        ("status = 'failed' status = 'running'", 19, "expected 'and', 'or'"),
        ("input.x like 3", 14, "expected quoted text after 'like'"),
        ("__import__('os').system('id')", 1, "unknown column '__import__'"),
        ("status('os')", 7, "expected an operator"),
        ("", 1, "is empty"),
    ],
)
def test_a_bad_filter_names_the_column_where_it_fails(text: str, column: int, problem: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert f"bad filter at column {column}: " in message and problem in message, message
    lines = message.splitlines()
    assert lines[-1].index("^") - 2 == column - 1  # the caret under the spot


def test_the_filter_is_checked_before_the_store_is_opened(tmp_path) -> None:
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(FilterError, match="column 8"):
        search_executions(filter="status !", store=missing)
    assert not (tmp_path / "none.db").exists()


def test_export_executions_takes_the_filter(runs_store: str, tmp_path) -> None:
    out = tmp_path / "runs.csv"
    command = [sys.executable, "-m", "fleetgauge", "export", "executions", "--store", runs_store]
    command += ["--start", WINDOW["start"], "--end", WINDOW["end"], "--out", str(out)]
    done = subprocess.run(
        [*command, "--filter", "input.batch = 128 and metric.accuracy > 0.9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    expected = [
        r.execution_id
        for r in RUNS
        if r.row["input.batch"] == 128 and float(r.row.get("metric.accuracy", 0)) > 0.9  # type: ignore[arg-type]
    ]
    assert expected
    rows = out.read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == sorted(expected)
    bad = subprocess.run(
        [*command, "--filter", "input.batch = = 1"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "bad filter at column 15: expected a value" in bad.stderr
