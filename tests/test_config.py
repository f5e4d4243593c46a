"""Agent settings: flags > environment > TOML file > defaults, and one clear error for bad ones."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fleetgauge.agent.config import AgentConfig, ConfigError, load_config, render_config


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_is_flag_then_environment_then_file_then_default(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "agent.toml",
        '[agent]\ninterval = "5s"\nenvironment = "from-file"\nworker = "file-worker"\n'
        'batch_size = 100\n[agent.tags]\nteam = "ml"\n',
    )
    env = {"FLEETGAUGE_ENVIRONMENT": "from-env", "FLEETGAUGE_WORKER": "env-worker"}
    c = load_config({"worker": "flag-worker"}, env, conf)
    assert c.worker == "flag-worker"  # flag beats env and file
    assert c.environment == "from-env"  # env beats file
    assert c.interval == 5.0 and c.batch_size == 100  # file beats default
    assert c.tags == {"team": "ml"}
    assert c.flush_interval == AgentConfig().flush_interval  # default


def test_values_are_parsed_with_units() -> None:
    c = load_config(
        {"interval": "500ms", "spool_max_bytes": "64MiB", "tags": ["a=1", "b = two"]},
        {"FLEETGAUGE_MOUNTS": "/,/data", "FLEETGAUGE_INCLUDE_LOOPBACK": "yes"},
    )
    assert c.interval == 0.5
    assert c.spool_max_bytes == 64 * 1024 * 1024
    assert c.tags == {"a": "1", "b": "two"}
    assert c.mounts == ("/", "/data")
    assert c.include_loopback is True


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"interval": "0.2"}, {}, "interval: 0.2 s is below the minimum of 0.5 s"),
        ({"interval": "soon"}, {}, "interval from flag --interval: 'soon' is not a duration"),
        ({}, {"FLEETGAUGE_METRICS_PORT": "70000"}, "metrics_port: 70000 is not a port"),
        (
            {},
            {"FLEETGAUGE_SPOOL_MAX_BYTES": "lots"},
            "spool_max_bytes from environment variable FLEETGAUGE_SPOOL_MAX_BYTES",
        ),
        ({"tags": ["worker=x"]}, {}, "use the worker setting"),
        ({"tags": ["novalue"]}, {}, "'novalue' is not key=value"),
        ({"log_level": "loud"}, {}, "log_level: 'loud' is not debug"),
        ({"worker": "x" * 300}, {}, "worker is 300 characters long"),
        ({"push_port": "9108"}, {}, "push_port: 9108 is also the metrics_port"),
        ({}, {"FLEETGAUGE_PUSH_MAX_BODY": "10"}, "push_max_body: must be between 1KiB"),
        ({"push_histograms": ["lat=0.1,fast"]}, {}, "histogram 'lat': buckets .* are not numbers"),
        ({"push_histograms": ["lat=1,1"]}, {}, "histogram 'lat': buckets must be finite and"),
    ],
)
def test_a_bad_value_names_the_setting_and_its_source(flags, env, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(flags, env)


def test_bad_config_files_say_what_and_where(tmp_path: Path) -> None:
    unknown = write(tmp_path / "a.toml", "intervall = 5\n")
    with pytest.raises(ConfigError, match=r"a.toml: unknown key 'intervall'"):
        load_config({}, {}, unknown)
    broken = write(tmp_path / "b.toml", "interval = \n")
    with pytest.raises(ConfigError, match=r"b.toml is not valid TOML"):
        load_config({}, {}, broken)
    wrong_type = write(tmp_path / "c.toml", "batch_size = 1.5\n")
    with pytest.raises(ConfigError, match=r"batch_size from .*c.toml"):
        load_config({}, {}, wrong_type)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config({}, {}, tmp_path / "missing.toml")


def test_push_histograms_from_flags_environment_and_file(tmp_path: Path) -> None:
    flags = {"push_histograms": ["latency_seconds=1,0.1", "score"]}
    assert load_config(flags, {}).push_histograms == {
        "latency_seconds": (0.1, 1.0),
        "score": (),  # the default buckets
    }
    env = {"FLEETGAUGE_PUSH_HISTOGRAMS": "a=1,2;b"}
    assert load_config({}, env).push_histograms == {"a": (1.0, 2.0), "b": ()}
    toml = write(tmp_path / "h.toml", "[agent.push_histograms]\nlat = [0.5, 1]\n")
    assert load_config({}, {}, toml).push_histograms == {"lat": (0.5, 1.0)}


def test_printed_config_reads_back_and_hides_the_token(tmp_path: Path) -> None:
    c = load_config(
        {"worker": 'w"1', "tags": ["zone=eu-1"], "push_histograms": ["lat=0.1,1"]},
        {"FLEETGAUGE_METRICS_TOKEN": "hunter2-secret", "FLEETGAUGE_PUSH_TOKEN": "push-secret-1"},
    )
    text = render_config(c)
    assert "hunter2-secret" not in text and "push-secret-1" not in text
    assert text.count("<redacted>") == 2
    back = load_config({}, {}, write(tmp_path / "back.toml", text.replace("<redacted>", "t")))
    assert back.worker == 'w"1' and back.tags == {"zone": "eu-1"}
    assert back.push_histograms == {"lat": (0.1, 1.0)}
    assert tomllib.loads(text)["agent"]["interval"] == c.interval


def test_cli_prints_config_and_fails_with_one_line(tmp_path: Path) -> None:
    env = {"FLEETGAUGE_METRICS_TOKEN": "tok-12345", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "agent", "--print-config", "--interval", "2"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "interval = 2.0" in ok.stdout and "tok-12345" not in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fleetgauge", "agent", "--interval", "0.1"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "fleetgauge: error: interval: 0.1 s is below the minimum of 0.5 s"
    ]
