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


def add_prices(parser: argparse.ArgumentParser, which: str) -> None:
    """``--price NAME=AMOUNT`` (repeatable) and ``--prices FILE``; ``which`` starts the help."""
    from fleetgauge.read.usage import PRICE_NAMES

    parser.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="NAME=AMOUNT",
        help=f"{which}a price, NAME one of {', '.join(PRICE_NAMES)} (repeatable; for example"
        " --price gpu-hour=2.5 --price cpu-core-hour=0.04). A worker-hour price is split over"
        " the worker's GPUs, or its cores on a CPU-only worker",
    )
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help=f"{which}a TOML price table, [prices] with gpu_hour, cpu_core_hour or"
        " worker_hour (a --price flag wins over the file)",
    )


def prices_of(args: argparse.Namespace):  # noqa: ANN201 - a Prices (imported on use)
    """The price table of ``--prices`` and ``--price``; ValueError naming a bad one."""
    from fleetgauge.read.usage import parse_prices, read_prices_file

    return parse_prices(args.price, read_prices_file(args.prices) if args.prices else None)
