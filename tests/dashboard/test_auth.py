"""Dashboard basic auth: a real werkzeug server answers only to the right user and password.

The password is hashed once per module (scrypt is slow on purpose); the parsing
tests use cheap, well-formed fake hashes, since they never verify a password.
"""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from werkzeug.serving import make_server

from fleetgauge.dashboard.auth import (
    AUTH_ENV,
    auth_line,
    check_bind,
    hash_password,
    load_users,
    parse_users,
    require_basic_auth,
)
from fleetgauge.dashboard.logins import LoginLimiter

PASSWORD = "correct:horse battery"
FAKE_HASH = "pbkdf2:sha256:600000$SALTsalt$" + "ab" * 32
CHALLENGE = 'Basic realm="fleetgauge", charset="UTF-8"'


@pytest.fixture(scope="module")
def alice_hash() -> str:
    """A real werkzeug hash of PASSWORD, made once for the whole module."""
    return hash_password(PASSWORD)


@pytest.fixture(scope="module")
def base_url(alice_hash: str) -> Iterator[str]:
    """A Flask app with two routes behind basic auth, served on a free loopback port."""
    app = flask.Flask(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    app.add_url_rule("/download/<name>", "download", lambda name: "ok")
    # these tests send many wrong passwords: the login limit has its own test
    require_basic_auth(app, {"alice": alice_hash}, limiter=LoginLimiter(attempts=10_000))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}"
    server.shutdown()
    thread.join()


def get(url: str, authorization: str | None = None) -> tuple[int, str | None, str]:
    """Status, WWW-Authenticate header and body of a GET with an optional Authorization."""
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            challenge = response.headers.get("WWW-Authenticate")
            return response.status, challenge, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("WWW-Authenticate"), error.read().decode()


def basic(user: str, password: str) -> str:
    credentials = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(credentials).decode("ascii")


# --- the server -------------------------------------------------------------


def test_without_credentials_the_browser_is_asked_for_them(base_url: str) -> None:
    status, challenge, body = get(base_url + "/")
    assert status == 401
    assert challenge == CHALLENGE
    assert body.strip()


@pytest.mark.parametrize("path", ["/", "/download/report.csv"])
def test_the_right_password_opens_every_route(base_url: str, path: str) -> None:
    assert get(base_url + path, basic("alice", PASSWORD)) == (200, None, "ok")
    # The second request is answered from the verification cache, with the same result.
    assert get(base_url + path, basic("alice", PASSWORD)) == (200, None, "ok")


def test_the_scheme_name_is_case_insensitive(base_url: str) -> None:
    header = basic("alice", PASSWORD).replace("Basic", "basic")
    assert get(base_url + "/", header)[0] == 200


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(basic("alice", "wrong"), id="wrong-password"),
        pytest.param(basic("alice", PASSWORD + " "), id="password-plus-space"),
        pytest.param(basic("mallory", PASSWORD), id="unknown-user"),
        pytest.param(basic("", PASSWORD), id="empty-user"),
        pytest.param("Bearer abc", id="other-scheme"),
        pytest.param("Basic", id="no-credentials"),
        pytest.param("Basic !!!not-base64!!!", id="garbage-base64"),
        pytest.param("Basic " + base64.b64encode(b"alice").decode(), id="no-colon"),
        pytest.param(
            "Basic " + base64.b64encode("alice:pässword".encode("latin-1")).decode(),
            id="latin-1-credentials",
        ),
        pytest.param("Basic \xe9\xe9\xe9\xe9", id="latin-1-header-bytes"),
    ],
)
def test_anything_but_the_right_password_is_refused_with_401(
    base_url: str, authorization: str
) -> None:
    status, challenge, _ = get(base_url + "/download/report.csv", authorization)
    assert (status, challenge) == (401, CHALLENGE)


def test_a_server_without_users_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one user"):
        require_basic_auth(flask.Flask(__name__), {})


# --- parsing ----------------------------------------------------------------


def test_entries_with_comments_and_blank_lines() -> None:
    text = f"# dashboard users\n\nalice:{FAKE_HASH}\n  # bob left\nbob:{FAKE_HASH}\n"
    assert parse_users(text, "users.txt") == {"alice": FAKE_HASH, "bob": FAKE_HASH}


