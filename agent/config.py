"""Agent settings: flags > ``FLEETGAUGE_*`` environment > TOML file > defaults, checked at load.

Every setting has one entry in :data:`SETTINGS` (its flag, environment variable,
TOML key, parser, default and help), so the command line, the environment, the
config file, ``--print-config`` and the docs cannot disagree. A bad value gives
one :class:`ConfigError` naming the setting and where it came from.
"""

from __future__ import annotations

import math
import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fleetgauge.catalogue import ENVIRONMENT, RESERVED_TAG_KEYS, WORKER
from fleetgauge.net import parse_allowed_hosts
from fleetgauge.stores import STORE_ENV, default_store_url
from fleetgauge.validation import InvalidPoint, validate_name

__all__ = ["AgentConfig", "ConfigError", "SETTINGS", "load_config", "render_config"]

ENV_PREFIX = "FLEETGAUGE_"
CONFIG_ENV = "FLEETGAUGE_CONFIG"
REDACTED = "<redacted>"


class ConfigError(ValueError):
    """A setting with a bad value; the message names the setting and its source."""


def _data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "fleetgauge"


@dataclass(frozen=True)
class AgentConfig:
    """Effective settings of one agent."""

    store: str = field(default_factory=default_store_url)
    worker: str = field(default_factory=socket.gethostname)
    environment: str = "default"
    tags: dict[str, str] = field(default_factory=dict)
    interval: float = 10.0
    jitter: float = 0.0
    flush_interval: float = 10.0
    process_flush_interval: float = 10.0
    batch_size: int = 5000
    spool_dir: str = field(default_factory=lambda: str(_data_dir() / "spool"))
    spool_max_bytes: int = 256 * 1024 * 1024
    reserve_max_points: int = 40_000
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    metrics_token: str | None = None
    push_host: str = "127.0.0.1"
    push_port: int = 9109
    push_token: str | None = None
    push_max_body: int = 4 * 1024 * 1024
    push_max_reading_bytes: int = 64 * 1024 * 1024
    push_max_series: int = 30_000
    push_series_idle: float = 3600.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 0
    push_histograms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    allowed_hosts: tuple[str, ...] = ()
    collectors: tuple[str, ...] | None = None
    mounts: tuple[str, ...] | None = None
    include_loopback: bool = False
    share_store: bool = False
    host_proc: str = "/proc"
    host_root: str = "/"
    log_level: str = "info"
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Where each setting not left at its default came from (``flag --push-port``, ...)."""

    def identity_tags(self) -> dict[str, str]:
        """Tags every point of this agent carries."""
        return {**self.tags, WORKER: self.worker, ENVIRONMENT: self.environment}

    def where(self, name: str) -> str:
        """A setting as an error line names it: ``push_port 9109 (from flag --push-port)``."""
        value = REDACTED if _BY_NAME[name].secret else getattr(self, name)
        return f"{name} {value} ({self.sources.get(name, 'the default')})"


# --- value parsers: text (flag, env) or TOML value -> typed value ------------------------
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SECOND_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _SECONDS.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration (examples: 10, 0.5s, 500ms, 1m)")
        seconds = float(match.group(1)) * _SECOND_UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("must be finite")
    return seconds


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size (examples: 1048576, 512MiB, 2GB)")
    unit = (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]]
    return int(float(match.group(1)) * base**power)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    return tuple(_text(item).strip() for item in items if str(item).strip())


def _hosts(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(h for item in items for h in parse_allowed_hosts(_text(item)))


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): _text(v) for k, v in value.items()}
    items = value if isinstance(value, list) else str(value).split(",")
    tags = {}
    for item in items:
        key, sep, val = _text(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not key=value")
        tags[key.strip()] = val.strip()
    return tags


def _histograms(value: Any) -> dict[str, tuple[float, ...]]:
    """``METRIC`` or ``METRIC=B1,B2,...`` entries (``;`` between entries in one text)."""
    if isinstance(value, Mapping):
        entries = {str(k): v for k, v in value.items()}
    else:
        items = value if isinstance(value, list) else str(value).split(";")
        entries = {}
        for item in items:
            name, sep, bounds = _text(item).partition("=")
            if name.strip():
                entries[name.strip()] = bounds.split(",") if sep and bounds.strip() else []
    histograms = {}
    for name, bounds in entries.items():
        if not isinstance(bounds, list):
            raise ValueError(f"histogram {name!r}: buckets must be a list of numbers")
        try:
            upper = tuple(sorted(float(b) for b in bounds))
        except (TypeError, ValueError):
            raise ValueError(f"histogram {name!r}: buckets {bounds!r} are not numbers") from None
        if not all(math.isfinite(b) for b in upper) or len(set(upper)) != len(upper):
            raise ValueError(f"histogram {name!r}: buckets must be finite and distinct")
        histograms[name] = upper
    return histograms


@dataclass(frozen=True)
class Setting:
    """One agent setting: how it is spelled in each source and how its value is read."""

    name: str
    parse: Callable[[Any], Any]
    help: str
    metavar: str = "VALUE"
    secret: bool = False
    repeat_flag: str | None = None  # a repeatable flag, one entry per use (--tag K=V)

    @property
    def flag(self) -> str:
        return self.repeat_flag or "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return STORE_ENV if self.name == "store" else ENV_PREFIX + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("store", _text, "store URL (see 'fleetgauge --help')", "URL"),
    Setting("worker", _text, "worker name on every point (default: the hostname)", "NAME"),
    Setting("environment", _text, "environment on every point (default: default)", "NAME"),
    Setting(
        "tags",
        _tags,
        "extra static tag KEY=VALUE on every point this agent writes or takes (repeatable)",
        "KEY=VALUE",
        repeat_flag="--tag",
    ),
    Setting("interval", _seconds, "seconds between samples, at least 0.5 (default: 10)", "SECONDS"),
    Setting(
        "jitter",
        _seconds,
        "start the schedule after a random delay of up to this, so a fleet does not sample"
        " and write in lockstep; each agent then stays on a regular grid (default: 0)",
        "SECONDS",
    ),
    Setting(
        "flush_interval",
        _seconds,
        "seconds between writes to the store; a SIGKILL loses at most this much (default: 10)",
        "SECONDS",
    ),
    Setting(
        "process_flush_interval",
        _seconds,
        "seconds between writes of the registered processes' samples (the process"
        " measurement): each process is a series of its own and a write costs per series, so"
        " they are written in fewer, larger writes; never more often than flush_interval,"
        " and a SIGKILL loses at most this much of them (default: 10)",
        "SECONDS",
    ),
    Setting("batch_size", _int, "points per store write (default: 5000)", "POINTS"),
    Setting(
        "spool_dir",
        _text,
        "directory where points wait while the store is down"
        " (default: $XDG_DATA_HOME/fleetgauge/spool)",
        "DIR",
    ),
    Setting(
        "spool_max_bytes",
        _size,
        "spool size limit; when full, pushes are answered 503 and samples wait in memory"
        " (default: 256MiB)",
        "SIZE",
    ),
    Setting(
        "reserve_max_points",
        _int,
        "samples held in memory while neither the store nor the spool takes them (pushes get"
        " 503 meanwhile; values pushed before that are all kept); newer samples beyond it are"
        " dropped and counted (default: 40000, about 40 MB)",
        "POINTS",
    ),
    Setting("metrics_host", _text, "address /metrics listens on (default: 127.0.0.1)", "HOST"),
    Setting("metrics_port", _int, "port of /metrics, 0 to disable (default: 9108)", "PORT"),
    Setting(
        "metrics_token",
        _text,
        "bearer token /metrics requires; needed off loopback. Prefer the environment"
        " variable: a flag is visible to other users in the process list",
        "TOKEN",
        secret=True,
    ),
    Setting(
        "push_host",
        _text,
        "address the push endpoint for model metrics listens on (default: 127.0.0.1)",
        "HOST",
    ),
    Setting(
        "push_port",
        _int,
        "port of the push endpoint (POST /v1/metrics, /v1/events), 0 to disable (default: 9109)",
        "PORT",
    ),
    Setting(
        "push_token",
        _text,
        "bearer token the push endpoint requires; needed off loopback. Prefer the"
        " environment variable FLEETGAUGE_PUSH_TOKEN",
        "TOKEN",
        secret=True,
    ),
    Setting(
        "push_max_body",
        _size,
        "largest push request body; a bigger one is answered 413 (default: 4MiB)",
        "SIZE",
    ),
    Setting(
        "push_max_reading_bytes",
        _size,
        "bytes of push bodies over 256KiB read at once; one more is answered 503 unread, so"
        " slow clients cannot fill memory (default: 64MiB)",
        "SIZE",
    ),
    Setting(
        "push_max_series",
        _int,
        "distinct pushed series (a metric, event or execution with one set of names) active at"
        " once; a value of a new series beyond is refused (429, counted) while known series"
        " keep flowing (default: 30000, about 100 MB)",
        "N",
    ),
    Setting(
        "push_series_idle",
        _seconds,
        "seconds without a value after which a pushed series no longer counts as active;"
        " every so often the agent's per-series caches and /metrics forget the series idle"
        " that long (default: 3600)",
        "SECONDS",
    ),
    Setting(
        "header_timeout",
        _seconds,
        "seconds a request's line and headers may take to arrive on either listener; then"
        " the connection is closed (default: 10)",
        "SECONDS",
    ),
    Setting(
        "body_timeout",
        _seconds,
        "seconds a push body may take to arrive; then the connection is closed (default: 30)",
        "SECONDS",
    ),
    Setting(
        "max_connections",
        _int,
        "open connections per listener; at the limit the one waiting longest for its"
        " headers is closed for a new one (default: 0, from the open-file limit: at most 256)",
        "N",
    ),
    Setting(
        "push_histograms",
        _histograms,
        "also expose pushed METRIC as a Prometheus histogram, with bucket bounds B1,B2,..."
        " (default buckets when none are given; repeatable; ';' between entries in the"
        " environment variable)",
        "METRIC[=B1,B2,...]",
        repeat_flag="--push-histogram",
    ),
    Setting(
        "allowed_hosts",
        _hosts,
        "comma-separated names /metrics and the push endpoint also answer to in the Host"
        " header, such as the name Prometheus scrapes this agent by or a proxy's ('*': any)."
        " Always answered: localhost and loopback addresses, and off loopback any IP address"
        " and this machine's host name; any other Host or Origin is refused (403), so a web"
        " page cannot reach the agent by DNS rebinding",
        "NAMES",
    ),
    Setting(
        "collectors",
        _names,
        "comma-separated collectors to run (default: all of cpu, memory, disk, network,"
        " gpu, container)",
        "NAMES",
    ),
    Setting("mounts", _names, "comma-separated mount points to report (default: all real ones)"),
    Setting("include_loopback", _bool, "also report the loopback network interface", "BOOL"),
    Setting(
        "share_store",
        _bool,
        "let several agents write one SQLite file (they take turns for its lock); by default"
        " an agent refuses to start on a file another agent writes",
        "BOOL",
    ),
    Setting(
        "host_proc",
        _text,
        "the procfs CPU, memory, disk I/O and network are read from: the host's /proc mounted"
        " into a container (for example /host/proc) makes the agent report the host"
        " (default: /proc)",
        "DIR",
    ),
    Setting(
        "host_root",
        _text,
        "where the host's root filesystem is mounted (for example /rootfs): disks are then the"
        " host's mounts, listed in HOST_PROC/1/mounts and measured under this directory"
        " (default: /)",
        "DIR",
    ),
    Setting("log_level", _text, "debug, info, warning or error (default: info)", "LEVEL"),
)
_BY_NAME = {s.name: s for s in SETTINGS}
assert set(_BY_NAME) == {f.name for f in fields(AgentConfig)} - {"sources"}


def load_config(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> AgentConfig:
    """Merge the sources (flags > env > file > defaults) and check the result.

    ``flags`` holds only the flags given (raw text, or lists for repeatable
    ones); ``config_file`` defaults to ``$FLEETGAUGE_CONFIG``.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def take(name: str, raw: Any, source: str) -> None:
        values[name], sources[name] = _parse(name, raw, source), source

    path = config_file or env.get(CONFIG_ENV)
    if path:
        for key, raw in _read_toml(Path(path)).items():
            take(key, raw, f"{path}")
    for s in SETTINGS:
        if s.env in env and env[s.env] != "":
            take(s.name, env[s.env], f"environment variable {s.env}")
    for name, raw in flags.items():
        if raw is not None:
            take(name, raw, f"flag {_BY_NAME[name].flag}")
    config = AgentConfig(**values, sources={k: f"from {v}" for k, v in sources.items()})
    _check(config)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    table = data.get("agent", data) if isinstance(data.get("agent"), dict) else data
    unknown = sorted(set(table) - set(_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key {unknown[0]!r} (known: {', '.join(_BY_NAME)})"
        )
    return table


def _parse(name: str, raw: Any, source: str) -> Any:
    try:
        return _BY_NAME[name].parse(raw)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{name} from {source}: {e}") from e


def _check(c: AgentConfig) -> None:
    def bad(name: str, why: str) -> ConfigError:
        return ConfigError(f"{name}: {why}")

    if c.interval < 0.5:
        raise bad("interval", f"{c.interval:g} s is below the minimum of 0.5 s")
    if not 0 <= c.jitter <= 3600:
        raise bad("jitter", "must be between 0 and 3600 seconds")
    if c.flush_interval < 0.1:
        raise bad("flush_interval", "must be at least 0.1 s")
    if not 0.1 <= c.process_flush_interval <= 3600:
        raise bad("process_flush_interval", "must be between 0.1 and 3600 seconds")
    if not 1 <= c.batch_size <= 1_000_000:
        raise bad("batch_size", "must be between 1 and 1000000")
    if c.spool_max_bytes < 1024 * 1024:
        raise bad("spool_max_bytes", "must be at least 1MiB")
    if not 0 <= c.reserve_max_points <= 10_000_000:
        raise bad("reserve_max_points", "must be between 0 and 10000000")
    for name in ("metrics_port", "push_port"):
        if not 0 <= getattr(c, name) <= 65535:
            raise bad(name, f"{getattr(c, name)} is not a port (0-65535)")
    if c.push_port and c.push_port == c.metrics_port and c.push_host == c.metrics_host:
        raise bad("push_port", f"{c.push_port} is also the metrics_port")
    if not 1024 <= c.push_max_body <= 256 * 1024 * 1024:
        raise bad("push_max_body", "must be between 1KiB and 256MiB")
    if not c.push_max_body <= c.push_max_reading_bytes <= 4 * 1024 * 1024 * 1024:
        raise bad("push_max_reading_bytes", "must be between push_max_body and 4GiB")
    if not 1 <= c.push_max_series <= 10_000_000:
        raise bad("push_max_series", "must be between 1 and 10000000")
    if not 1 <= c.push_series_idle <= 30 * 86400:
        raise bad("push_series_idle", "must be between 1 second and 30 days")
    for name in ("header_timeout", "body_timeout"):
        if not 0.5 <= getattr(c, name) <= 3600:
            raise bad(name, "must be between 0.5 and 3600 seconds")
    if not 0 <= c.max_connections <= 100_000:
        raise bad("max_connections", "must be between 0 (automatic) and 100000")
    try:
        for name in c.push_histograms:
            validate_name("push_histograms metric", name)
    except InvalidPoint as e:
        raise ConfigError(str(e)) from e
    for name in ("host_proc", "host_root"):
        if not os.path.isabs(getattr(c, name)):
            raise bad(name, f"{getattr(c, name)!r} is not an absolute path")
    if c.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise bad("log_level", f"{c.log_level!r} is not debug, info, warning or error")
    try:
        validate_name("worker", c.worker)
        validate_name("environment", c.environment)
        for key, value in c.tags.items():
            validate_name(f"tag key {key!r}", key)
            validate_name(f"tag {key!r}", value)
    except InvalidPoint as e:
        raise ConfigError(str(e)) from e
    for key in c.tags:
        if key in (WORKER, ENVIRONMENT):
            raise bad("tags", f"use the {key} setting, not a tag named {key!r}")
        if key in RESERVED_TAG_KEYS:
            raise bad("tags", f"tag key {key!r} is reserved")


def render_config(c: AgentConfig) -> str:
    """The effective settings as a TOML file that ``--config`` reads back; secrets redacted."""
    lines = ["# fleetgauge agent: effective configuration", "[agent]"]
    for s in SETTINGS:
        value = getattr(c, s.name)
        if value is None:
            lines.append(f"# {s.name} = (not set)")
        elif s.secret:
            lines.append(f'{s.name} = "{REDACTED}"')
        elif not isinstance(value, dict):
            lines.append(f"{s.name} = {_toml(value)}")
    for s in SETTINGS:
        table = getattr(c, s.name)
        if isinstance(table, dict) and table:
            lines.append(f"[agent.{s.name}]")
            lines.extend(f"{_toml(k)} = {_toml(v)}" for k, v in sorted(table.items()))
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value)
    escaped = "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'
