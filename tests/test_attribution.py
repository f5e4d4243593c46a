"""Process attribution (issue 23): the resources of the processes behind a deployment.

Real processes throughout: a real agent, and child Python processes that record
through the SDK while they burn CPU and hold memory. What the agent stored for
them is compared with what psutil (an independent reader of /proc) says of the
same processes over the same time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from agent_process import AgentProcess
from collectors.collector_checks import IDENTITY, NOW_NS, check_points
from collectors.fake_nvml import GIB, FakeGpu, FakeNvml
from conftest import InfluxHarness

from fleetgauge import catalogue, protocol
from fleetgauge.agent.collectors.gpu import GpuCollector
from fleetgauge.agent.collectors.process import ProcessRegistry
from fleetgauge.agent.push.parser import ProcessClaim
from fleetgauge.catalogue import Point
from fleetgauge.procinfo import command_of, container_of, start_time
from fleetgauge.read.query import get_execution, list_executions
from fleetgauge.stores import open_store
from fleetgauge.timeutil import parse_time

S = 1_000_000_000
PROCESSES = protocol.PUSH_PROCESSES_PATH

# Records one value with a deployment (the SDK registers the process on its first batch),
# holds 200 MB, then burns one core until its stdin closes.
BURNER = """
import sys, threading
from fleetgauge.sdk import MetricsClient
client = MetricsClient(url=sys.argv[1], deployment=sys.argv[2], flush_interval=0.1)
hold = bytearray(200 * 2**20)
for i in range(0, len(hold), 4096):
    hold[i] = 1
client.record_metric_value("score", 1)
assert client.flush(10), client.stats()
stop = []
def burn():
    while not stop:
        pass
