"""Who may use the agent's listeners (the push endpoint and ``/metrics``): one rule for both.

Before anything else a request's ``Host`` and ``Origin`` must be names the
listener answers to (:class:`~fleetgauge.net.HostPolicy`: loopback names, plus
``allowed_hosts``; off loopback also IP addresses and this machine's name), so a
web page cannot reach a loopback listener by DNS rebinding. Then, when the
listener has a token, ``Authorization: Bearer TOKEN`` (the scheme in any case,
RFC 7235), compared in constant time. A listener asked to bind off loopback
without a token refuses to start, naming the setting that gives one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable

from fleetgauge.net import HostPolicy, is_loopback

__all__ = ["ListenerGuard", "ALLOWED_HOSTS_HINT"]

ALLOWED_HOSTS_HINT = "--allowed-hosts or FLEETGAUGE_ALLOWED_HOSTS"


class ListenerGuard:
    """The checks of one listener; ``name`` is its settings' prefix (push, metrics).

    ``on_refusal(listener, reason)`` counts each refusal (reason: host, origin, token).
    """

    def __init__(
        self,
        name: str,
        host: str,
        token: str | None,
        allowed_hosts: Iterable[str] = (),
        on_refusal: Callable[[str, str], None] | None = None,
    ) -> None:
        if not is_loopback(host.strip("[]")) and not token:
            raise ValueError(
                f"{name}_host {host!r} is not loopback: set a token"
                f" (FLEETGAUGE_{name.upper()}_TOKEN or {name}_token in the config file)"
            )
        self.name = name
        self.hosts = HostPolicy(host, allowed_hosts, ALLOWED_HOSTS_HINT)
        self._token = token.encode() if token else None
        self._on_refusal = on_refusal or (lambda listener, reason: None)

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """Why a request with this ``Host`` and ``Origin`` is refused (and counted), or None."""
        refused = self.hosts.refusal(host, origin)
        if refused is None:
            return None
        self._on_refusal(self.name, refused.kind)
        return refused.message

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may go on."""
        if self._token is None:
            return True
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        given = credentials.strip().encode() if scheme.lower() == "bearer" else b""
        if hmac.compare_digest(given, self._token):
            return True
        self._on_refusal(self.name, "token")
        return False
