"""Addresses: whether a listener is on this machine only, and which names it answers to.

A listener on loopback needs no credentials, which a web page could exploit by
DNS rebinding: a name the attacker controls is made to resolve to 127.0.0.1, and
the victim's browser then talks to the listener as that name. So every listener
(the agent's push endpoint and ``/metrics``, the dashboard) checks the ``Host``
header, and the ``Origin`` a browser adds, against :class:`HostPolicy` before it
does anything else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import NamedTuple
from urllib.parse import urlsplit

__all__ = ["is_loopback", "HostPolicy", "Refusal", "parse_allowed_hosts"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """Host names from ``a.example,b.example`` (spaces allowed); ``*`` allows any name."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    for name in names:
        if name != "*" and (not name.isprintable() or " " in name or "/" in name):
            raise ValueError(f"{name!r} is not a host name")
    return names


def _name_of(host: str) -> str:
    """The name in a ``Host`` value (``name``, ``name:port``, ``[v6]:port``), lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class Refusal(NamedTuple):
    """Why a request is refused: ``kind`` (host or origin) for counting, ``message`` to send."""

    kind: str
    message: str


class HostPolicy:
    """The names a listener bound to ``bind_host`` answers to, in ``Host`` and ``Origin``.

    Always: ``localhost`` and loopback addresses. A listener bound beyond loopback
    also answers to any IP address (DNS rebinding needs a name) and to this
    machine's host name. ``allowed`` adds names (a proxy's, a compose service's);
    ``*`` allows every name. ``setting`` is how a refusal tells the user to add a name.
    """

    def __init__(
        self, bind_host: str, allowed: Iterable[str] = (), setting: str = "--allowed-hosts"
    ) -> None:
        self.setting = setting
        self.loopback = is_loopback(bind_host.strip("[]"))
        self.names = {_name_of(a) for a in allowed}
        if not self.loopback:
            self.names.add(socket.gethostname().lower())  # no DNS lookup at start-up
        self.any = "*" in self.names

    def allows_host(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header may go on (none: not from a browser)."""
        if host is None or self.any:
            return True
        name = _name_of(host)
        if name == "localhost" or name in self.names:
            return True
        ip = _ip(name)
        return ip is not None and (ip.is_loopback or not self.loopback)

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a request a page from ``origin`` sent may go on (none: not cross-site)."""
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        return bool(parts.scheme in ("http", "https") and parts.netloc) and self.allows_host(
            parts.netloc
        )

    def refusal(self, host: str | None, origin: str | None) -> Refusal | None:
        """Why a request with these headers is refused, naming the setting; None if it is not."""
        if not self.allows_host(host):
            return Refusal(
                "host",
                f"Host {_shown(host)} is not a name this server answers to"
                f" (add it with {self.setting})",
            )
        if not self.allows_origin(origin):
            return Refusal(
                "origin", f"requests from pages of origin {_shown(origin)} are not accepted"
            )
        return None


def _shown(value: str | None) -> str:
    return repr((value or "")[:100])
