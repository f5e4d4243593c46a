"""The deployable stack's files that name metrics, generated from ``fleetgauge.catalogue``.

Grafana dashboards (``grafana/dashboards/*.json``) and the Prometheus alerting
rules (``prometheus/rules/fleetgauge.rules.yml``) name measurements, fields,
tags and Prometheus series. They are written by code that takes every name from
the data model, so a renamed field cannot leave a panel or an alert behind:
``python -m fleetgauge.agent.stack`` rewrites them and ``python -m fleetgauge.agent.stack --check``
(run by the tests) fails when a committed file differs from what the code makes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

AGENT_JOB = "fleetgauge-agent"
"""Prometheus job name of the agents: the scrape config, alert rules and dashboards use it."""

_MODULES = (
    "fleetgauge.agent.stack.grafana",
    "fleetgauge.agent.stack.prometheus",
    "fleetgauge.agent.stack.docs",
)
"""Each module has ``files() -> {path relative to the repository root: text}``."""


def generated_files() -> dict[str, str]:
    """Every generated file: repository-relative path -> its text."""
    out: dict[str, str] = {}
    for name in _MODULES:
        files: Callable[[], dict[str, str]] = importlib.import_module(name).files
        for path, text in files().items():
            if path in out:
                raise ValueError(f"{path} generated twice (by {name})")
            out[path] = text
    return out