def test_the_environment_form_separates_entries_by_commas_spaces_and_newlines() -> None:
    text = f"alice:{FAKE_HASH}, bob:{FAKE_HASH}\ncarol:{FAKE_HASH} dave:{FAKE_HASH},"
    assert list(parse_users(text, AUTH_ENV)) == ["alice", "bob", "carol", "dave"]


def test_a_real_hash_round_trips_through_auth_line(alice_hash: str) -> None:
    assert parse_users(f"alice:{alice_hash}", "users.txt") == {"alice": alice_hash}
    with pytest.raises(ValueError, match="':'"):
        auth_line("al:ice", PASSWORD)


SECRET = "s3cretSALT"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"{SECRET}$abcd", "found no ':'"),
        (f"alice-{SECRET}", "found no ':'"),
        (f":pbkdf2:sha256:1${SECRET}$abcd", "user name before ':' is empty"),
        ("alice:", "empty password hash"),
        (f"alice:{SECRET}", "plain-text passwords are not accepted"),
        (f"alice:pa${SECRET}$word", "--hash-password USER"),
        (f"alice:md5${SECRET}$abcd", "not a werkzeug hash"),
        (f"alice:scrypt:1:2${SECRET}$abcd", "scrypt:N:R:P"),
        (f"alice:scrypt:1000:8:1${SECRET}$abcd", "power of two"),
        (f"alice:pbkdf2:nosuchdigest${SECRET}$abcd", "digest"),
        (f"alice:pbkdf2:sha256:many${SECRET}$abcd", "iteration count"),
        ("alice:pbkdf2:sha256:1$$abcd", "empty salt"),
        (f"alice:pbkdf2:sha256:1${SECRET}$not-hex-{SECRET}", "not hexadecimal"),
        (f"alice:{FAKE_HASH}\nalice:pbkdf2:sha256:1${SECRET}$abcd", "listed twice"),
    ],
)
def test_a_bad_entry_names_source_and_line_but_not_the_secret(line: str, problem: str) -> None:
    text = f"# users\n\n{line}"
    with pytest.raises(ValueError) as raised:
        parse_users(text, "/etc/fleetgauge/users")
    message = str(raised.value)
    assert message.startswith("/etc/fleetgauge/users, line ")
    assert "line 3" in message or "line 4" in message
    assert problem in message
    assert SECRET not in message
    assert FAKE_HASH not in message


def test_the_environment_variable_is_named_in_errors() -> None:
    with pytest.raises(ValueError, match=f"^{AUTH_ENV}, line 2: .*plain-text"):
        load_users(None, {AUTH_ENV: f"alice:{FAKE_HASH}\nbob:hunter2"})


# --- loading ----------------------------------------------------------------


def test_the_auth_file_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(f"file-user:{FAKE_HASH}\n")
    environ = {AUTH_ENV: f"env-user:{FAKE_HASH}"}
    assert list(load_users(str(path), environ)) == ["file-user"]
    assert list(load_users(None, environ)) == ["env-user"]


def test_no_file_and_no_variable_means_no_users() -> None:
    assert load_users(None, {}) == {}
    assert load_users(None, {AUTH_ENV: "  "}) == {}


def test_a_missing_auth_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ValueError, match=f"cannot read auth file {missing}"):
        load_users(str(missing), {AUTH_ENV: f"alice:{FAKE_HASH}"})


def test_an_auth_file_without_users_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# nobody yet\n")
    with pytest.raises(ValueError, match="lists no users"):
        load_users(str(path), {})


# --- binding ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_users(host: str) -> None:
    check_bind(host, {}, insecure=False)


def test_all_interfaces_without_users_is_refused_with_the_way_out() -> None:
    with pytest.raises(ValueError) as raised:
        check_bind("0.0.0.0", {}, insecure=False)
    message = str(raised.value)
    for hint in ("--auth-file", AUTH_ENV, "--insecure", "fleetgauge dashboard --hash-password"):
        assert hint in message


def test_all_interfaces_with_users_or_insecure_is_allowed() -> None:
    check_bind("0.0.0.0", {"alice": FAKE_HASH}, insecure=False)
    check_bind("0.0.0.0", {}, insecure=True)
