"""The agent's two listeners answer every request, and only the names and pages they should.

A real agent process on loopback, spoken to over raw HTTP as an attacker or a
careless client would: a ``Host`` it does not answer to (DNS rebinding), an
``Origin`` of another site, no ``Content-Type`` (what a page's ``no-cors`` fetch
sends), odd methods, a signed ``Content-Length``, a lower-case auth scheme,
metadata and inputs nested far deeper than any real one, and one
``Idempotency-Key`` used on two endpoints.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess

from fleetgauge import catalogue, protocol
from fleetgauge.stores import open_store

METRICS, EVENTS = protocol.PUSH_METRICS_PATH, protocol.PUSH_EVENTS_PATH
SCORE = {"metrics": [{"metric": "score", "value": 1, "deployment": "d"}]}
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AgentProcess, str]]:
    tmp = tmp_path_factory.mktemp("listeners")
    url = f"sqlite:///{tmp / 'fleet.db'}"
    args = ("--store", url, "--interval", "60", "--flush-interval", "0.2", "--collectors", "cpu")
    with AgentProcess(tmp, *args, "--allowed-hosts", "agent.internal") as running:
        yield running, url


def stored(url: str) -> dict[str, list[catalogue.Point]]:
    store = open_store(url, create=False)
    try:
        names = (catalogue.PIPELINE_METRIC, catalogue.EVENT, catalogue.EXECUTION)
        return {m.name: list(store.stream_points(m.name, 0, 2**62)) for m in names}
    finally:
        store.close()


def exchange(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: status, headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def push(port: int, path: str, doc: object, **headers: str) -> tuple[int, dict]:
    status, _, body = exchange(port, "POST", path, json.dumps(doc).encode(), {**JSON, **headers})
    return status, json.loads(body)


def test_a_host_or_origin_the_agent_does_not_answer_to_is_refused_before_anything(
    agent: tuple[AgentProcess, str],
) -> None:
    running, url = agent
    before = len(stored(url)["pipeline_metric"])
    for headers, says in (
        ({"Host": "evil.example"}, "add it with --allowed-hosts"),
        ({"Host": f"evil.example:{running.push_port}"}, "add it with --allowed-hosts"),
        ({"Origin": "http://evil.example"}, "pages of origin 'http://evil.example'"),
        ({"Origin": "null"}, "pages of origin 'null'"),
    ):
        status, answer = push(running.push_port, METRICS, SCORE, **headers)
        assert status == 403 and says in answer["error"], (headers, answer)
    metrics = running.metrics_port
    status, _, body = exchange(metrics, "GET", "/metrics", headers={"Host": "evil.example"})
    assert status == 403 and b"'evil.example'" in body and b"fleetgauge_" not in body
    status, _, body = exchange(
        metrics, "GET", "/metrics", headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and b"fleetgauge_" not in body
    assert len(stored(url)["pipeline_metric"]) == before
    assert running.value("fleetgauge_agent_push_requests_total", code="403") >= 4
    refused = "fleetgauge_agent_requests_refused_total"
    assert running.value(refused, listener="push", reason="host") >= 2
    assert running.value(refused, listener="push", reason="origin") >= 2
    assert running.value(refused, listener="metrics", reason="host") >= 1
    assert running.value(refused, listener="metrics", reason="origin") >= 1
    # the names it does answer to: loopback ones, its own IP literals, the allowed name
    for host in ("127.0.0.1", f"localhost:{running.push_port}", "[::1]", "agent.internal"):
        assert push(running.push_port, METRICS, SCORE, Host=host)[0] == 202, host
    origin = f"http://localhost:{running.push_port}"
    assert push(running.push_port, METRICS, SCORE, Origin=origin)[0] == 202
    status, _, body = exchange(metrics, "GET", "/metrics", headers={"Host": "agent.internal"})
    assert status == 200 and b"fleetgauge_agent_samples_total" in body


def test_a_body_without_json_content_type_is_refused_as_a_pages_no_cors_fetch_would_send_it(
    agent: tuple[AgentProcess, str],
) -> None:
    running, url = agent
    before = len(stored(url)["pipeline_metric"])
    body = json.dumps(SCORE).encode()
    for headers in ({}, {"Content-Type": "text/plain;charset=UTF-8"}):
        status, _, answer = exchange(running.push_port, "POST", METRICS, body, headers)
        assert status == 415 and b"application/json" in answer, headers
    assert len(stored(url)["pipeline_metric"]) == before


def test_every_method_but_post_gets_405_naming_post(agent: tuple[AgentProcess, str]) -> None:
    running, _ = agent
    for method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PROPFIND", "FOO"):
        status, headers, body = exchange(running.push_port, method, METRICS)
        assert (status, headers.get("Allow")) == (405, "POST"), method
        assert (body == b"") if method == "HEAD" else (b"use POST" in body), method


def test_content_length_must_be_one_plain_number(agent: tuple[AgentProcess, str]) -> None:
    running, _ = agent
    body = json.dumps(SCORE).encode()
    for length in (f"+{len(body)}", f" {len(body)}x", "0x10", "-1"):
        conn = http.client.HTTPConnection("127.0.0.1", running.push_port, timeout=10)
        conn.putrequest("POST", METRICS)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", length)
        conn.endheaders(body)
        response = conn.getresponse()
        assert response.status == 400, length
        assert b"Content-Length" in response.read()
        conn.close()


def test_the_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    env = {"FLEETGAUGE_PUSH_TOKEN": "s3cret-token"}
    with AgentProcess(tmp_path, "--store", url, "--collectors", "cpu", env=env) as running:
        assert (
            push(running.push_port, METRICS, SCORE, Authorization="bearer s3cret-token")[0] == 202
        )
        assert (
            push(running.push_port, METRICS, SCORE, Authorization="BEARER s3cret-token")[0] == 202
        )
        for wrong in ("Basic czNjcmV0LXRva2Vu", "Bearer wrong", "s3cret-token", "Bearer"):
            assert push(running.push_port, METRICS, SCORE, Authorization=wrong)[0] == 401, wrong
        refused = "fleetgauge_agent_requests_refused_total"
        assert running.value(refused, listener="push", reason="token") == 4


def test_values_nested_past_the_limit_get_a_400_naming_the_field_not_a_dropped_connection(
    agent: tuple[AgentProcess, str],
) -> None:
    running, url = agent
    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    status, answer = push(running.push_port, EVENTS, {"events": [{"name": "e", "metadata": deep}]})
    assert (status, answer["field"]) == (400, "metadata")
    assert f"deeper than {protocol.MAX_NESTING} levels" in answer["error"]
    deeper = "[" * 1000 + "1" + "]" * 1000  # built by hand: json.dumps would recurse too
    body = '{"executions": [{"pipeline": "train", "status": "running", "inputs": {"grid": %s}}]}'
    path = protocol.PUSH_EXECUTIONS_PATH
    status, _, raw = exchange(running.push_port, "POST", path, (body % deeper).encode(), JSON)
    answer = json.loads(raw)
    assert (status, answer["field"]) == (400, "inputs")
    assert "'grid' must be text" in answer["error"]
    shallow: object = 1
    for _ in range(protocol.MAX_NESTING - 1):
        shallow = {"a": shallow}
    assert (
        push(running.push_port, EVENTS, {"events": [{"name": "ok", "metadata": shallow}]})[0] == 202
    )


def test_an_idempotency_key_is_remembered_per_endpoint(agent: tuple[AgentProcess, str]) -> None:
    running, url = agent
    before = stored(url)
    key = {protocol.PUSH_IDEMPOTENCY_HEADER: "reused-key-1"}
    assert push(running.push_port, METRICS, SCORE, **key) == (202, {"accepted": 1})
    event = {"events": [{"name": "after_the_metric", "metadata": {"n": 1}}]}
    assert push(running.push_port, EVENTS, event, **key) == (202, {"accepted": 1})
    again = push(running.push_port, EVENTS, event, **key)
    assert again == (202, {"accepted": 1, "duplicate": True})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = stored(url)
        names = [p.tags[catalogue.EVENT_NAME] for p in after["event"]]
        if "after_the_metric" in names:
            break
        time.sleep(0.1)
    assert len(after["pipeline_metric"]) == len(before["pipeline_metric"]) + 1
    assert names.count("after_the_metric") == 1
