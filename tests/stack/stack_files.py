"""Test helper: the stack's files as `docker compose` reads them, without a Docker engine.

:func:`compose` loads docker-compose.yml and substitutes ``${VAR}``, ``${VAR:-default}``
and ``${VAR:?message}`` in every value as Compose does, from the variables of
``.env.example`` with each empty secret filled by :func:`filled_env` (what a user does
before ``docker compose up``). :func:`env_file` follows Compose's ``.env`` syntax for
the forms the example uses: ``KEY=VALUE``, comments, single-quoted literal values.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleetgauge.dashboard.auth import auth_line

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_DIR = ROOT / "prometheus"
DASHBOARD_PASSWORD = "correct horse battery staple"

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(ValueError):
    """A ``${VAR:?message}`` whose variable is empty: Compose stops with ``message``."""


def version() -> str:
    """The package version, which is also the tag of the image the stack builds."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=VALUE`` lines of a Compose ``.env`` file (single quotes: the literal value)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path}:{number}: {line}"
        if value[:1] in ("'", '"'):
            assert value.endswith(value[0]) and len(value) >= 2, f"{path}:{number}: quotes"
            value = value[1:-1]
        values[key] = value
    return values


def filled_env() -> dict[str, str]:
    """``.env.example`` with every empty value filled in, as a user's ``.env`` is."""
    values = env_file()
    for key, value in values.items():
        if not value:
            values[key] = f"test-{key.lower().replace('_', '-')}-0123456789abcdef"
    values["FLEETGAUGE_DASHBOARD_AUTH"] = auth_line("admin", DASHBOARD_PASSWORD)
    return values


def variables(text: str) -> dict[str, str | None]:
    """Every ``${VAR...}`` in ``text``: name -> its operator (``:-``, ``:?``...) or None."""
    return {m.group(1): m.group(2) for m in _VARIABLE.finditer(text) if m.group(1)}


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with its variables substituted, recursively through lists and dicts."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.groups()
        current = env.get(name, "")
        if op in (":-", "-") and (not current if op == ":-" else name not in env):
            return arg
        if op in (":?", "?") and (not current if op == ":?" else name not in env):
            raise MissingVariable(f"{name}: {arg}")
        return current

    return _VARIABLE.sub(substitute, value)


def compose(env: Mapping[str, str] | None = None, path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file with its variables substituted (default: :func:`filled_env`)."""
    return interpolate(yaml.safe_load(path.read_text()), filled_env() if env is None else env)


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (Compose accepts a list of KEY=VALUE too)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: str(v) for k, v in env.items()}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]
