"""Container health check: exit 0 when the fleetgauge server in this container answers.

``python -m fleetgauge.agent.probe`` asks the agent's ``/metrics`` on loopback (port
``$FLEETGAUGE_METRICS_PORT``, default 9108) with the bearer token of
``$FLEETGAUGE_METRICS_TOKEN`` when one is set, and wants 200. ``python -m
fleetgauge.agent.probe URL --expect 200,401`` checks another server: the dashboard behind
basic auth answers 401 to a request without a password, which still shows that it
serves. Any other status, no answer within ``--timeout`` seconds or a refused
connection exits 1 with one line on stderr saying why (never the token).
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

__all__ = ["check", "main"]


def check(
    url: str, expect: Sequence[int] = (200,), token: str | None = None, timeout: float = 5.0
) -> str:
    """Empty when ``url`` answers with a status in ``expect``, else why not."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout):
            status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        return f"{url}: no answer ({getattr(e, 'reason', e)})"
    return "" if status in expect else f"{url}: HTTP {status}, expected {expect}"


def main(argv: Sequence[str] | None = None) -> int:
    """Check one URL; exit status 0 (healthy) or 1, as Docker's HEALTHCHECK wants."""
    port = os.environ.get("FLEETGAUGE_METRICS_PORT") or "9108"
    parser = argparse.ArgumentParser(prog="python -m fleetgauge.agent.probe", description=__doc__)
    parser.add_argument("url", nargs="?", default=f"http://127.0.0.1:{port}/metrics")
    parser.add_argument("--expect", default="200", help="accepted statuses, comma-separated")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default: 5)")
    args = parser.parse_args(argv)
    expect = tuple(int(code) for code in args.expect.split(","))
    token = os.environ.get("FLEETGAUGE_METRICS_TOKEN") or None
    problem = check(args.url, expect, token, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
