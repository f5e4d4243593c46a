"""A model pushes values to a running agent over real HTTP; what it sees, and what is stored."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_process import AgentProcess
from conftest import FakeClock, InfluxHarness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influx_server import influx_to_stop

from fleetgauge import catalogue, protocol, validation
from fleetgauge.agent.push import RecentKeys
from fleetgauge.read.query import get_execution, get_metrics
from fleetgauge.stores import open_store
from fleetgauge.timeutil import parse_time

S = 1_000_000_000
T0 = 1_790_000_000  # 2026-09-21T12:53:20Z, epoch seconds
METRICS, EVENTS = protocol.PUSH_METRICS_PATH, protocol.PUSH_EVENTS_PATH
MAX_BODY = 1024 * 1024
ENV = {"environment": "default", "worker": socket.gethostname()}  # stamped by the agent


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'push.db'}"
    harness: InfluxHarness = request.getfixturevalue("influx")
    return harness.store_url(harness.new_database())


def stored(url: str) -> dict[str, list[catalogue.Point]]:
    """Every pushed point in the store, by measurement, in time order."""
    store = open_store(url)
    try:
        return {
            m.name: sorted(store.stream_points(m.name, 0, 2**62), key=lambda p: p.time_ns)
            for m in (catalogue.PIPELINE_METRIC, catalogue.LIST_METRIC, catalogue.EVENT)
        }
    finally:
        store.close()


def count_stored(url: str) -> int:
    return sum(len(points) for points in stored(url).values())


def score(value: object = 1, **extra: object) -> dict[str, object]:
    return {"metric": "score", "value": value, "deployment": "fraud-v2", **extra}


@pytest.mark.parametrize("backend", ["sqlite", "influxdb"])
def test_pushed_values_events_and_list_metrics_read_back_equal(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_url(backend, tmp_path, request)
    values = [1, 0, 1, 1, 0.25]
    scores = [score(v, time=T0 + i) for i, v in enumerate(values)]
    losses = [
        {
            "metric": "loss",
            "value": 1 / (epoch + 1),
            "pipeline": "train",
            "execution_id": "run-7",
            "step": epoch,
            "time": f"2026-09-21T00:00:{epoch:02d}Z",
            "tags": {"team": "risk"},
        }
        for epoch in range(3)
    ]
    events = [
        {"name": "checkpoint_started", "source": "trainer", "time": T0, "pipeline": "train"},
        {"name": "checkpoint_finish", "time": T0 + 9.5, "metadata": {"epoch": 2, "ok": True}},
    ]
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--flush-interval", "0.3")
    with agent:
        assert agent.post(METRICS, {"metrics": scores + losses}) == (202, {"accepted": 8})
        assert agent.post(EVENTS, {"events": events}) == (202, {"accepted": 2})
        assert agent.stop()[0] == 0
    got = stored(url)
    assert [(p.tags, p.fields, p.time_ns) for p in got["pipeline_metric"]] == [
        ({**ENV, "deployment": "fraud-v2", "metric": "score"}, {"value": float(v)}, (T0 + i) * S)
        for i, v in enumerate(values)
    ]
    loss_tags = {**ENV, "pipeline": "train", "execution_id": "run-7", "metric": "loss"}
    assert [(p.tags, p.fields, p.time_ns) for p in got["list_metric"]] == [
        (
            {**loss_tags, "team": "risk"},
            {"value": 1 / (e + 1), "step": e},
            parse_time(f"2026-09-21T00:00:{e:02d}Z"),
        )
        for e in range(3)
    ]
    assert [(p.tags, json.loads(p.fields["metadata"]), p.time_ns) for p in got["event"]] == [
        (
            {**ENV, "name": "checkpoint_started", "source": "trainer", "pipeline": "train"},
            {},
            T0 * S,
        ),
        ({**ENV, "name": "checkpoint_finish"}, {"epoch": 2, "ok": True}, (T0 * 10 + 95) * S // 10),
    ]


def test_the_agent_stamps_its_worker_and_tags_on_everything_it_takes(tmp_path: Path) -> None:
    """Which worker a value, event or execution came from is the agent's word, not the
    client's: a client cannot set ``worker``; an item's own tag overrides an agent tag."""
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    stamp = {"environment": "lab", "worker": "gpu-07", "region": "eu-1"}
    agent = AgentProcess(
        tmp_path,
        *("--store", url, "--environment", "lab", "--worker", "gpu-07", "--tag", "region=eu-1"),
        *("--interval", "60", "--flush-interval", "0.3"),
    )
    with agent:
        assert agent.post(METRICS, {"metrics": [score(1, tags={"team": "risk"})]})[0] == 202
        assert agent.post(EVENTS, {"events": [{"name": "deployed", "deployment": "d"}]})[0] == 202
        run = {"execution_id": "run-1", "pipeline": "train", "status": "running"}
        assert agent.post(protocol.PUSH_EXECUTIONS_PATH, {"executions": [run]})[0] == 202
        status, answer = agent.post(METRICS, {"metrics": [score(1, tags={"worker": "x"})]})
        assert status == 400 and answer["field"] == "tags", answer
        assert "tag name 'worker' is reserved" in answer["error"], answer
        own = score(2, deployment="other", tags={"region": "us-2"})
        assert agent.post(METRICS, {"metrics": [own]})[0] == 202
        assert agent.stop()[0] == 0
    got = stored(url)
    [value, other], [event] = got["pipeline_metric"], got["event"]
    assert value.tags == {**stamp, "deployment": "fraud-v2", "metric": "score", "team": "risk"}
    assert other.tags == {**stamp, "deployment": "other", "metric": "score", "region": "us-2"}
    assert event.tags == {**stamp, "name": "deployed", "deployment": "d"}
    assert get_execution("run-1", store=url)["worker"] == "gpu-07"
    assert [r["value"] for r in get_metrics("score", worker="gpu-07", store=url)] == [1.0, 2.0]
    assert get_metrics("score", worker="gpu-08", store=url) == []


@pytest.mark.parametrize("backend", ["sqlite", "influxdb"])
def test_values_that_share_a_timestamp_are_all_kept(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Both stores keep one value per series and time; a burst must not collapse into one."""
    url = store_url(backend, tmp_path, request)
    burst = [score(i % 2, time=T0) for i in range(1000)] + [score(5)] * 500  # arrival time
    with AgentProcess(tmp_path, "--store", url, "--interval", "60") as agent:
        assert agent.post(METRICS, {"metrics": burst}) == (202, {"accepted": 1500})
        assert agent.stop()[0] == 0
    points = stored(url)["pipeline_metric"]
    assert len(points) == 1500
    at_t0 = [p for p in points if p.time_ns < (T0 + 1) * S]
    assert [p.fields["value"] for p in at_t0] == [float(i % 2) for i in range(1000)]
    assert at_t0[0].time_ns == T0 * S and at_t0[-1].time_ns == T0 * S + 999  # 1 ns apart


