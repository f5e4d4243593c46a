r"""The filter grammar of executions: one parser for the SDK, the CLI and the page.

A filter is comparisons joined by ``and`` and ``or``, with parentheses::

    input.batch_size = 128 and metric.accuracy > 0.9
    (status = "failed" or duration_s > 3600) and tag.team in ("vision", "nlp")
    list.test-loss.min < 0.2 and output.model_path like "%/best/%"
    start >= "2026-12-01" and pipeline != "train"

Columns are those of the executions table (:func:`fleetgauge.read.executions.check_column`):
``input.NAME``, ``output.NAME``, ``tag.NAME``, ``metric.NAME``, ``list.NAME.MODE``,
``resource.NAME``, ``execution_id``, ``pipeline``, ``worker``, ``status``, ``start``,
``end``, ``duration_s``, ``environment``. A name with characters other than letters,
digits, ``_``, ``-``, ``:`` and ``/`` is written in backquotes: ``metric.`val acc```.
Operators: ``= != < <= > >=``, ``in (...)``, ``not in (...)``, ``like`` and ``ilike``
(``%`` any text, ``_`` one character, ``\%`` and ``\_`` themselves; ``ilike``
ignores case). Values: numbers, text in single or double quotes (``\"``, ``\'`` and
``\\`` inside stand for a quote and a backslash), ``true``, ``false``, ``null``.
``start`` and ``end`` compare with times (ISO 8601 text or epoch seconds). Keywords
are case-insensitive; ``and`` binds tighter than ``or``.

Meaning, row by row: a comparison with a value the execution lacks is false
(``!=`` too; ``= null`` is true exactly when it lacks it); a number never equals
text (``!=`` is true, ordering false), true/false compare only with true/false.

The filter is parsed into a tree and evaluated in Python over the executions read
from the store, never turned into Python or into a store query, so whatever a
filter holds is only ever compared as a value. A filter that does not parse raises
:class:`FilterError`, which says at which column (from 1) and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import ge, gt, le, lt
from typing import Any

from fleetgauge.read.executions import (
    ExecutionRecord,
    add_metrics,
    cell_getter,
    check_column,
    read_executions,
    summaries_since,
)
from fleetgauge.stores import StoreReader
from fleetgauge.timeutil import NS_PER_S, parse_time

__all__ = [
    "FilterError",
    "Comparison",
    "Both",
    "Either",
    "parse_filter",
    "compile_filter",
    "value_of",
    "read_matching",
    "read_candidates",
    "MAX_FILTER_LENGTH",
]

MAX_FILTER_LENGTH = 4096
"""Longest filter taken (characters); longer ones are refused, not cut."""
_MAX_DEPTH = 32
_OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "like", "ilike")
_KEYWORDS = {"and", "or", "in", "not", "like", "ilike", "true", "false", "null"}
_TIME_COLUMNS = ("start", "end")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w`]))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>(?:[A-Za-z_][\w\-:/]*|`(?:[^`\\]|\\.)+`)(?:\.(?:[\w\-:/]+|`(?:[^`\\]|\\.)+`))*)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE | re.DOTALL,
)
_UNQUOTE = re.compile(r"\\([\\'\"`])")  # \\ \' \" \` (other backslashes stay, for LIKE)


class FilterError(ValueError):
    """A filter that does not parse: the message names the column (from 1) and what
    was expected, and shows the filter with a caret under the spot."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        self.text, self.position, self.problem = text, position, problem
        shown = text if len(text) <= 200 else text[: min(len(text), position + 40)]
        line = shown.replace("\n", " ").replace("\t", " ")
        super().__init__(
            f"bad filter at column {position + 1}: {problem}\n  {line}\n  {' ' * position}^"
        )


