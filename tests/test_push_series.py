"""The columnar ``/v1/metrics`` body (issue 26): what a series stores is what its items store.

A real agent takes ``{"series": [{"metric", context, "tags", "values", "times"}]}``
and stores the very points the same values sent as items store (ties on a time
made unique the same way), refuses a bad series whole naming the series, the value
and the field, and says in every push answer that it takes the form. The SDK sends
series to an agent that said so, and items to one that did not or that refuses
them, losing nothing either way.
"""

from __future__ import annotations

import http.client
import http.server
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_process import AgentProcess
from test_push import (
    ENV,
    METRICS,
    T0,
    count_stored,
    sqlite_agent,  # noqa: F401 - the bad-input tests' shared agent (a fixture)
    store_url,
    stored,
    wait_for_count,
)

from fleetgauge import protocol
from fleetgauge.agent.push.parser import PushParser
from fleetgauge.sdk import MetricsClient

S = 1_000_000_000


def _series(deployment: str, values: list[object], times: list[object] | None, **extra: object):
    series: dict[str, object] = {"metric": "score", "deployment": deployment, "values": values}
    if times is not None:
        series["times"] = times
    return {**series, **extra}


@pytest.mark.parametrize("backend", ["sqlite", "influxdb"])
def test_a_series_stores_the_points_its_items_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_url(backend, tmp_path, request)
    values: list[object] = [1, 0.25, -3, 0.5, 7, 2**40]
    times: list[object] = [
        T0,
        T0 + 0.5,
        T0 + 0.5,
        T0 + 0.5,
        T0 + 2,
        datetime.fromtimestamp(T0 + 3, UTC).isoformat(),
    ]  # RFC 3339 text
    tags = {"team": "risk"}
    items = [
        {"metric": "score", "deployment": "as-items", "value": v, "time": t, "tags": tags}
        for v, t in zip(values, times, strict=True)
    ]
    body = {
        "series": [_series("as-series", values, times, tags=tags), _series("now", [1, 2], None)]
    }
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--flush-interval", "0.3")
    with agent:
        assert agent.post(METRICS, {"metrics": items}) == (202, {"accepted": 6})
        conn = http.client.HTTPConnection("127.0.0.1", agent.push_port, timeout=10)
        conn.request("POST", METRICS, json.dumps(body), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        assert (answer.status, json.loads(answer.read())) == (202, {"accepted": 8})
        assert answer.getheader(protocol.PUSH_FORMS_HEADER) == "items, series"
        conn.close()
        assert agent.stop()[0] == 0
    got = stored(url)["pipeline_metric"]

    def of(deployment: str) -> list[tuple[dict[str, str], dict[str, float], int]]:
        return [
            ({k: v for k, v in p.tags.items() if k != "deployment"}, p.fields, p.time_ns)
            for p in got
            if p.tags["deployment"] == deployment
        ]

    expected = of("as-items")
    assert len(expected) == 6 and expected == of("as-series")
    assert [t for _, _, t in expected[1:4]] == [T0 * S + S // 2 + i for i in range(3)]  # ties
    assert expected[0][0] == {**ENV, "metric": "score", "team": "risk"}
    arrived = of("now")  # no times: the time of arrival, one nanosecond apart
    assert [f["value"] for _, f, _ in arrived] == [1.0, 2.0]
    assert 0 < arrived[1][2] - arrived[0][2] <= S and arrived[0][2] > (T0 + 3600) * S


def _parsed(doc: dict[str, object], parser: PushParser) -> list[tuple[object, ...]]:
    return [(p.tags, p.fields, p.time_ns) for p in parser.metrics(doc, T0 * S)]


@pytest.mark.parametrize(
    "times",
    [
        [T0 + i * 1e-3 for i in range(8)],  # plain: strictly increasing
        [T0, T0, T0 + 1e-6, T0 + 1e-6, T0 + 1e-6, T0 + 2e-6, T0 + 2e-6, T0 + 3],  # ties
        [T0 + 1, T0 + 1, T0 + 0.9995, T0 + 0.5, T0 + 1, T0 + 2, T0 + 2, T0 + 2],  # going back
    ],
)
def test_a_plain_series_takes_the_times_and_values_its_items_take(times: list[float]) -> None:
    """The column checks of a series of plain floats (tie rule included, across requests)."""
    values = [1, 0.5, -3, 2**40, 0.25, 7.0, 0, 1e-300]
    items, series = PushParser(ENV), PushParser(ENV)
    for shift in (0.0, -5e-4):  # a second request going back inside the tie window
        shifted = [t + shift for t in times]
        as_items = [
            {"metric": "score", "deployment": "d", "value": v, "time": t}
            for v, t in zip(values, shifted, strict=True)
        ]
        expected = _parsed({"metrics": as_items}, items)
        got = _parsed({"series": [_series("d", values, shifted)]}, series)
        assert got == expected
        assert all(type(f["value"]) is float for _, f, _ in got)


BAD = [
    ({"series": "x"}, None, "series", "'series' must be a list"),
    (
        {"series": [{"metric": "s", "deployment": "d", "values": [1, "x"]}]},
        0,
        "value",
        "series 0, value 1, field 'value': must be a number",
    ),
    (
        {"series": [_series("d", [1], None), _series("d", [1, 2], [T0, -1.0])]},
        1,
        "time",
        "series 1, value 1, field 'time'",
    ),
    ({"series": [{"metric": "s", "values": [1]}]}, 0, "deployment", "series 0, value 0"),
    ({"series": [_series("d", [1, 2], [T0])]}, 0, "times", "series 0, field 'times'"),
    ({"series": [_series("d", [], None)]}, 0, "values", "series 0, field 'values'"),
    ({"series": [_series("d", [1], None, step=3)]}, 0, "step", "series 0, field 'step'"),
    ({"series": [_series("d", [float("nan")], None)]}, None, None, "not valid JSON"),
    ({"series": [], "metrics": []}, None, "metrics", "unknown top-level field"),
]


@pytest.mark.parametrize(("body", "index", "field", "error"), BAD)
def test_a_bad_series_is_refused_whole_naming_the_series_value_and_field(
    sqlite_agent: tuple[AgentProcess, str],  # noqa: F811
    body: object,
    index: int | None,
    field: str | None,
    error: str,
) -> None:
    agent, url = sqlite_agent
    before = count_stored(url)
    code, answer = agent.post(METRICS, body)
    assert (code, answer["index"], answer["field"]) == (400, index, field), answer
    assert error in answer["error"], answer
    assert agent.post(METRICS, {"series": [_series("control", [1], None)]}) == (
        202,
        {"accepted": 1},
    )
    assert wait_for_count(url, before + 1) == before + 1  # the control value only


def test_more_values_than_a_request_may_hold_are_refused_with_413(
    sqlite_agent: tuple[AgentProcess, str],  # noqa: F811
) -> None:
    agent, _ = sqlite_agent
    half = protocol.MAX_PUSH_ITEMS // 2 + 1
    body = {"series": [_series("a", [1.0] * half, None), _series("b", [1.0] * half, None)]}
    code, answer = agent.post(METRICS, body)
    assert (code, answer["index"]) == (413, 1) and "limit" in answer["error"], answer


class _Agent:
    """A push endpoint over real HTTP that keeps every /v1/metrics body and answers as an
    agent of a given age: ``forms`` in its answers (an agent that takes series), and
    ``refuse_series`` as an agent that does not know them (400, no item named)."""

    def __init__(self, forms: str | None, refuse_series: bool = False) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != METRICS:
                    status, answer = 202, {"registered": 1}
                elif "series" in doc and refuse_series:
                    status = 400
                    answer = {"error": "unknown top-level field 'series'", "index": None}
                else:
                    bodies.append(doc)
                    n = sum(len(s["values"]) for s in doc["series"]) if "series" in doc else 0
                    status, answer = 202, {"accepted": n or len(doc["metrics"])}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                if forms is not None:
                    self.send_header(protocol.PUSH_FORMS_HEADER, forms)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def values(self) -> list[tuple[str, float, float, dict]]:
        """(deployment, value, time, tags) of every value received, whichever the form."""
        out = []
        for doc in self.bodies:
            for s in doc.get("series", []):
                out += [
                    (s["deployment"], v, t, s.get("tags"))
                    for v, t in zip(s["values"], s["times"], strict=True)
                ]
            out += [
                (i["deployment"], i["value"], i["time"], i.get("tags"))
                for i in doc.get("metrics", [])
            ]
        return sorted(out, key=lambda value: value[:3])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _record(url: str) -> tuple[list[tuple[str, float]], dict]:
    """300 values: half with the client's context (the common call, sent without an item
    per value where the agent takes series), half naming a deployment of their own."""
    client = MetricsClient(url=url, deployment="fraud", tags={"model": "v2"}, flush_interval=0.05)
    sent = []
    for i in range(300):
        if i % 2:
            client.record_metric_value("score", i, deployment="ranker")
            sent.append(("ranker", i))
        else:
            client.record_metric_value("score", float(i) if i % 4 else i)
            sent.append(("fraud", i))
    assert client.flush(10)
    stats = client.stats()
    client.close()
    return sent, stats


@pytest.mark.parametrize(
    ("forms", "refuse", "form"),
    [
        ("items, series", False, "series"),
        (None, False, "metrics"),
        ("items, series", True, "metrics"),
    ],
    ids=["takes-series", "items-only", "refuses-series"],
)
def test_the_sdk_sends_series_only_to_an_agent_that_takes_them(
    forms: str | None, refuse: bool, form: str
) -> None:
    agent = _Agent(forms, refuse_series=refuse)
    try:
        started = time.time()
        sent, stats = _record(agent.url)
    finally:
        agent.close()
    assert stats["sent"] == 300 and sum(stats["dropped"].values()) == 0, stats
    assert {key for doc in agent.bodies for key in doc} == {form}
    got = agent.values()
    assert sorted((d, v) for d, v, _, _ in got) == sorted((d, float(v)) for d, v in sent)
    assert all(type(v) is float for _, v, _, _ in got)
    assert all(started - 1 < t < time.time() + 1 for _, _, t, _ in got)
    assert all(tags == {"model": "v2"} for _, _, _, tags in got)
