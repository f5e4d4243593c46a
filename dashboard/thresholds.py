"""The resources the site shows a card and a graph for, and the thresholds that judge them.

Each resource names a measurement and field(s) of the catalogue (``fleetgauge.catalogue``);
nothing here spells a stored name by hand, so a renamed field breaks at import.
Thresholds come from defaults, a TOML file (``--thresholds``) and ``--threshold``
flags, in that order of precedence (a flag wins). ``gpu_idle`` is not a resource but
the "allocated but idle" judgement: ``below`` (GPU utilisation %, default 5) and
``share`` (of the time a process held memory on the GPU, default 0.5); in a file
``[gpu_idle] below = 5  share = 0.5``, as a flag ``--threshold gpu_idle=5,0.5``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetgauge import catalogue
from fleetgauge.catalogue import Measurement

__all__ = [
    "Resource",
    "RESOURCES",
    "resource",
    "Threshold",
    "Thresholds",
    "DEFAULT_OVER_SHARE",
    "IdleThreshold",
    "GPU_IDLE",
    "load_thresholds",
]


@dataclass(frozen=True)
class Resource:
    """One card and one graph: a catalogue field per worker (or the sum of several)."""

    key: str
    title: str
    measurement: Measurement
    fields: tuple[str, ...]
    unit: str
    container_field: str | None = None
    optional: bool = False

    @property
    def is_percent(self) -> bool:
        """Percentages average across devices and workers; rates and bytes add up."""
        return self.unit == catalogue.PERCENT

    @property
    def device_tags(self) -> tuple[str, ...]:
        """Tags that tell one GPU, mount or interface of a worker from another."""
        return self.measurement.device_tags


def _fields(m: Measurement, *names: str) -> tuple[str, ...]:
    return tuple(m.get_field(n).name for n in names)


def _one(m: Measurement, name: str) -> str:
    return m.get_field(name).name


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "cpu",
        "CPU",
        catalogue.CPU,
        _fields(catalogue.CPU, "usage_percent"),
        catalogue.PERCENT,
        _one(catalogue.CONTAINER, "cpu_used_percent"),
    ),
    Resource(
        "memory",
        "Memory",
        catalogue.MEMORY,
        _fields(catalogue.MEMORY, "used_percent"),
        catalogue.PERCENT,
        _one(catalogue.CONTAINER, "memory_used_percent"),
    ),
    Resource(
        "gpu",
        "GPU utilisation",
        catalogue.GPU_MEASUREMENT,
        _fields(catalogue.GPU_MEASUREMENT, "utilization_percent"),
        catalogue.PERCENT,
    ),
    Resource(
        "gpu_memory",
        "GPU memory",
        catalogue.GPU_MEASUREMENT,
        _fields(catalogue.GPU_MEASUREMENT, "memory_used_percent"),
        catalogue.PERCENT,
    ),
    Resource(
        "disk", "Disk", catalogue.DISK, _fields(catalogue.DISK, "used_percent"), catalogue.PERCENT
    ),
    Resource(
        "network",
        "Network",
        catalogue.NETWORK,
        _fields(catalogue.NETWORK, "receive_bytes_per_second", "transmit_bytes_per_second"),
        catalogue.BYTES_PER_SECOND,
        optional=True,
    ),
)
"""Cards and graphs of the resources page, in display order."""

_BY_KEY = {r.key: r for r in RESOURCES}


def resource(key: str) -> Resource:
    """The resource called ``key``; ValueError naming the known ones."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise ValueError(f"unknown resource {key!r} (known: {', '.join(_BY_KEY)})") from None


@dataclass(frozen=True)
class Threshold:
    """Levels a worker's sustained value is judged against; None: no such level."""

    warning: float | None
    critical: float | None


DEFAULT_OVER_SHARE = 0.25
"""A worker is over a level when it stayed above it for this share of its samples."""
GPU_IDLE = "gpu_idle"


@dataclass(frozen=True)
class IdleThreshold:
    """A GPU is "allocated but idle" when, for at least ``share`` of the time a process held
    memory on it, its utilisation was under ``below`` percent."""

    below: float = 5.0
    share: float = 0.5


_PERCENT_DEFAULT = Threshold(80.0, 95.0)


@dataclass(frozen=True)
class Thresholds:
    """Threshold per resource key and the share of time that makes a worker "over"."""

    levels: Mapping[str, Threshold] = field(
        default_factory=lambda: {
            r.key: _PERCENT_DEFAULT if r.is_percent else Threshold(None, None) for r in RESOURCES
        }
    )
    over_share: float = DEFAULT_OVER_SHARE
    gpu_idle: IdleThreshold = field(default_factory=IdleThreshold)

    def of(self, key: str) -> Threshold:
        """The threshold of one resource (no levels when none is set)."""
        return self.levels.get(key, Threshold(None, None))


