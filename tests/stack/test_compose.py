"""docker-compose.yml, the Dockerfile and .env.example, as a user runs them.

No Docker engine here: the files are read the way Compose and Docker read them
(stack_files), every name they pass to fleetgauge is checked against what fleetgauge
really reads, and the commands they run (the agent, the dashboard, the health checks)
are run for real.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import stack_files as sf
import yaml
from agent_process import AgentProcess
from influx_server import free_port

from fleetgauge.agent.collectors import COLLECTOR_NAMES
from fleetgauge.agent.config import SETTINGS, AgentConfig, load_config
from fleetgauge.agent.stack import AGENT_JOB
from fleetgauge.cli import build_parser
from fleetgauge.dashboard.auth import AUTH_ENV
from fleetgauge.stores import STORE_ENV, open_store
from fleetgauge.stores.influxdb import TOKEN_ENV

SERVICES = {"influxdb", "prometheus", "grafana", "agent", "dashboard"}
EXACT_TAG = re.compile(r"^[a-z0-9][a-z0-9./-]*:v?\d+\.\d+\.\d+$")
AGENT_ENV = {s.env for s in SETTINGS} | {TOKEN_ENV}


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> host address it is published on."""
    ports = {}
    for entry in service.get("ports", []):
        address, host_port, container_port = entry.rsplit(":", 2)
        assert host_port == container_port, entry
        ports[int(container_port)] = address
    return ports


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test  # exec form: no shell inside the image needed
    return test[1:]


