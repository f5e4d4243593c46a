"""One import namespace and installs sized to each role, as a user meets them.

The wheel is built from this checkout the way a user builds it (``pip wheel``),
then installed without extras into a fresh virtual environment: the recording
SDK there delivers to an agent running from the test environment, the base
install's ``fleetgauge export`` reads the value back, and the commands that need
an extra say which one.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_process import AgentProcess

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("fleetgauge", "agent", "dashboard", "tests", "bench")
INSTALLED_AS = {
    "fleetgauge": "fleetgauge",
    "agent": "fleetgauge/agent",
    "dashboard": "fleetgauge/dashboard",
}
HEAVY = ("dash", "plotly", "numpy", "psutil", "apscheduler", "influxdb_client", "prometheus_client")


def _python_files() -> Iterator[Path]:
    for folder in SOURCES:
        yield from (ROOT / folder).rglob("*.py")
    yield ROOT / "scripts" / "screenshots"


def test_no_source_imports_agent_or_dashboard_as_a_top_level_package() -> None:
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("agent", "dashboard"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not offenders, offenders


def test_the_folders_refuse_to_be_imported_under_a_second_name() -> None:
    for folder in ("agent", "dashboard"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {folder}"],
            cwd=ROOT,  # the checkout's folders are importable by their own names from here
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 1
        assert f"import fleetgauge.{folder}, not {folder}" in done.stderr


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of a clean copy of what a wheel is built from (as the Dockerfile copies).

    Built in place, setuptools would reuse a ``build/`` folder left by an earlier
    build, and a module the package list forgets would still be in the wheel.
    """
    source = out / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for folder in INSTALLED_AS:
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    return next(out.glob("fleetgauge-*.whl"))


def test_every_public_name_comes_from_fleetgauge_and_recording_does_not_load_the_read_api() -> None:
    probe = (
        "import sys, fleetgauge\n"
        "print(any(m.startswith('fleetgauge.read') for m in sys.modules))\n"
        "missing = [n for n in fleetgauge.__all__ if getattr(fleetgauge, n, None) is None]\n"
        "print(missing, fleetgauge.get_metrics.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT / "tests",
    )
    assert done.stdout.split("\n")[:2] == ["False", "[] fleetgauge.read.query"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_one_top_level_package_with_every_module(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert z.read(top_level).decode().split() == ["fleetgauge"]
    assert {n.split("/")[0] for n in names} == {
        "fleetgauge",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    expected = {
        f"{INSTALLED_AS[folder]}/{path.relative_to(ROOT / folder).as_posix()}"
        for folder in INSTALLED_AS
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and (path.suffix == ".py" or "assets" in path.parts)
        and "__pycache__" not in path.parts
    }
    assert expected - set(names) == set(), "modules missing from the wheel (pyproject packages?)"


@pytest.fixture(scope="module")
def sdk_only(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``pip install fleetgauge`` (the wheel, no extras); its bin directory."""
    venv = tmp_path_factory.mktemp("sdk-only") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return venv / "bin"


def _run(
    bin_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=bin_dir,  # not the checkout: only what was installed can be imported
        env={**os.environ, **(env or {})},
    )


def test_the_base_install_has_none_of_the_agents_or_the_sites_dependencies(sdk_only: Path) -> None:
    probe = f"import importlib.util as u; print([m for m in {HEAVY!r} if u.find_spec(m)])"
    done = _run(sdk_only, "python", "-c", probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", ["agent", "dashboard"])
def test_a_command_whose_extra_is_missing_says_which_one_and_exits_2(
    sdk_only: Path, command: str
) -> None:
    done = _run(sdk_only, "fleetgauge", command)
    assert done.returncode == 2
    assert done.stderr == (
        f"fleetgauge {command} needs the '{command}' extra: pip install 'fleetgauge[{command}]'\n"
    )
    assert _run(sdk_only, "fleetgauge", command, "--help").returncode == 0  # help needs no extra


def test_the_sdk_alone_delivers_to_an_agent_and_reads_it_back(
    sdk_only: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agent = AgentProcess(tmp_path, "--store", url, "--interval", "60", "--collectors", "cpu")
    record = (
        "import fleetgauge\n"
        "fleetgauge.record_metric_value('score', 1, deployment='d')\n"
        "print(fleetgauge.flush(10))\n"
    )
    with agent:
        done = _run(
            sdk_only,
            "python",
            "-c",
            record,
            env={"FLEETGAUGE_PUSH_URL": f"http://127.0.0.1:{agent.push_port}"},
        )
        assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
        code, _ = agent.stop()
    assert code == 0, agent.log()
    export = _run(sdk_only, "fleetgauge", "export", "metrics", "--store", url)
    assert export.returncode == 0, export.stderr
    header, *rows = export.stdout.splitlines()
    assert len(rows) == 1
    row = dict(zip(header.split(","), rows[0].split(","), strict=True))
    assert (row["metric"], row["deployment"], row["value"]) == ("score", "d", "1.0")