# --- bad input -------------------------------------------------------------------------------
LONG = "x" * (validation.MAX_NAME_LENGTH + 1)
TOO_MANY_TAGS = {f"t{i}": "v" for i in range(protocol.MAX_PUSH_TAGS + 1)}


def m(*items: object) -> dict[str, object]:
    return {"metrics": list(items)}


def ev(*items: object) -> dict[str, object]:
    return {"events": list(items)}


def raw_item(value: str) -> bytes:
    return b'{"metrics": [{"metric": "s", "value": %s, "deployment": "d"}]}' % value.encode()


NO_NAME = {"value": 1, "deployment": "d"}
BAD_REQUESTS: list[tuple[str, str, object, int, int | None, str | None]] = [
    # (case, path, body (bytes: sent raw), status, index, field)
    ("invalid JSON", METRICS, b'{"metrics": [', 400, None, None),
    ("NaN literal", METRICS, raw_item("NaN"), 400, None, None),
    ("infinite number", METRICS, raw_item("1e999"), 400, None, None),
    ("number beyond float range", METRICS, m(score(10**400)), 400, None, None),
    ("not an object", METRICS, [1, 2], 400, None, None),
    ("no list", METRICS, {"metrics": {"metric": "s"}}, 400, None, "metrics"),
    ("unknown top-level field", METRICS, {"metrics": [], "extra": 1}, 400, None, "extra"),
    ("item not an object", METRICS, m(score(), "score=1"), 400, 1, None),
    ("value as text", METRICS, m(score("1")), 400, 0, "value"),
    ("value true", METRICS, m(score(True)), 400, 0, "value"),
    ("value missing", METRICS, m({"metric": "s", "deployment": "d"}), 400, 0, "value"),
    ("metric missing", METRICS, m(NO_NAME), 400, 0, "metric"),
    ("metric empty", METRICS, m({**NO_NAME, "metric": ""}), 400, 0, "metric"),
    ("metric a number", METRICS, m({**NO_NAME, "metric": 7}), 400, 0, "metric"),
    ("metric too long", METRICS, m({**NO_NAME, "metric": LONG}), 400, 0, "metric"),
    ("no deployment or pipeline", METRICS, m({"metric": "s", "value": 1}), 400, 0, "deployment"),
    ("deployment too long", METRICS, m(score(deployment=LONG)), 400, 0, "deployment"),
    ("unknown field", METRICS, m(score(), score(colour="red")), 400, 1, "colour"),
    ("tags not an object", METRICS, m(score(tags=["a"])), 400, 0, "tags"),
    ("tag value a number", METRICS, m(score(tags={"a": 1})), 400, 0, "tags"),
    ("tag value too long", METRICS, m(score(tags={"a": LONG})), 400, 0, "tags"),
    ("too many tags", METRICS, m(score(tags=TOO_MANY_TAGS)), 400, 0, "tags"),
    ("reserved tag", METRICS, m(score(tags={"environment": "prod"})), 400, 0, "tags"),
    ("step a float", METRICS, m(score(step=1.5)), 400, 0, "step"),
    ("step negative", METRICS, m(score(step=-1)), 400, 0, "step"),
    ("time text", METRICS, m(score(time="yesterday")), 400, 0, "time"),
    ("time without zone", METRICS, m(score(time="2026-09-21T10:00:00")), 400, 0, "time"),
    ("time in milliseconds", METRICS, m(score(time=T0 * 1e3)), 400, 0, "time"),
    ("time negative", METRICS, m(score(time=-5)), 400, 0, "time"),
    ("one bad item among good", METRICS, m(score(), score(), score(None)), 400, 2, "value"),
    # after a good item of the same series (its tags are known: the inline path checks it)
    ("then value as text", METRICS, m(score(), score("1")), 400, 1, "value"),
    ("then value true", METRICS, m(score(), score(True)), 400, 1, "value"),
    ("then metric a list", METRICS, m(score(), {**score(), "metric": ["score"]}), 400, 1, "metric"),
    ("then time negative", METRICS, m(score(), score(time=-5.0)), 400, 1, "time"),
    ("then time past 2262", METRICS, m(score(), score(time=1e300)), 400, 1, "time"),
    ("then time as text", METRICS, m(score(), score(time="now")), 400, 1, "time"),
    (
        "too many items",
        METRICS,
        m(*[score()] * (protocol.MAX_PUSH_ITEMS + 1)),
        413,
        None,
        "metrics",
    ),
    ("event without name", EVENTS, ev({"source": "x"}), 400, 0, "name"),
    ("event metadata a list", EVENTS, ev({"name": "e", "metadata": [1]}), 400, 0, "metadata"),
    (
        "event metadata too big",
        EVENTS,
        ev({"name": "e", "metadata": {"a": "x" * 5000}}),
        400,
        0,
        "metadata",
    ),
    ("event unknown field", EVENTS, ev({"name": "e", "value": 1}), 400, 0, "value"),
    ("events sent to metrics", METRICS, ev({"name": "e"}), 400, None, "events"),
]