def dashboard_env_reads(names: set[str], monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Those of ``names`` that change what ``fleetgauge dashboard`` parses when set."""
    read = set()
    for name in names:
        monkeypatch.delenv(name, raising=False)
        before = vars(build_parser().parse_args(["dashboard"]))
        monkeypatch.setenv(name, "8123" if name.endswith("_PORT") else "/sentinel")
        if vars(build_parser().parse_args(["dashboard"])) != before:
            read.add(name)
        monkeypatch.delenv(name)
    return read


# --- the compose file -------------------------------------------------------------------
def test_every_service_runs_an_image_pinned_to_an_exact_version() -> None:
    services = sf.compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        image = service["image"]
        assert EXACT_TAG.match(image) and "latest" not in image, (name, image)
        if "build" in service:  # agent and dashboard: this repository's image, one tag
            assert service["build"] == "." and image == f"fleetgauge:{sf.version()}", name
    (base,) = [args for op, args in sf.dockerfile() if op == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base


def test_every_repository_path_the_stack_mounts_exists() -> None:
    services = sf.compose()["services"]
    mounted = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, target = volume.split(":")[:2]
            else:
                source, target = volume.get("source", ""), volume["target"]
            if source.startswith("."):
                assert (sf.ROOT / source).exists(), f"{name} mounts missing {source}"
                mounted[source.removeprefix("./")] = (name, target)
    assert mounted["grafana/provisioning"] == ("grafana", "/etc/grafana/provisioning")
    assert mounted["grafana/dashboards"] == ("grafana", "/var/lib/grafana/dashboards")
    # prometheus.yml's relative paths (rule_files, file_sd) resolve against its directory
    config = yaml.safe_load((sf.PROMETHEUS_DIR / "prometheus.yml").read_text())
    flag = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    config_dir = Path(flag.split("=", 1)[1]).parent
    assert mounted["prometheus/prometheus.yml"] == (
        "prometheus",
        str(config_dir / "prometheus.yml"),
    )
    sd_files = [
        f
        for job in config["scrape_configs"]
        for sd in job.get("file_sd_configs", [])
        for f in sd["files"]
    ]
    for pattern in [*config["rule_files"], *sd_files]:
        folder = pattern.split("/")[0]
        assert mounted[f"prometheus/{folder}"] == ("prometheus", str(config_dir / folder)), pattern
    rules = list(sf.PROMETHEUS_DIR.glob(config["rule_files"][0]))
    assert rules, f"no rule file matches {config['rule_files'][0]} in prometheus/"


def test_the_agent_container_is_configured_to_report_the_host() -> None:
    stack = sf.compose()
    agent = stack["services"]["agent"]
    env = sf.service_env(agent)
    unknown = {k for k in env if k.startswith("FLEETGAUGE_")} - AGENT_ENV
    assert not unknown, f"the agent reads no such variable: {unknown}"
    config = load_config({}, env)  # the agent accepts every value as given
    assert agent["pid"] == "host" and agent["network_mode"] == "host"
    binds = {}
    for volume in agent["volumes"]:
        if isinstance(volume, str) and volume.startswith("/"):
            source, target, mode = volume.split(":")
            binds[target] = (source, mode == "ro")
        elif isinstance(volume, dict):
            binds[volume["target"]] = (volume["source"], volume.get("read_only", False))
    assert binds[config.host_proc] == ("/proc", True)
    assert binds[config.host_root] == ("/", True)
    assert config.collectors and set(config.collectors) <= set(COLLECTOR_NAMES)
    assert "container" not in config.collectors  # the container's limits are not the host's
    # listeners off loopback, each with its token from .env
    filled = sf.filled_env()
    assert config.metrics_host == config.push_host == "0.0.0.0"
    assert config.metrics_token == filled["FLEETGAUGE_METRICS_TOKEN"]
    assert config.push_token == filled["FLEETGAUGE_PUSH_TOKEN"]
    # the store is the stack's InfluxDB, reached on the host's loopback it is published on
    influx = stack["services"]["influxdb"]
    influx_env = sf.service_env(influx)
    url = urllib.parse.urlsplit(config.store)
    assert (url.scheme, url.hostname, url.port) == ("influxdb+http", "127.0.0.1", 8086)
    assert url.path.strip("/") == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    assert url.query == f"org={influx_env['DOCKER_INFLUXDB_INIT_ORG']}"
    assert env[TOKEN_ENV] == influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert published(influx)[8086] == filled["INFLUXDB_PUBLISH_ADDRESS"] == "127.0.0.1"


def test_the_dashboard_gets_only_variables_it_reads_and_is_published_on_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = sf.compose()
    dashboard = stack["services"]["dashboard"]
    env = sf.service_env(dashboard)
    names = {k for k in env if k.startswith("FLEETGAUGE_")}
    known = {STORE_ENV, TOKEN_ENV, AUTH_ENV}
    unknown = names - known - dashboard_env_reads(names - known, monkeypatch)
    assert not unknown, f"the dashboard reads no such variable: {unknown}"
    assert {"FLEETGAUGE_DASHBOARD_HOST", "FLEETGAUGE_DASHBOARD_PORT", AUTH_ENV} <= set(env)
    assert env[STORE_ENV] == "influxdb+http://influxdb:8086/fleetgauge?org=fleetgauge"
    assert published(dashboard) == {8050: "127.0.0.1"}
    assert published(stack["services"]["grafana"]) == {3000: "127.0.0.1"}
    assert published(stack["services"]["prometheus"]) == {9090: "127.0.0.1"}


def test_grafana_gets_its_admin_password_and_the_influx_token() -> None:
    stack = sf.compose()
    grafana = stack["services"]["grafana"]
    env = sf.service_env(grafana)
    filled = sf.filled_env()
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == filled["GRAFANA_ADMIN_PASSWORD"]
    assert env[TOKEN_ENV] == filled[TOKEN_ENV]
    assert grafana["depends_on"] == {
        "influxdb": {"condition": "service_healthy"},
        "prometheus": {"condition": "service_healthy"},
    }
    # what the provisioning files expect of the stack: its variables and its services
    provisioning = sorted((sf.ROOT / "grafana/provisioning").rglob("*.yml"))
    assert provisioning
    for path in provisioning:
        text = path.read_text()
        assert set(sf.variables(text)) <= set(env), (path, set(sf.variables(text)) - set(env))
        for host, port in re.findall(r"url: http://([a-z0-9-]+):(\d+)", text):
            assert int(port) in published(stack["services"][host]), (path, host, port)


def test_the_gpu_override_gives_the_agent_every_nvidia_gpu() -> None:
    override = sf.compose(path=sf.COMPOSE_GPU)
    assert set(override["services"]) == {"agent"}
    devices = override["services"]["agent"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]


def test_every_service_has_a_healthcheck_and_restarts() -> None:
    for name, service in sf.compose()["services"].items():
        assert healthcheck_argv(service), name
        assert service["restart"] == "unless-stopped", name


# --- secrets and .env -------------------------------------------------------------------
def test_every_variable_compose_uses_is_in_env_example_and_no_secret_is_committed() -> None:
    example = sf.env_file()
    used: dict[str, str | None] = {}
    for path in (sf.COMPOSE, sf.COMPOSE_GPU):
        used.update(sf.variables(path.read_text()))
    assert set(used) <= set(example), set(used) - set(example)
    required = {name for name, op in used.items() if op == ":?"}
    secrets = {k for k in example if re.search(r"TOKEN|PASSWORD|AUTH", k)}
    assert required == secrets  # compose refuses to start while one is empty
    assert all(example[name] == "" for name in secrets), "secrets stay empty in the example"
    for name in secrets:  # a secret left empty stops compose with its name
        with pytest.raises(sf.MissingVariable, match=f"^{name}: set {name} in .env"):
            sf.compose(env={**sf.filled_env(), name: ""})


def test_dot_env_is_ignored_by_git_and_kept_out_of_the_image() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=sf.ROOT, check=False)
    assert ignored.returncode == 0, ".env is not git-ignored"
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=sf.ROOT, capture_output=True, text=True
    )
    assert tracked.stdout == ""
    dockerignore = set((sf.ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "bench/out", "*.db"} <= dockerignore


def test_prometheus_gets_the_agents_metrics_token_as_a_compose_secret() -> None:
    stack = sf.compose()
    (grant,) = stack["services"]["prometheus"]["secrets"]
    assert grant["mode"] == 0o444  # written owned by root; Prometheus runs as nobody
    secret = stack["secrets"][grant["source"]]
    assert secret == {"environment": "FLEETGAUGE_METRICS_TOKEN"}
    config = yaml.safe_load((sf.PROMETHEUS_DIR / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == AGENT_JOB)
    assert job["authorization"] == {
        "type": "Bearer",
        "credentials_file": f"/run/secrets/{grant['source']}",
    }
    # the agent shares the host's network; Prometheus reaches it through the Docker host
    assert "host.docker.internal:host-gateway" in stack["services"]["prometheus"]["extra_hosts"]
    port = sf.service_env(stack["services"]["agent"])["FLEETGAUGE_METRICS_PORT"]
    assert f"host.docker.internal:{port}" in job["static_configs"][0]["targets"]


# --- the image --------------------------------------------------------------------------
def test_the_image_runs_fleetgauge_as_an_unprivileged_user_on_the_documented_ports() -> None:
    steps = sf.dockerfile()
    by_op: dict[str, list[str]] = {}
    for op, args in steps:
        by_op.setdefault(op, []).append(args)
    assert json.loads(by_op["ENTRYPOINT"][-1]) == ["fleetgauge"]
    with open(sf.ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["fleetgauge"] == "fleetgauge.cli:main"
    cmd = json.loads(by_op["CMD"][-1])
    assert build_parser().parse_args(cmd).command == "agent"
    user = by_op["USER"][-1].split(":")[0]
    assert user not in ("0", "root") and user.isdigit()
    exposed = {int(p) for args in by_op["EXPOSE"] for p in args.split()}
    defaults = AgentConfig()
    dashboard_port = build_parser().parse_args(["dashboard"]).port
    assert exposed == {defaults.metrics_port, defaults.push_port, dashboard_port}
    installs = [a for a in by_op["RUN"] if "pip install" in a]
    # the image runs both the agent and the dashboard: the package with every extra
    assert installs and all(re.search(r"pip install '\.\[all\]'(\s|$)", a) for a in installs)
    for args in by_op["COPY"]:  # everything copied is in the build context
        for source in args.split()[:-1]:
            assert (sf.ROOT / source).exists(), source
    check = by_op["HEALTHCHECK"][-1]
    assert json.loads(check.split("CMD", 1)[1]) == ["python", "-m", "fleetgauge.agent.probe"]
    agent = sf.compose()["services"]["agent"]
    assert healthcheck_argv(agent) == ["python", "-m", "fleetgauge.agent.probe"]


def test_the_commands_compose_runs_are_fleetgauge_commands() -> None:
    services = sf.compose()["services"]
    assert build_parser().parse_args(services["agent"]["command"]).command == "agent"
    assert build_parser().parse_args(services["dashboard"]["command"]).command == "dashboard"
    for name in ("agent", "dashboard"):  # room for the listeners' connection limits
        assert services[name]["ulimits"]["nofile"]["soft"] >= 1024, name


# --- the health checks and the dashboard, run for real ----------------------------------
def run_healthcheck(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    assert argv[:3] == ["python", "-m", "fleetgauge.agent.probe"]
    return subprocess.run(
        [sys.executable, *argv[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def test_the_agent_healthcheck_passes_only_while_its_metrics_answer(tmp_path: Path) -> None:
    argv = healthcheck_argv(sf.compose()["services"]["agent"])
    token = "agent-healthcheck-token-0123456789"
    agent = AgentProcess(
        tmp_path,
        "--store",
        f"sqlite:///{tmp_path / 'a.db'}",
        "--metrics-host",
        "0.0.0.0",
        env={"FLEETGAUGE_METRICS_TOKEN": token},
    )
    port = str(agent.metrics_port)
    with agent:
        healthy = run_healthcheck(argv, {"FLEETGAUGE_METRICS_PORT": port, **agent.env})
        assert healthy.returncode == 0, healthy.stderr
        wrong = {"FLEETGAUGE_METRICS_PORT": port, "FLEETGAUGE_METRICS_TOKEN": "wrong"}
        refused = run_healthcheck(argv, wrong)
        assert refused.returncode == 1 and "HTTP 401" in refused.stderr
        assert "wrong" not in refused.stderr  # never the token
        agent.stop()
    gone = run_healthcheck(argv, {"FLEETGAUGE_METRICS_PORT": port, **agent.env})
    assert gone.returncode == 1 and "no answer" in gone.stderr


def start_dashboard(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = sf.compose()["services"]["dashboard"]["command"]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetgauge", *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )


def test_the_dashboard_as_compose_runs_it_asks_for_a_password_and_is_healthy(
    tmp_path: Path,
) -> None:
    dashboard = sf.compose()["services"]["dashboard"]
    env = sf.service_env(dashboard)
    port = free_port()
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    open_store(store).close()
    env.update({STORE_ENV: store, "FLEETGAUGE_DASHBOARD_PORT": str(port)})  # no InfluxDB here
    argv = healthcheck_argv(dashboard)
    assert argv[3] == "http://127.0.0.1:8050/"
    argv[3] = f"http://127.0.0.1:{port}/"
    log = tmp_path / "dashboard.log"
    proc = start_dashboard(env, log)
    try:
        deadline = time.monotonic() + 60
        while (check := run_healthcheck(argv, {})).returncode and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert check.returncode == 0, check.stderr + log.read_text()
        # the 200-only check fails: the site answers 401 without the password
        strict = run_healthcheck([*argv[:4], "--expect", "200"], {})
        assert strict.returncode == 1 and "HTTP 401" in strict.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def test_the_dashboard_refuses_to_listen_beyond_loopback_without_users(tmp_path: Path) -> None:
    env = sf.service_env(sf.compose()["services"]["dashboard"])
    env.update({AUTH_ENV: "", STORE_ENV: f"sqlite:///{tmp_path / 'fleet.db'}"})
    log = tmp_path / "dashboard.log"
    proc = start_dashboard(env, log)
    assert proc.wait(60) == 2
    assert "0.0.0.0" in log.read_text() and "Traceback" not in log.read_text()


# --- the README -------------------------------------------------------------------------
def readme_commands(*sections: str) -> list[list[str]]:
    """The shell commands of the README's ``bash`` blocks in ``sections``, as argv lists."""
    text = (sf.ROOT / "README.md").read_text()
    commands = []
    for title in sections:
        body = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        lines = re.findall(r"`(docker compose [^`]+)`", body)  # inline ones too
        for block in re.findall(r"```bash\n(.*?)```", body, re.S):
            lines.extend(block.replace("\\\n", " ").splitlines())
        for line in lines:
            for part in re.split(r"\s&&\s", line):
                argv = shlex.split(part, comments=True)
                if argv:
                    commands.append(argv)
    return commands


def test_the_readme_stack_commands_use_the_files_services_and_ports_there_are() -> None:
    stack = sf.compose()
    image = stack["services"]["agent"]["image"]
    seen = set()
    for argv in readme_commands("Run the full stack", "Add a worker"):
        seen.add(argv[0] if argv[0] != "docker" else f"docker {argv[1]}")
        if argv[0] == "cp":
            assert (sf.ROOT / argv[1]).is_file(), argv
        elif argv[0] == "fleetgauge":
            build_parser().parse_args(argv[1:])
        elif argv[0] == "export":
            names = {a.split("=")[0] for a in argv[1:]}
            assert names <= AGENT_ENV, names - AGENT_ENV
        elif argv[:2] == ["docker", "build"]:
            assert argv[argv.index("-t") + 1] == image and argv[-1] == "."
        elif argv[:2] == ["docker", "run"]:
            at = argv.index(image)  # the image the stack builds
            build_parser().parse_args(argv[at + 1 :])
            names = {argv[i + 1].split("=")[0] for i, a in enumerate(argv) if a == "-e"}
            assert names <= AGENT_ENV, names - AGENT_ENV
        elif argv[:2] == ["docker", "compose"]:
            files = [argv[i + 1] for i, a in enumerate(argv) if a == "-f"]
            assert all((sf.ROOT / f).is_file() for f in files), files
            rest = [a for i, a in enumerate(argv[2:], 2) if a != "-f" and argv[i - 1] != "-f"]
            if rest[0] in ("exec", "run", "kill", "logs", "restart"):
                service = next(a for a in rest[1:] if not a.startswith("-") and a != "SIGHUP")
                assert service in stack["services"], argv
    assert {"cp", "docker build", "docker compose", "docker run", "fleetgauge"} <= seen
    text = (sf.ROOT / "README.md").read_text().split("\n## Run the full stack\n", 1)[1]
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/", text.split("\n## Run the tests\n")[0])
    ports = {p for s in stack["services"].values() for p in published(s)}
    assert urls and {int(p) for p in urls} <= ports
