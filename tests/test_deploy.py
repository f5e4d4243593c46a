"""The files a user installs with the agent: the example config and the systemd unit."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fleetgauge.agent.config import load_config
from fleetgauge.cli import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_example_config_loads_as_documented() -> None:
    c = load_config({}, {}, DEPLOY / "agent.toml")
    assert c.store.startswith("influxdb+http://") and c.environment == "prod"
    assert c.interval == 10.0 and c.spool_max_bytes == 256 * 1024 * 1024
    assert c.tags == {"team": "ml-platform"}
    assert (c.push_host, c.push_port) == ("127.0.0.1", 9109)
    assert c.push_histograms == {"latency_seconds": (0.01, 0.05, 0.1, 0.5, 1.0)}


def test_the_env_example_names_only_settings_the_agent_reads() -> None:
    from fleetgauge.agent.config import SETTINGS
    from fleetgauge.stores.influxdb import TOKEN_ENV

    names = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "agent.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names == {TOKEN_ENV, "FLEETGAUGE_METRICS_TOKEN", "FLEETGAUGE_PUSH_TOKEN"}
    assert names - {TOKEN_ENV} <= {s.env for s in SETTINGS}


def test_the_systemd_unit_runs_the_agent_with_its_config(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive in systemd
    unit.read(DEPLOY / "fleetgauge-agent.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(argv[1:])  # every flag it uses exists
    assert args.command == "agent" and args.config == "/etc/fleetgauge/agent.toml"
    assert service["KillSignal"] == "SIGTERM" and service["StateDirectory"] == "fleetgauge"
    assert "TOKEN" not in service.get("Environment", "")  # secrets only in EnvironmentFile
    assert int(service["LimitNOFILE"]) >= 1024  # room for both listeners' 256 connections
    if shutil.which("systemd-analyze"):  # Debian ships it with systemd; check the syntax too
        local = tmp_path / "fleetgauge-agent.service"
        text = (DEPLOY / "fleetgauge-agent.service").read_text()
        local.write_text(text.replace(argv[0], sys.executable + " -m agent", 1))
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(local)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Unknown key" not in done.stderr and "Invalid" not in done.stderr, done.stderr