@dataclass(frozen=True)
class Comparison:
    """``column operator value`` (``value`` a tuple for ``in`` and ``not in``)."""

    column: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Both:
    """Every part holds (``and``)."""

    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Either:
    """Some part holds (``or``)."""

    parts: tuple[Any, ...]


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int
    value: Any = None


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens of ``text``, read as the parser asks for them: the first problem in
    reading order is the one reported."""
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise FilterError(text, i, f"unexpected character {text[i]!r}")
        kind, raw = m.lastgroup or "", m.group()
        if kind == "string":
            yield _Token("value", raw, i, _UNQUOTE.sub(r"\1", raw[1:-1]))
        elif kind == "number":
            number = float(raw)
            if not math.isfinite(number):
                raise FilterError(text, i, f"{raw} is not a finite number")
            yield _Token("value", raw, i, number)
        elif kind == "name" and raw.lower() in _KEYWORDS:
            word = raw.lower()
            if word in ("true", "false", "null"):
                yield _Token("value", raw, i, {"true": True, "false": False}.get(word))
            else:
                yield _Token("keyword", word, i)
        elif kind == "op":
            yield _Token("op", {"==": "=", "<>": "!="}.get(raw, raw), i)
        elif kind != "space":
            yield _Token(kind, raw, i)
        i = m.end()
    while True:
        yield _Token("end", "", len(text))


def _column(token: _Token, text: str) -> str:
    """The column a name token spells: backquotes dropped, checked against the table's."""
    parts = re.findall(r"`((?:[^`\\]|\\.)+)`|([^.`]+)", token.text)
    column = ".".join(_UNQUOTE.sub(r"\1", quoted) if quoted else bare for quoted, bare in parts)
    try:
        return check_column(column)
    except ValueError as e:
        raise FilterError(text, token.position, str(e)) from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.next = next(self.tokens)
        self.depth = 0

    def peek(self) -> _Token:
        return self.next

    def take(self) -> _Token:
        token, self.next = self.next, next(self.tokens)
        return token

    def fail(self, expected: str, token: _Token | None = None) -> FilterError:
        token = token or self.peek()
        got = "the end of the filter" if token.kind == "end" else repr(token.text)
        return FilterError(self.text, token.position, f"expected {expected}, got {got}")

    def accept(self, kind: str, text: str) -> bool:
        """Take the next token when it is ``text`` of ``kind``; say whether it was."""
        token = self.peek()
        if token.kind == kind and token.text == text:
            self.take()
            return True
        return False

    def keyword(self, word: str) -> bool:
        return self.accept("keyword", word)

    def punct(self, mark: str) -> bool:
        return self.accept("punct", mark)

    def parse(self) -> Any:
        tree = self.either()
        if self.peek().kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return tree

    def either(self) -> Any:
        parts = [self.both()]
        while self.keyword("or"):
            parts.append(self.both())
        return parts[0] if len(parts) == 1 else Either(tuple(parts))

    def both(self) -> Any:
        parts = [self.atom()]
        while self.keyword("and"):
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else Both(tuple(parts))

    def atom(self) -> Any:
        opening = self.peek()
        if self.punct("("):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise FilterError(self.text, opening.position, f"nests deeper than {_MAX_DEPTH}")
            tree = self.either()
            if not self.punct(")"):
                raise self.fail("')' closing the '(' at column " + str(opening.position + 1))
            self.depth -= 1
            return tree
        token = self.take()
        if token.kind != "name":
            raise self.fail("a column such as input.NAME, metric.NAME or status", token)
        column = _column(token, self.text)
        op = self.peek()
        if op.kind == "op":
            self.take()
            return Comparison(column, op.text, self.value(column))
        if self.keyword("not"):
            if not self.keyword("in"):
                raise self.fail("'in' after 'not'")
            return Comparison(column, "not in", self.values(column))
        if self.keyword("in"):
            return Comparison(column, "in", self.values(column))
        for word in ("like", "ilike"):
            if self.keyword(word):
                pattern = self.peek()
                value = self.value(column)
                if not isinstance(value, str):
                    raise self.fail(f"quoted text after '{word}'", pattern)
                return Comparison(column, word, value)
        raise self.fail("an operator (= != < <= > >= in, not in, like, ilike)")

    def values(self, column: str) -> tuple[Any, ...]:
        if not self.punct("("):
            raise self.fail("'(' starting the list of values")
        found = [self.value(column)]
        while self.punct(","):
            found.append(self.value(column))
        if not self.punct(")"):
            raise self.fail("',' or ')' in the list of values")
        return tuple(found)

    def value(self, column: str) -> Any:
        token = self.take()
        if token.kind != "value":
            raise self.fail("a value (a number, quoted text, true, false or null)", token)
        if column in _TIME_COLUMNS and token.value is not None:
            return self.time(token)
        return token.value

    def time(self, token: _Token) -> int:
        value = token.value
        if isinstance(value, bool):
            raise FilterError(self.text, token.position, f"{token.text} is not a time")
        if isinstance(value, float):
            return round(value * NS_PER_S)
        try:
            return parse_time(value)
        except ValueError as e:
            raise FilterError(self.text, token.position, f"{value!r} is not a time: {e}") from None


def parse_filter(text: str) -> Any:
    """The tree of ``text`` (:class:`Comparison`, :class:`Both`, :class:`Either`);
    :class:`FilterError` saying where it fails; TypeError when it is not text."""
    if not isinstance(text, str):
        raise TypeError(f"a filter is text, got {type(text).__name__}")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(
            text, MAX_FILTER_LENGTH, f"is {len(text)} characters long (limit {MAX_FILTER_LENGTH})"
        )
    if not text.strip():
        raise FilterError(text, 0, "is empty: write a comparison such as status = 'failed'")
    return _Parser(text).parse()


def value_of(record: ExecutionRecord, column: str) -> Any:
    """What a filter compares: the table cell, with ``start``/``end`` in nanoseconds."""
    return _getter(column)(record)


def _getter(column: str) -> Callable[[ExecutionRecord], Any]:
    if column == "start":
        return lambda r: r.start_ns
    if column == "end":
        return lambda r: r.end_ns
    return cell_getter(column)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "text"


