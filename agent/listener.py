"""Who may use the agent's listeners (the push endpoint and ``/metrics``): one rule for both.

On a loopback address anyone on this machine may. On any other address only a
client that sends ``Authorization: Bearer TOKEN``, compared in constant time; a
listener asked to bind off loopback without a token refuses to start, naming
the setting that gives one.
"""

from __future__ import annotations

import hmac

from fleetgauge.net import is_loopback

__all__ = ["BearerGuard"]


class BearerGuard:
    """The token check of one listener; ``name`` is its settings' prefix (push, metrics)."""

    def __init__(self, name: str, host: str, token: str | None) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"{name}_host {host!r} is not loopback: set a token"
                f" (FLEETGAUGE_{name.upper()}_TOKEN or {name}_token in the config file)"
            )
        self._expected = b"Bearer " + token.encode() if token else None

    def allows(self, authorization: str | None) -> bool:
        """Whether a request with this ``Authorization`` header may go on."""
        if self._expected is None:
            return True
        return hmac.compare_digest((authorization or "").encode(), self._expected)
