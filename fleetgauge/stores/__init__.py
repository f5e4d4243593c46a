"""Stores: one interface (``base``: a writer half and a reader half), two real backends.

``sqlite:///PATH`` opens the embedded store (the default); ``influxdb+http://
HOST:PORT/BUCKET?org=ORG`` (or ``influxdb+https://``) opens InfluxDB with the
token from ``FLEETGAUGE_INFLUX_TOKEN``. ``FLEETGAUGE_STORE`` gives the URL
when no ``--store`` flag does.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetgauge import extras
from fleetgauge.stores.base import (
    Store,
    StoreError,
    StoreReader,
    StoreRejected,
    StoreUnavailable,
    StoreWriter,
)

__all__ = [
    "open_store",
    "default_store_url",
    "Store",
    "StoreReader",
    "StoreWriter",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "STORE_ENV",
]

STORE_ENV = "FLEETGAUGE_STORE"


def default_store_url() -> str:
    """``FLEETGAUGE_STORE`` or the embedded file under the user's data directory."""
    if url := os.environ.get(STORE_ENV):
        return url
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'fleetgauge' / 'fleetgauge.db'}"


def open_store(url: str | None = None, create: bool = True) -> Store:
    """Open the store a URL names; ValueError with an example when the URL is not one.

    ``create=False`` is for commands that only read: a SQLite file that does not
    exist yet is then an error rather than a new empty store.
    """
    url = url or default_store_url()
    if url.startswith("sqlite:///"):
        from fleetgauge.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, create=create)
    if url.startswith(("influxdb+http://", "influxdb+https://")):
        extras.require("the InfluxDB store", "influxdb")
        from fleetgauge.stores.influxdb import InfluxDBStore

        return InfluxDBStore.from_url(url)
    raise ValueError(
        f"unsupported store URL {url!r}: use sqlite:///PATH or"
        " influxdb+http://HOST:PORT/BUCKET?org=ORG"
    )
