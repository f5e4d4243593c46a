"""The install extras: which modules each brings, and one clear line when one is missing.

``pip install fleetgauge`` is the recording SDK, the read API and the CLI's
export. The daemon, the InfluxDB store and the site need more; a command or a
store that lacks its extra says which one, instead of a traceback.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtra", "missing", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "agent": ("psutil", "apscheduler", "prometheus_client"),
    "influxdb": ("influxdb_client", "msgpack", "urllib3"),
    "dashboard": ("dash", "plotly", "flask", "werkzeug", "gunicorn", "numpy"),
}
"""Extra name -> the modules it installs that fleetgauge imports (pyproject.toml lists them)."""


class MissingExtra(ValueError):
    """Something needs an extra that is not installed; the message says how to install it."""


def missing(*names: str) -> list[str]:
    """The extras among ``names`` with a module that cannot be imported here."""
    return [
        name
        for name in names
        if any(importlib.util.find_spec(module) is None for module in EXTRAS[name])
    ]


def require(what: str, *names: str) -> None:
    """Raise MissingExtra naming the extras ``what`` needs and lacks; nothing when all are here."""
    lacking = missing(*names)
    if not lacking:
        return
    quoted = " and ".join(f"'{n}'" for n in lacking)
    plural = "extras" if len(lacking) > 1 else "extra"
    raise MissingExtra(
        f"{what} needs the {quoted} {plural}: pip install 'fleetgauge[{','.join(lacking)}]'"
    )