@pytest.fixture(scope="module")
def sqlite_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, str]]:
    """One agent on SQLite with a 1 MiB body limit, shared by the bad-input tests."""
    workdir = tmp_path_factory.mktemp("push-agent")
    url = f"sqlite:///{workdir / 'push.db'}"
    agent = AgentProcess(
        workdir,
        *("--store", url, "--interval", "60", "--flush-interval", "0.2"),
        *("--push-max-body", str(MAX_BODY), "--collectors", "cpu"),
    )
    with agent:
        yield agent, url


def wait_for_count(url: str, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while count_stored(url) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # anything more (it must not come) would arrive within a few flushes
    return count_stored(url)


@pytest.mark.parametrize(
    ("path", "body", "status", "index", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_is_refused_whole_with_the_item_and_field_named(
    sqlite_agent: tuple[AgentProcess, str],
    path: str,
    body: object,
    status: int,
    index: int | None,
    field: str | None,
) -> None:
    agent, url = sqlite_agent
    before = count_stored(url)
    raw = isinstance(body, bytes)
    code, answer = agent.post(path, body, raw=raw)
    assert (code, answer["index"], answer["field"]) == (status, index, field), answer
    assert answer["error"]
    if index is not None:
        assert answer["error"].startswith(f"item {index}")
    assert agent.post(METRICS, {"metrics": [score()]}) == (202, {"accepted": 1})
    assert wait_for_count(url, before + 1) == before + 1  # the control value only


def test_oversized_body_unknown_path_method_and_type_are_refused(
    sqlite_agent: tuple[AgentProcess, str],
) -> None:
    agent, url = sqlite_agent
    before = count_stored(url)
    big = json.dumps({"metrics": [score(tags={"pad": "p" * 200})] * 5000}).encode()
    assert len(big) > MAX_BODY
    # refused on its Content-Length, before the body is read: the client sends the head
    # only (a client still sending when the answer comes may see its pipe broken instead)
    conn = http.client.HTTPConnection("127.0.0.1", agent.push_port, timeout=5)
    conn.putrequest("POST", METRICS)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(big)))
    conn.endheaders()
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 413 and f"limit of {MAX_BODY}" in answer["error"]
    conn.close()
    assert agent.post("/v1/metric", {"metrics": []})[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", agent.push_port, timeout=5)
    conn.request("GET", METRICS)
    response = conn.getresponse()
    assert (response.status, response.getheader("Allow")) == (405, "POST")
    response.read()
    conn.request("POST", METRICS, b"metric=score value=1", {"Content-Type": "text/plain"})
    assert conn.getresponse().status == 415
    assert wait_for_count(url, before) == before
    assert agent.value("fleetgauge_agent_push_requests_total", code="413") >= 1


def test_a_batch_sent_again_under_its_idempotency_key_is_stored_once(
    sqlite_agent: tuple[AgentProcess, str],
) -> None:
    agent, url = sqlite_agent
    before = count_stored(url)
    body = json.dumps(m(*[score(i) for i in range(10)]))
    answers = []
    for key in ("batch-1", "batch-1", "batch-2"):
        conn = http.client.HTTPConnection("127.0.0.1", agent.push_port, timeout=5)
        headers = {"Content-Type": "application/json", protocol.PUSH_IDEMPOTENCY_HEADER: key}
        conn.request("POST", METRICS, body, headers)
        response = conn.getresponse()
        answers.append((response.status, json.loads(response.read())))
    assert answers == [
        (202, {"accepted": 10}),
        (202, {"accepted": 10, "duplicate": True}),
        (202, {"accepted": 10}),
    ]
    assert wait_for_count(url, before + 20) == before + 20


def test_idempotency_keys_are_remembered_five_to_ten_minutes_and_bounded_in_number() -> None:
    clock = FakeClock()
    keys = RecentKeys(window_s=300, per_window=3, clock=clock)
    keys.put("a", {"accepted": 10})
    keys.put("x", {"accepted": 2, "execution_ids": ["e1", "e2"]})
    clock.now += 299
    assert keys.get("a") == {"accepted": 10}
    assert keys.get("x") == {"accepted": 2, "execution_ids": ["e1", "e2"]}
    clock.now += 2  # a new window: "a" and "x" are in the previous one, still answered
    keys.put("b", {"accepted": 1})
    assert keys.get("a") == {"accepted": 10} and keys.get("b") == {"accepted": 1}
    clock.now += 300  # two windows on: "a" is forgotten, "b" still known
    assert keys.get("a") is None and keys.get("b") == {"accepted": 1}
    clock.now += 600  # nothing sent for ten minutes: everything is forgotten
    assert keys.get("b") is None and len(keys) == 0
    for i in range(7):  # three keys per window at most: a burst keeps the last 4 to 6
        keys.put(f"k{i}", {"accepted": i})
    assert len(keys) <= 6
    assert keys.get("k6") == {"accepted": 6} and keys.get("k0") is None


def test_prometheus_sees_counts_last_values_and_declared_histograms(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    args = ("--store", url, "--interval", "60", "--push-histogram", "latency_seconds=0.1,1")
    with AgentProcess(tmp_path, *args) as agent:
        values = [0.05, 0.5, 2.0, 0.7]
        latency = [{"metric": "latency_seconds", "value": v, "deployment": "api"} for v in values]
        body = {"metrics": [score(1), score(0), score(1), *latency]}
        assert agent.post(METRICS, body)[0] == 202
        labels = {"deployment": "fraud-v2", "pipeline": "", "metric": "score"}
        assert agent.value("fleetgauge_pipeline_values_total", **labels) == 3
        assert agent.value("fleetgauge_pipeline_last_value", **labels) == 1
        api = {"deployment": "api", "metric": "latency_seconds"}
        assert agent.value("fleetgauge_pipeline_value_bucket", le="0.1", **api) == 1
        assert agent.value("fleetgauge_pipeline_value_bucket", le="1.0", **api) == 3
        assert agent.value("fleetgauge_pipeline_value_bucket", le="+Inf", **api) == 4
        assert agent.value("fleetgauge_pipeline_value_sum", **api) == pytest.approx(sum(values))
        assert agent.value("fleetgauge_agent_push_items_accepted_total") == 7


# --- fuzz ------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=12,
)
near_items = st.dictionaries(
    st.sampled_from([*protocol.PUSH_METRIC_KEYS, *protocol.PUSH_EVENT_KEYS, "bogus"]),
    json_values
    | st.sampled_from(["score", "d", "2026-09-21T10:00:00Z", "", "x" * 257])
    | st.floats(min_value=0, max_value=4e9),
    max_size=8,
)
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)
valid_items = st.fixed_dictionaries(
    {
        "metric": names,
        "value": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-9, 9),
    },
    optional={
        "deployment": names,
        "pipeline": names,
        "execution_id": names,
        "step": st.integers(0, 1000),
        "time": st.floats(1e9, 2e9),
        "tags": st.dictionaries(names.filter(lambda k: k not in TAKEN), names, max_size=3),
    },
)
TAKEN = {
    *protocol.PUSH_METRIC_KEYS,
    *protocol.PUSH_EVENT_KEYS,
    *catalogue.RESERVED_TAG_KEYS,
    "worker",
}
TAKEN |= {"environment", "metric"}
items = st.lists(valid_items | near_items, max_size=5)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | items.map(lambda items: json.dumps({"metrics": items}).encode())
    | items.map(lambda items: json.dumps({"events": items}).encode())
    | st.lists(valid_items, min_size=1, max_size=5).map(lambda i: json.dumps(m(*i)).encode())
)


@settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, path=st.sampled_from([METRICS, EVENTS]))
def test_fuzzed_bodies_never_get_a_5xx_and_what_is_accepted_is_stored(
    fuzz_agent: tuple[AgentProcess, str, dict[str, Any]], body: bytes, path: str
) -> None:
    agent, _, tally = fuzz_agent
    conn = tally.setdefault("conn", http.client.HTTPConnection("127.0.0.1", agent.push_port))
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    except (ConnectionError, http.client.HTTPException):
        tally.pop("conn").close()  # the agent may close after a refusal; reconnect
        raise
    assert response.status < 500, answer
    if response.status == 202:
        tally["accepted"] = tally.get("accepted", 0) + answer["accepted"]
    else:
        assert 400 <= response.status < 500 and answer["error"]
    if response.getheader("Connection") == "close":
        tally.pop("conn").close()


@pytest.fixture(scope="module")
def fuzz_agent(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AgentProcess, str, dict]]:
    workdir = tmp_path_factory.mktemp("fuzz-agent")
    url = f"sqlite:///{workdir / 'fuzz.db'}"
    agent = AgentProcess(
        workdir,
        "--store",
        url,
        "--interval",
        "60",
        "--flush-interval",
        "0.2",
        "--collectors",
        "cpu",
    )
    tally: dict[str, Any] = {}
    with agent:
        yield agent, url, tally
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()
        assert agent.stop()[0] == 0, agent.log()
    # a value pushed with the series and explicit time of an earlier one replaces it (as in
    # InfluxDB), and fuzzed times repeat: so at most what was accepted, and not nothing
    accepted = tally.get("accepted", 0)
    assert accepted > 100 and 0 < count_stored(url) <= accepted
    assert "Traceback" not in agent.log()


