"""What several commands share: the --store flag, error lines, the extras a command needs."""

from __future__ import annotations

import argparse
import sys

from fleetgauge.stores import STORE_ENV, default_store_url

__all__ = ["add_store", "fail"]

_STORE_HELP = (
    "where the data lives: sqlite:///PATH (embedded, the default; sqlite:////abs/path for an"
    " absolute path, ?retention=30d to delete older rows) or"
    " influxdb+http://HOST:PORT/BUCKET?org=ORG (token from FLEETGAUGE_INFLUX_TOKEN)."
    f" Default: ${STORE_ENV}, else %(default)s"
)


def add_store(parser: argparse.ArgumentParser) -> None:
    """The ``--store URL`` flag, defaulting to ``$FLEETGAUGE_STORE`` or the embedded file."""
    parser.add_argument("--store", metavar="URL", default=default_store_url(), help=_STORE_HELP)


def fail(message: str, code: int = 1) -> int:
    """Print ``fleetgauge: error: MESSAGE`` on stderr; returns ``code`` for the exit status."""
    print(f"fleetgauge: error: {message}", file=sys.stderr)
    return code
