"""HTTP basic auth for the dashboard: who may read the fleet's metrics.

The dashboard shows what every machine runs, so once it listens beyond loopback
each request must carry credentials. Users come from an auth file
(``--auth-file``) or from ``FLEETGAUGE_DASHBOARD_AUTH``, as ``user:hash`` entries
whose hashes are made by werkzeug (``fleetgauge dashboard --hash-password USER``);
plain-text passwords are refused when the users are loaded, not at the first
request.

One Flask ``before_request`` hook guards the whole server: pages, Dash callbacks,
assets and any extra route, so a route added later is never left open.
Passwords are checked with ``werkzeug.security.check_password_hash`` (constant
time); an unknown user is checked against a dummy hash of the same method, so the
answer takes as long as for a known one and does not reveal who exists.

scrypt costs tens of milliseconds per check and a Dash page fires many requests,
so successful checks are remembered in a small LRU cache keyed by an HMAC-SHA256
(per-process random key) of user, password and hash: the cache holds neither
passwords nor hashes, and a changed hash never matches an old entry.

Failed logins are limited per client address (:mod:`~fleetgauge.dashboard.logins`:
429 with ``Retry-After`` after 5 in a minute). Error messages, log lines and the
module never show a password or a hash; they name the source, the line and,
once known, the user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import flask
from werkzeug.security import check_password_hash, generate_password_hash

from fleetgauge.dashboard.logins import LoginLimiter
from fleetgauge.net import HostPolicy, is_loopback

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "AUTH_ENV",
    "require_allowed_hosts",
    "auth_line",
    "check_bind",
    "hash_password",
    "load_users",
    "parse_users",
    "require_basic_auth",
]

AUTH_ENV = "FLEETGAUGE_DASHBOARD_AUTH"
ALLOWED_HOSTS_ENV = "FLEETGAUGE_DASHBOARD_ALLOWED_HOSTS"
HASH_HINT = "make the line with `fleetgauge dashboard --hash-password USER`"
CACHE_SIZE = 64

_ENTRY_SEPARATORS = re.compile(r"[\s,]+")
_HEX = re.compile(r"[0-9a-f]+")
_DIGITS = re.compile(r"[0-9]+")


def parse_users(text: str, source: str) -> dict[str, str]:
    """Read ``user:password-hash`` entries from an auth file or the environment variable.

    Entries are separated by newlines, whitespace or commas; blank lines and lines
    starting with ``#`` are skipped. A bad entry raises ``ValueError`` naming
    ``source``, the line number and the problem, never the entry's secret part.
    """
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for entry in _ENTRY_SEPARATORS.split(line):
            if not entry:
                continue
            where = f"{source}, line {number}"
            user, colon, pwhash = entry.partition(":")
            if not colon:
                raise ValueError(f"{where}: expected user:password-hash, found no ':'")
            if not user:
                raise ValueError(f"{where}: the user name before ':' is empty")
            if not pwhash:
                raise ValueError(f"{where}: user {user!r} has an empty password hash")
            problem = _hash_problem(pwhash)
            if problem:
                raise ValueError(f"{where}: user {user!r}: {problem}")
            if user in users:
                raise ValueError(f"{where}: user {user!r} is listed twice")
            users[user] = pwhash
    return users


def load_users(auth_file: str | None, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The dashboard's users: from ``auth_file`` when given, else from ``AUTH_ENV``.

    Returns ``{}`` when neither is set. A file that cannot be read, or that names
    no user, raises ``ValueError`` naming its path.
    """
    if auth_file is not None:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ValueError(f"cannot read auth file {auth_file}: {reason}") from None
        except UnicodeDecodeError:
            raise ValueError(f"cannot read auth file {auth_file}: it is not UTF-8 text") from None
        users = parse_users(text, auth_file)
        if not users:
            raise ValueError(f"auth file {auth_file} lists no users; {HASH_HINT}")
        return users
    text = environ.get(AUTH_ENV, "")
    if not text.strip():
        return {}
    users = parse_users(text, AUTH_ENV)
    if not users:
        raise ValueError(f"{AUTH_ENV} is set but lists no users; {HASH_HINT}")
    return users


def hash_password(password: str) -> str:
    """A werkzeug hash of ``password`` (its default method) for an auth entry."""
    return generate_password_hash(password)


def auth_line(user: str, password: str) -> str:
    """One ``user:hash`` entry for an auth file or ``AUTH_ENV``."""
    if not user or _ENTRY_SEPARATORS.search(user) or ":" in user or user.startswith("#"):
        raise ValueError(
            f"user name {user!r} must be non-empty, without ':', ',' or spaces, "
            "and must not start with '#'"
        )
    return f"{user}:{hash_password(password)}"