threading.Thread(target=burn, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
stop.append(1)
"""


def process_points(url: str, pid: int) -> list[Point]:
    store = open_store(url, create=False)
    try:
        where = {catalogue.PID: [str(pid)]}
        return list(store.stream_points(catalogue.PROCESS_MEASUREMENT.name, 0, 2**62, where))
    finally:
        store.close()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.3)
    return found


def test_a_process_recording_through_the_sdk_is_sampled_with_its_deployment(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(
        tmp_path,
        *("--store", url, "--interval", "1", "--flush-interval", "0.3"),
        *("--process-flush-interval", "0.3", "--collectors", "cpu,process"),
    )
    with agent:
        child = subprocess.Popen(
            [sys.executable, "-c", BURNER, f"http://127.0.0.1:{agent.push_port}", "burner-v1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            reference = psutil.Process(child.pid)
            command = reference.name()
            # what psutil sees of the child over a window of about six agent samples
            wait_for(lambda: process_points(url, child.pid), 15, "no process point")
            cpu_before, at_before, ns_before = (
                sum(reference.cpu_times()[:2]),
                time.monotonic(),
                time.time_ns(),
            )
            time.sleep(6)
            cpu_after, at_after, ns_after = (
                sum(reference.cpu_times()[:2]),
                time.monotonic(),
                time.time_ns(),
            )
            rss = reference.memory_info().rss
            expected_cpu = 100 * (cpu_after - cpu_before) / (at_after - at_before)
            points = wait_for(
                lambda: [
                    p
                    for p in process_points(url, child.pid)
                    if ns_before + S <= p.time_ns <= ns_after
                ][4:],
                10,
                "too few samples in the window",
            )
            stored = process_points(url, child.pid)
            child.stdin.close()
            assert child.wait(20) == 0
            exited_ns = time.time_ns()
            time.sleep(3)  # three more agent samples
            after_exit = [p for p in process_points(url, child.pid) if p.time_ns > exited_ns + S]
        finally:
            child.kill()
        assert agent.stop()[0] == 0, agent.log()

    tags = stored[-1].tags
    assert tags[catalogue.DEPLOYMENT] == "burner-v1"
    assert tags[catalogue.PID] == str(child.pid)
    assert tags[catalogue.WORKER] and tags[catalogue.ENVIRONMENT] == "default"
    assert tags[catalogue.PROCESS] == command
    measured_cpu = 100 * sum(p.fields["cpu_cores"] for p in points) / len(points)
    assert expected_cpu > 50, f"the child burned only {expected_cpu:.0f} % of a core"
    assert abs(measured_cpu - expected_cpu) <= 0.2 * expected_cpu, (measured_cpu, expected_cpu)
    stored_rss = stored[-1].fields["rss_bytes"]
    assert abs(stored_rss - rss) <= 0.2 * rss, (stored_rss, rss)
    assert stored_rss > 200 * 2**20
    assert stored[-1].fields["threads"] >= 3  # main, the SDK's sender, the burner
    assert stored[-1].fields["cpu_seconds"] >= cpu_before
    assert after_exit == [], "the agent kept sampling a process that exited"


def cpu_times(url: str) -> set[int]:
    store = open_store(url, create=False)
    try:
        return {p.time_ns for p in store.stream_points(catalogue.CPU.name, 0, 2**62)}
    finally:
        store.close()


def test_process_samples_are_written_every_process_flush_interval_and_none_is_lost(
    tmp_path: Path,
) -> None:
    """Other samples go out every flush interval; process samples wait for their own, longer
    one, and a SIGTERM writes what waits: one process point for every sample taken."""
    url = f"sqlite:///{tmp_path / 'fg.db'}"
    agent = AgentProcess(
        tmp_path,
        *("--store", url, "--interval", "0.5", "--flush-interval", "0.3"),
        *("--process-flush-interval", "4", "--collectors", "cpu,process"),
    )
    me = os.getpid()
    with agent:
        good = {"pid": me, "start_time": start_time(me), "deployment": "held"}
        assert agent.post(PROCESSES, {"processes": [good]}) == (202, {"registered": 1})
        first = wait_for(lambda: process_points(url, me), 15, "no process point written")
        seen_at, cpu_seen = time.monotonic(), len(cpu_times(url))
        time.sleep(1.5)  # well inside the 4 s: cpu samples are written, process ones wait
        assert len(cpu_times(url)) >= cpu_seen + 2, "cpu samples stopped being written"
        assert len(process_points(url, me)) == len(first), "written before 4 s had passed"
        assert time.monotonic() - seen_at < 3.5
        time.sleep(4)
        assert len(process_points(url, me)) > len(first)
        time.sleep(0.7)  # samples taken since the last write wait in the agent...
        assert agent.stop()[0] == 0, agent.log()
    # ...and the SIGTERM wrote them: one process point per sample, from the first on
    held = sorted(p.time_ns for p in process_points(url, me))
    assert all(p.tags[catalogue.DEPLOYMENT] == "held" for p in process_points(url, me))
    assert held == sorted(t for t in cpu_times(url) if t >= held[0])
    assert len(held) >= 15


def test_a_registration_the_agent_cannot_check_is_refused_naming_the_item(tmp_path: Path) -> None:
    me = os.getpid()
    started = start_time(me)
    assert started is not None and abs(started - psutil.Process(me).create_time()) < 0.02
    cases = [
        ({"pid": 2**31 - 2, "deployment": "d"}, "pid", "no process 2147483646 is visible"),
        ({"pid": me, "start_time": started - 1000, "deployment": "d"}, "start_time", "reused"),
        ({"pid": me}, "deployment", "a 'deployment', a 'pipeline' or an 'execution_id'"),
        ({"pid": me, "deployment": "d", "cmd": "x"}, "cmd", "unknown field"),
        ({"pid": -3, "deployment": "d"}, "pid", "positive integer"),
        ({"pid": me, "deployment": ""}, "deployment", "must not be empty"),
    ]
    agent = AgentProcess(tmp_path, "--store", f"sqlite:///{tmp_path / 'fg.db'}")
    with agent:
        for item, field, words in cases:
            status, answer = agent.post(PROCESSES, {"processes": [item]})
            assert status == 400 and answer["field"] == field, (item, answer)
            assert answer["index"] == 0 and words in answer["error"], (item, answer)
        good = {"pid": me, "start_time": started, "deployment": "tester"}
        assert agent.post(PROCESSES, {"processes": [good]}) == (202, {"registered": 1})
        assert agent.stop()[0] == 0


HEX = "3f4e5d6c7b8a" + "0" * 52
CGROUPS = {
    "docker, cgroup v1": (f"12:memory:/docker/{HEX}\n11:cpu:/docker/{HEX}\n", HEX[:12], None),
    "docker, systemd": (f"0::/system.slice/docker-{HEX}.scope\n", HEX[:12], None),
    "kubernetes, systemd": (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
        f"pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-{HEX}.scope\n",
        HEX[:12],
        "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
    ),
    "kubernetes, cgroupfs": (
        f"11:cpu:/kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/{HEX}\n",
        HEX[:12],
        "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901",
    ),
    "a login session": ("0::/user.slice/user-1000.slice/session-2.scope\n", None, None),
}


@pytest.mark.parametrize("case", list(CGROUPS))
def test_the_container_and_pod_of_a_process_are_read_from_its_cgroup(
    case: str, tmp_path: Path
) -> None:
    text, container, pod = CGROUPS[case]
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(text)
    assert container_of(42, str(tmp_path)) == (container, pod)
    assert container_of(43, str(tmp_path)) == (None, None)


# --- GPUs shared by deployments (fake NVML shaped like pynvml) ---------------------------
def sleeper(name: str) -> subprocess.Popen:
    """A real process with its own command name, alive until killed."""
    code = f"import ctypes, time; ctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code])
    wait_for(lambda: command_of(child.pid) == name, 10, f"{name} did not start")
    return child


def test_a_gpu_shared_by_two_deployments_reports_each_ones_memory_and_share() -> None:
    fraud, ranker, stray = sleeper("fraud-srv"), sleeper("ranker-srv"), sleeper("stray-job")
    try:
        registry = ProcessRegistry()
        claims = [
            ProcessClaim(0, fraud.pid, start_time(fraud.pid), {"deployment": "fraud-v2"}),
            ProcessClaim(1, ranker.pid, None, {"deployment": "ranker-v1", "pipeline": "rank"}),
        ]
        assert registry.register(claims) == 2
        gpu = FakeGpu(
            "GPU-5b0cf1a2-7d4e-4f9a-9c61-0a1b2c3d4e5f",
            utilization_percent=80,
            memory_used=41 * GIB,
            compute_processes=[(fraud.pid, 30 * GIB), (ranker.pid, 10 * GIB), (stray.pid, GIB)],
            process_samples=[
                (fraud.pid, 1_000, 60, 30),
                (fraud.pid, 2_000, 80, 40),
                (ranker.pid, 1_500, 10, 5),
            ],
        )
        collector = GpuCollector(IDENTITY, nvml=FakeNvml([gpu]), processes=registry)
        first = by_pid(check_points(collector.collect(NOW_NS)))
        assert first[fraud.pid].tags[catalogue.DEPLOYMENT] == "fraud-v2"
        assert first[fraud.pid].tags[catalogue.PROCESS] == "fraud-srv"
        assert first[fraud.pid].fields == {
            "memory_used_bytes": 30 * GIB,
            "sm_utilization_percent": 70.0,  # the mean of the driver's two samples
            "memory_utilization_percent": 35.0,
        }
        assert first[ranker.pid].tags[catalogue.PIPELINE] == "rank"
        assert first[ranker.pid].fields["sm_utilization_percent"] == 10.0
        # not registered: still reported, under its pid and command name
        assert first[stray.pid].tags[catalogue.PROCESS] == "stray-job"
        assert catalogue.DEPLOYMENT not in first[stray.pid].tags
        assert first[stray.pid].fields == {"memory_used_bytes": GIB}
        # no new sample from the driver (NVML_ERROR_NOT_FOUND): memory only, no stale share
        second = by_pid(collector.collect(NOW_NS + S))
        assert second[fraud.pid].fields == {"memory_used_bytes": 30 * GIB}
        # a process that exits leaves the registry at the next sample
        ranker.kill()
        ranker.wait()
        sampled = {int(tags[catalogue.PID]) for tags, _ in registry.sample()}
        assert sampled == {fraud.pid} and len(registry) == 1
    finally:
        for child in (fraud, ranker, stray):
            child.kill()
            child.wait()


def by_pid(points: list[Point]) -> dict[int, Point]:
    return {
        int(p.tags[catalogue.PID]): p for p in points if p.measurement == catalogue.GPU_PROCESS.name
    }


# --- an execution's own resources ---------------------------------------------------------
TRAINER = """
import sys, time
from fleetgauge.sdk import MetricsClient
client = MetricsClient(url=sys.argv[1], pipeline="train", flush_interval=0.1)
hold = []
with client.start_execution(inputs={"lr": 0.01}, execution_id=sys.argv[2]) as run:
    for epoch in range(8):
        hold.append(bytearray(20 * 2**20))  # 20 MB more each epoch, touched
        for i in range(0, len(hold[-1]), 4096):
            hold[-1][i] = 1
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:  # an epoch's work: one core
            pass
        run.record_list_metric_values("loss", 1 / (epoch + 1), step=epoch)
        client.flush(10)
assert client.flush(10)
"""


@pytest.mark.parametrize("backend", ["sqlite", "influxdb"])
def test_an_execution_has_the_resource_curves_of_its_process(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fg.db'}"
    else:
        harness: InfluxHarness = request.getfixturevalue("influx")
        url = harness.store_url(harness.new_database())
    agent = AgentProcess(
        tmp_path,
        *("--store", url, "--interval", "0.5", "--flush-interval", "0.3"),
        *("--process-flush-interval", "0.3", "--collectors", "process"),
    )
    with agent:
        push = f"http://127.0.0.1:{agent.push_port}"
        done = subprocess.run(
            [sys.executable, "-c", TRAINER, push, "run-res-1"], capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode()
        assert agent.stop()[0] == 0, agent.log()
    run = get_execution("run-res-1", store=url)
    assert run is not None and run["status"] == "succeeded"
    used = run["resources"]
    assert 2.0 <= used["cpu_seconds"] <= 8.0, used  # eight epochs of 0.6 s of one core
    assert used["peak_rss_bytes"] > 150 * 2**20, used  # 160 MB held by the end
    curves = {c["field"]: c for c in run["resource_curves"]}
    assert set(curves) == {"process.cpu_cores", "process.rss_bytes"}
    rss = curves["process.rss_bytes"]["values"]
    assert len(rss) >= 4 and rss[-1] > rss[0] + 60 * 2**20, rss  # it grew while it trained
    cpu = curves["process.cpu_cores"]["values"]
    assert max(cpu) > 0.5, cpu  # cores
    start, end = parse_time(run["start"]), parse_time(run["end"])
    times = [int(t.timestamp() * S) for t in curves["process.rss_bytes"]["times"]]
    assert start - 2 * S <= times[0] and times[-1] <= end + S
    # the columns of the executions table and its CSV
    [listed] = list_executions(pipeline="train", start=start / S - 1, end=end / S + 1, store=url)
    assert listed["resources"] == used