# --- token --------------------------------------------------------------------------------------
def test_off_loopback_the_endpoint_needs_a_token_and_checks_it(tmp_path: Path) -> None:
    host = socket.gethostbyname(socket.gethostname())
    if host.startswith("127."):
        host = "0.0.0.0"
    url = f"sqlite:///{tmp_path / 't.db'}"
    refused = AgentProcess(tmp_path, "--store", url, "--push-host", host)
    with pytest.raises(RuntimeError, match="push_host .* is not loopback: set a token"):
        refused.start()
    token = "push-s3cret-value"
    agent = AgentProcess(
        tmp_path, "--store", url, "--push-host", host, env={"FLEETGAUGE_PUSH_TOKEN": token}
    )
    target = "127.0.0.1" if host == "0.0.0.0" else host
    with agent:
        for given_token in (None, "wrong-token"):
            conn = http.client.HTTPConnection(target, agent.push_port, timeout=5)
            headers = {"Content-Type": "application/json"}
            if given_token:
                headers["Authorization"] = f"Bearer {given_token}"
            conn.request("POST", METRICS, json.dumps({"metrics": [score()]}), headers)
            assert conn.getresponse().status == 401
        conn = http.client.HTTPConnection(target, agent.push_port, timeout=5)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        conn.request("POST", METRICS, json.dumps({"metrics": [score(time=T0)]}), headers)
        assert conn.getresponse().status == 202
        assert agent.stop()[0] == 0
    assert [p.fields for p in stored(url)["pipeline_metric"]] == [{"value": 1.0}]
    assert token not in agent.log()


