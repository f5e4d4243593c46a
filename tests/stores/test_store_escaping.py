"""Names round-trip exactly and are only ever data, on SQLite and the real InfluxDB.

Worker, deployment and metric names and extra tags with spaces, commas, ``=``,
quotes, backslashes, newlines and unicode come back as written; names built to
break InfluxQL or SQL select nothing but themselves.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetgauge.catalogue import CPU, RESERVED_TAG_KEYS, Point
from fleetgauge.stores import Store
from fleetgauge.stores.influx_text import decode_name, encode_name
from fleetgauge.validation import MAX_NAME_LENGTH

S = 1_000_000_000
T0 = 1_767_225_600 * S

HOSTILE = [
    "a' OR '1'='1",
    "/.*/",
    '"; DROP TABLE sample; --',
    "x'); DELETE FROM series; --",
    "w\\",
    "\\'",
    "a\\,b=c d",
    "line\nbreak\r\ttab",
    "100% \\ %41 %%",
    "名前 🚀 é",
    "=cmd|' /C calc'!A0",
]

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
) | st.sampled_from(HOSTILE + [" ", ",", "=", '"', "'", "\\", "\n"])

_clock = itertools.count()


def next_time() -> int:
    return T0 + next(_clock) * 10 * S


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(worker=names, environment=names, tag_key=names, tag_value=names)
def test_resource_names_round_trip(
    store: Store, worker: str, environment: str, tag_key: str, tag_value: str
) -> None:
    if tag_key in ("environment", "worker", *RESERVED_TAG_KEYS, *CPU.field_names):
        tag_key += "_x"  # a tag may not reuse a field name or a reserved key
    t = next_time()
    tags = {"environment": environment, "worker": worker, tag_key: tag_value}
    store.write([Point("cpu", tags, {"usage_percent": 42.0}, t)])
    store.write([Point("cpu", {**tags, "worker": worker + "-other"}, {"usage_percent": 1.0}, t)])
    assert store.tag_values(
        "worker", t, t + S, ["cpu"], where={"environment": [environment]}
    ) == sorted([worker, worker + "-other"])
    (p,) = store.stream_points("cpu", t, t + S, where={"worker": [worker]})
    assert dict(p.tags) == tags and p.fields == {"usage_percent": 42.0}
    b = store.read_buckets(
        "cpu",
        ["usage_percent"],
        t,
        t + S,
        1,
        where={"worker": [worker], tag_key: [tag_value]},
        group_by=["worker"],
    )
    assert [(s.tags, s.fields["usage_percent"].mean) for s in b.series] == [
        ({"worker": worker}, [42.0])
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(deployment=names, metric=names)
def test_pipeline_names_round_trip(store: Store, deployment: str, metric: str) -> None:
    t = next_time()
    tags = {"environment": "prod", "deployment": deployment, "metric": metric}
    store.write([Point("pipeline_metric", tags, {"value": 0.5}, t)])
    assert store.tag_values("deployment", t, t + S, ["pipeline_metric"]) == [deployment]
    assert store.tag_values(
        "metric", t, t + S, ["pipeline_metric"], where={"deployment": [deployment]}
    ) == [metric]
    got = [dict(p.tags) for p in store.stream_points("pipeline_metric", t, t + S)]
    assert got == [tags]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_name_selects_only_itself(store: Store, hostile: str) -> None:
    t = next_time()
    store.write(
        [
            Point("cpu", {"environment": "prod", "worker": w}, {"usage_percent": v}, t)
            for w, v in (("a", 1.0), ("b", 2.0), (hostile, 3.0), ("1", 4.0))
        ]
    )
    where = {"worker": [hostile]}
    assert [p.tags["worker"] for p in store.stream_points("cpu", t, t + S, where=where)] == [
        hostile
    ]
    assert store.tag_values("worker", t, t + S, ["cpu"], where=where) == [hostile]
    b = store.read_buckets("cpu", ["usage_percent"], t, t + S, 1, where=where, group_by=["worker"])
    assert [s.fields["usage_percent"].mean for s in b.series] == [[3.0]]
    assert store.tag_values("worker", t, t + S, ["cpu"], where={"environment": [hostile]}) == []
    # the store still holds everything: nothing was dropped or altered by the hostile name
    assert len(list(store.stream_points("cpu", t, t + S))) == 4


@given(names)
def test_influx_name_code_is_reversible_and_line_safe(name: str) -> None:
    stored = encode_name(name)
    assert decode_name(stored) == name
    assert "\n" not in stored and "\\" not in stored and "\r" not in stored


def test_names_over_the_limit_are_refused(store: Store) -> None:
    from fleetgauge.validation import InvalidPoint

    long_name = "w" * (MAX_NAME_LENGTH + 1)
    with pytest.raises(InvalidPoint, match="256"):
        store.write(
            [Point("cpu", {"environment": "e", "worker": long_name}, {"usage_percent": 1.0}, T0)]
        )