def _number(value: object, where: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where}: expected a number >= 0, got {value!r}")
    return number


def _checked(key: str, t: Threshold, where: str) -> Threshold:
    if t.warning is not None and t.critical is not None and t.warning > t.critical:
        raise ValueError(f"{where}: {key} warning {t.warning:g} is above critical {t.critical:g}")
    return t


def _share(value: object, where: str) -> float:
    share = _number(value, where)
    if share is None or not 0 < share <= 1:
        raise ValueError(f"{where}: over_share must be above 0 and at most 1, got {value!r}")
    return share


def _idle(below: object, share: object, where: str) -> IdleThreshold:
    b = _number(below, f"{where} below")
    s = _number(share, f"{where} share")
    if b is None or not b <= 100:
        raise ValueError(f"{where}: below must be a utilisation from 0 to 100 %, got {below!r}")
    if s is None or not 0 < s <= 1:
        raise ValueError(f"{where}: share must be above 0 and at most 1, got {share!r}")
    return IdleThreshold(b, s)


def _from_file(path: str) -> tuple[dict[str, Threshold], float | None, IdleThreshold | None]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read thresholds file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"thresholds file {path} is not valid TOML: {e}") from None
    levels, share, idle = {}, None, None
    for key, value in data.items():
        if key == "over_share":
            share = _share(value, path)
            continue
        if key == GPU_IDLE:
            if not isinstance(value, dict) or set(value) - {"below", "share"}:
                raise ValueError(f"{path}: [{GPU_IDLE}] must be a table with below and share")
            default = IdleThreshold()
            below, part = value.get("below", default.below), value.get("share", default.share)
            idle = _idle(below, part, f"{path} [{GPU_IDLE}]")
            continue
        if key not in _BY_KEY:
            _unknown(key, path)
        if not isinstance(value, dict):
            raise ValueError(f"{path}: [{key}] must be a table with warning and critical")
        unknown = set(value) - {"warning", "critical"}
        if unknown:
            raise ValueError(f"{path}: [{key}] has unknown keys {sorted(unknown)}")
        t = Threshold(
            _number(value.get("warning"), f"{path} [{key}] warning"),
            _number(value.get("critical"), f"{path} [{key}] critical"),
        )
        levels[key] = _checked(key, t, path)
    return levels, share, idle


def _unknown(key: str, where: str) -> None:
    raise ValueError(
        f"{where}: unknown resource {key!r} (known: {', '.join(_BY_KEY)}, and over_share"
        f" and {GPU_IDLE})"
    )


def _from_flag(text: str) -> tuple[str, Threshold | IdleThreshold]:
    where = f"--threshold {text}"
    key, sep, levels = text.partition("=")
    key = key.strip()
    if key == GPU_IDLE:
        parts = [p.strip() for p in levels.split(",")]
        if not sep or len(parts) != 2:
            raise ValueError(f"{where}: expected gpu_idle=BELOW,SHARE such as gpu_idle=5,0.5")
        return key, _idle(parts[0], parts[1], where)
    if not sep or key not in _BY_KEY:
        if sep:
            _unknown(key, where)
        raise ValueError(f"{where}: expected RESOURCE=WARNING,CRITICAL such as cpu=80,95")
    parts = [p.strip() for p in levels.split(",")]
    if len(parts) != 2:
        raise ValueError(f"{where}: expected RESOURCE=WARNING,CRITICAL such as cpu=80,95")
    t = Threshold(_number(parts[0], where), _number(parts[1], where))
    return key, _checked(key, t, where)


def load_thresholds(
    path: str | None = None, flags: Sequence[str] = (), over_share: float | None = None
) -> Thresholds:
    """Defaults, then the TOML file, then ``--threshold`` flags; ValueError names the culprit."""
    base = Thresholds()
    levels = dict(base.levels)
    share, idle = base.over_share, base.gpu_idle
    if path:
        file_levels, file_share, file_idle = _from_file(path)
        levels.update(file_levels)
        share = file_share if file_share is not None else share
        idle = file_idle or idle
    for text in flags:
        key, t = _from_flag(text)
        if isinstance(t, IdleThreshold):
            idle = t
        else:
            levels[key] = t
    if over_share is not None:
        share = _share(over_share, "--over-share")
    return Thresholds(levels, share, idle)