# --- store down ---------------------------------------------------------------------------------
def test_values_pushed_while_influxdb_is_down_arrive_once_it_is_back(tmp_path: Path) -> None:
    with influx_to_stop(tmp_path / "influxd") as (server, url):
        args = ("--store", url, "--interval", "60", "--flush-interval", "0.3")
        args += ("--collectors", "cpu")
        with AgentProcess(tmp_path, *args) as agent:
            server.stop()
            for batch in range(5):
                body = {"metrics": [score(i, time=T0 + batch * 1000 + i) for i in range(1000)]}
                assert agent.post(METRICS, body) == (202, {"accepted": 1000})
            deadline = time.monotonic() + 10
            while agent.value("fleetgauge_agent_spool_points") < 5000:
                assert time.monotonic() < deadline, agent.log()
                time.sleep(0.2)
            server.start()
            deadline = time.monotonic() + 30
            while agent.value("fleetgauge_agent_spool_points") and time.monotonic() < deadline:
                time.sleep(0.3)
            assert agent.stop()[0] == 0
        points = stored(url)["pipeline_metric"]
        expected = [(T0 + b * 1000 + i) * S for b in range(5) for i in range(1000)]
        assert [p.time_ns for p in points] == expected
        assert "0 dropped, 0 waiting in the spool" in agent.log()