def _like(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """A LIKE pattern as a regular expression: ``%``, ``_``, and a backslash that makes
    the next character plain; every other character stands for itself."""
    parts, escaped = [], False
    for c in pattern:
        if escaped or c not in "%_\\":
            parts.append(re.escape(c))
            escaped = False
        elif c == "\\":
            escaped = True
        else:
            parts.append("." if c == "_" else ".*")
    if escaped:
        parts.append(re.escape("\\"))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


_ORDER = {"<": lt, "<=": le, ">": gt, ">=": ge}


def _compare(operator: str, given: Any, wanted: Any) -> bool:
    if wanted is None:
        return (given is None) == (operator == "=") if operator in ("=", "!=") else False
    if given is None:
        return False
    if _kind(given) != _kind(wanted):
        return operator == "!="
    if operator == "=":
        return bool(given == wanted)
    if operator == "!=":
        return bool(given != wanted)
    if _kind(given) == "bool":
        return False
    if operator == "<":
        return bool(given < wanted)
    if operator == "<=":
        return bool(given <= wanted)
    if operator == ">":
        return bool(given > wanted)
    return bool(given >= wanted)


def _predicate(tree: Any) -> Callable[[ExecutionRecord], bool]:
    if isinstance(tree, Both):
        parts = [_predicate(p) for p in tree.parts]
        return lambda r: all(p(r) for p in parts)
    if isinstance(tree, Either):
        parts = [_predicate(p) for p in tree.parts]
        return lambda r: any(p(r) for p in parts)
    operator, wanted = tree.operator, tree.value
    get = _getter(tree.column)
    if operator in ("like", "ilike"):
        pattern = _like(wanted, operator == "ilike")
        return lambda r: isinstance(v := get(r), str) and bool(pattern.fullmatch(v))
    if operator in ("in", "not in"):
        inside = operator == "in"

        def among(r: ExecutionRecord) -> bool:
            given = get(r)
            if given is None:
                return False
            return any(_compare("=", given, w) for w in wanted) == inside

        return among
    order = _ORDER.get(operator)
    if order is not None and _kind(wanted) == "number":  # the usual metric test, quicker

        def number(r: ExecutionRecord) -> bool:
            given = get(r)
            return type(given) in (int, float) and order(given, wanted)  # not bool, not None

        return number
    return lambda r: _compare(operator, get(r), wanted)


def compile_filter(text: str) -> Callable[[ExecutionRecord], bool]:
    """A test of one execution for the filter ``text`` (see the module docstring)."""
    return _predicate(parse_filter(text))


def columns_in(tree: Any) -> set[str]:
    """The columns a parsed filter compares."""
    if isinstance(tree, Both | Either):
        return set().union(*(columns_in(p) for p in tree.parts))
    return {tree.column}


def read_matching(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    text: str | None,
    environment: Sequence[str] | None = None,
    pipeline: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
    limit: int | None = None,
    with_metrics: bool = True,
) -> list[ExecutionRecord]:
    """Executions started in [start, end) that pass the filter ``text``, newest first, at
    most ``limit``; the filter is parsed before anything is read.

    Only the metrics the filter names are read for every execution in the range; the
    rest, for those that pass (none with ``with_metrics=False``: see
    :func:`~fleetgauge.read.executions.add_metrics`).
    """
    if text is None or not text.strip():
        return read_executions(
            store, start_ns, end_ns, environment, pipeline, status, limit, with_metrics
        )
    records, test = read_candidates(store, start_ns, end_ns, text, environment, pipeline, status)
    records = [r for r in records if test(r)]
    if limit is not None:
        records = records[:limit]
    if with_metrics:
        add_metrics(store, records)
    return records


def read_candidates(
    store: StoreReader,
    start_ns: int,
    end_ns: int,
    text: str | None,
    environment: Sequence[str] | None = None,
    pipeline: Sequence[str] | None = None,
    status: Sequence[str] | None = None,
) -> tuple[list[ExecutionRecord], Callable[[ExecutionRecord], bool]]:
    """Every execution started in [start, end) (newest first), with what the filter
    ``text`` compares read, and the filter's test (one that passes all for no filter);
    for a caller that wants both (the page lists the pipelines of them all)."""
    if text is None or not text.strip():
        records = read_executions(
            store, start_ns, end_ns, environment, pipeline, status, with_metrics=False
        )
        return records, lambda r: True
    tree = parse_filter(text)
    used = columns_in(tree)
    names = {c[len("metric.") :] for c in used if c.startswith("metric.")}
    names |= {c[len("list.") :].rsplit(".", 1)[0] for c in used if c.startswith("list.")}
    by_resources = any(c.startswith("resource.") for c in used)
    with ThreadPoolExecutor(1) as pool:  # the named metrics' summaries beside the records
        early = None
        if names and store.concurrent_reads:
            early = pool.submit(summaries_since, store, start_ns, environment, names)
        records = read_executions(
            store, start_ns, end_ns, environment, pipeline, status, with_metrics=False
        )
        if names or by_resources:
            rows = early.result() if early is not None else None
            add_metrics(store, records, names, resources=by_resources, early=rows)
    return records, _predicate(tree)