def require_basic_auth(
    server: flask.Flask,
    users: dict[str, str],
    realm: str = "fleetgauge",
    limiter: LoginLimiter | None = None,
) -> None:
    """Make every request to ``server`` need one of ``users``' passwords (HTTP basic auth).

    ``users`` maps a user name to a werkzeug hash, as ``load_users`` returns.
    Requests without valid credentials get 401 and a ``WWW-Authenticate`` challenge;
    an address with too many failed logins gets 429 (``limiter``, default: the site's).
    """
    if not users:
        raise ValueError("require_basic_auth needs at least one user")
    for user, pwhash in users.items():
        problem = _hash_problem(pwhash)
        if problem:
            raise ValueError(f"user {user!r}: {problem}")
    checker = _Checker(users)
    limiter = limiter or LoginLimiter()
    quoted_realm = realm.replace("\\", "\\\\").replace('"', '\\"')
    challenge = f'Basic realm="{quoted_realm}", charset="UTF-8"'

    def guard() -> flask.Response | None:
        credentials = _basic_credentials(flask.request.headers.get("Authorization", ""))
        if credentials is not None:
            address = flask.request.remote_addr or "unknown"
            wait = limiter.blocked(address)
            if not wait and checker.check(*credentials):
                return None
            wait = wait or limiter.failed(address, credentials[0])
            if wait:
                return flask.Response(
                    "Too many failed logins from this address: try again later.\n",
                    status=429,
                    mimetype="text/plain",
                    headers={"Retry-After": str(math.ceil(wait)), "Cache-Control": "no-store"},
                )
        return flask.Response(
            "Authentication required.\n",
            status=401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
        )

    server.before_request(guard)


def require_allowed_hosts(server: flask.Flask, policy: HostPolicy) -> None:
    """Answer 403 to a request whose ``Host`` or ``Origin`` the site does not answer to.

    Registered before the password check, so a page that reached the site by DNS
    rebinding (a name it controls made to resolve to this machine) is refused
    without a login prompt, on every route: pages, callbacks, assets, downloads.
    """

    def guard() -> flask.Response | None:
        headers = flask.request.headers
        refused = policy.refusal(headers.get("Host"), headers.get("Origin"))
        if refused is None:
            return None
        return flask.Response(refused.message + "\n", status=403, mimetype="text/plain")

    server.before_request(guard)


def check_bind(host: str, users: dict[str, str], insecure: bool) -> None:
    """Refuse to serve the dashboard beyond loopback without users, unless ``insecure``."""
    if users or insecure or is_loopback(host):
        return
    raise ValueError(
        f"the dashboard would listen on {host} without a password: give users with "
        f"--auth-file FILE or {AUTH_ENV}, or pass --insecure to serve it open; "
        f"{HASH_HINT} prints one user:hash line"
    )


class _Checker:
    """Verifies user/password pairs against hashes, remembering recent successes."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = dict(users)
        method = next(iter(self._users.values())).split("$", 1)[0]
        self._dummy = generate_password_hash(secrets.token_urlsafe(16), method=method)
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s; as slow for unknown users as for known ones."""
        pwhash = self._users.get(user)
        if pwhash is None:
            _verify(self._dummy, password)
            return False
        token = hmac.new(
            self._key, json.dumps([user, password, pwhash]).encode(), hashlib.sha256
        ).digest()
        with self._lock:
            if token in self._cache:
                self._cache.move_to_end(token)
                return True
        if not _verify(pwhash, password):
            return False
        with self._lock:
            self._cache[token] = None
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return True


def _verify(pwhash: str, password: str) -> bool:
    """``check_password_hash``, with parameters OpenSSL refuses (memory limits) as a mismatch."""
    try:
        return check_password_hash(pwhash, password)
    except ValueError:
        return False


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header; None when it is malformed."""
    scheme, _, param = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
    except ValueError:  # bad base64, non-ASCII header text, non-UTF-8 credentials
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        return None
    return user, password


def _hash_problem(pwhash: str) -> str | None:
    """What keeps ``pwhash`` from being a werkzeug scrypt/pbkdf2 hash; None when it is one."""
    not_a_hash = (
        "the password is not a werkzeug hash (scrypt:... or pbkdf2:...); "
        f"plain-text passwords are not accepted: {HASH_HINT}"
    )
    parts = pwhash.split("$")
    if len(parts) != 3:
        return not_a_hash
    method, salt, digest = parts
    name, *args = method.split(":")
    if name == "scrypt":
        if args and (len(args) != 3 or not all(_positive(arg) for arg in args)):
            return "the scrypt hash needs three positive numbers, scrypt:N:R:P"
        if args and int(args[0]) & (int(args[0]) - 1):
            return "the scrypt cost N is not a power of two"
    elif name == "pbkdf2":
        if len(args) > 2:
            return "the pbkdf2 hash takes at most a digest and an iteration count"
        if args and args[0] not in hashlib.algorithms_available:
            return "the pbkdf2 hash names a digest this Python does not have"
        if len(args) == 2 and not _positive(args[1]):
            return "the pbkdf2 iteration count is not a positive number"
    else:
        return not_a_hash
    if not salt:
        return "the hash has an empty salt"
    if not _HEX.fullmatch(digest) or len(digest) % 2:
        return "the hash's digest is not hexadecimal"
    return None


def _positive(text: str) -> bool:
    """True for a decimal number above zero, in ASCII digits."""
    return bool(_DIGITS.fullmatch(text)) and int(text) > 0
