"""Test helpers: a throwaway ``influxd`` 1.x server and a v2 write front for it.

The agent writes through influxdb-client, which speaks the InfluxDB 2.x API
(``POST /api/v2/write``). Debian only packages InfluxDB 1.6, which predates
that endpoint (InfluxDB 1.8 added a v2 compatibility layer). To test against a
real storage engine anyway, :class:`InfluxServer` runs the packaged ``influxd``
in a temporary directory and :class:`V2WriteFront` sits in front of it,
translating v2 writes into 1.x ``/write`` calls the way 1.8 does itself.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlencode, urlsplit

# Upstream 1.x reads "reporting-disabled"; Debian's build renamed it "reporting-enabled".
# influxd ignores unknown keys, so both are set.
_CONFIG = """\
reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = {meta}
  logging-enabled = false

[data]
  dir = {data}
  wal-dir = {wal}
  index-version = "inmem"
  query-log-enabled = false
  cache-max-memory-size = 67108864
  max-concurrent-compactions = 1

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM a server process and wait for it, killing it after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class InfluxServer:
    """A real ``influxd`` 1.x whose config, data and log live under ``base_dir``.

    Ports are picked once, so ``stop()`` followed by ``start()`` keeps the URL and the data.
    """

    def __init__(self, base_dir: Path, binary: str = "influxd") -> None:
        self.base_dir = Path(base_dir)
        self.binary = binary
        self.http_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        self.config_path = self.base_dir / "influxdb.conf"
        self.log_path = self.base_dir / "influxd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Write the config, launch ``influxd`` and wait until ``/ping`` answers 204."""
        if self.is_running():
            return
        if not _port_is_free(self.http_port):  # else /ping could reach another process
            raise RuntimeError(f"port {self.http_port} for influxd is already in use")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        dirs = {name: json.dumps(str(self.base_dir / name)) for name in ("meta", "data", "wal")}
        self.config_path.write_text(
            _CONFIG.format(rpc_port=self.rpc_port, http_port=self.http_port, **dirs)
        )
        self._log = open(self.log_path, "ab")  # closed in stop()
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError:
            self.stop()
            raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=1) as resp:
                    if resp.status == 204 and self._proc.poll() is None:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"influxd did not come up on {self.url}; log tail:\n{self._log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM ``influxd`` and wait for it, killing it after ``timeout`` seconds."""
        terminate(self._proc, timeout)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def create_database(self, name: str) -> None:
        self._query("POST", f"CREATE DATABASE {json.dumps(name)}")

    def drop_database(self, name: str) -> None:
        self._query("POST", f"DROP DATABASE {json.dumps(name)}")

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run an InfluxQL query (timestamps as epoch ns); raise on any error."""
        return self._query("GET", q, db)

    def _query(self, method: str, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q, "epoch": "ns", **({"db": db} if db else {})}
        url = f"{self.url}/query?{urlencode(params)}"
        req = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                result: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{q!r} failed: HTTP {exc.code} {exc.read()!r}") from exc
        errors = [r["error"] for r in result.get("results", []) if "error" in r]
        if "error" in result or errors:
            raise RuntimeError(f"{q!r} failed: {result.get('error') or errors}")
        return result

    def _log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return "<no log>"

    def __enter__(self) -> InfluxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_ERROR_CODES = {404: "not found", 413: "request too large"}  # other 4xx: "invalid"
_FORWARD_HEADERS = ("Content-Type", "Content-Encoding", "Accept", "Accept-Encoding", "User-Agent")
_HOP_HEADERS = frozenset(
    "connection keep-alive transfer-encoding content-length date server".split()
)


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    backend: tuple[str, int]
    upstream_timeout: float
    connections: set[socket.socket]
    lock: threading.Lock
    write_delay_s: float = 0.0
    json_only: bool = False
    answer_types: list[str]


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FrontServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_GET

    def _proxy(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self._send_v2_error(411, "length required", "chunked bodies are not supported")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = urlsplit(self.path)
        is_write = parts.path == "/api/v2/write"
        names: tuple[str, ...] = _FORWARD_HEADERS
        target = self.path
        if is_write:
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if not params.get("bucket"):
                return self._send_v2_error(400, "invalid", "bucket is required")
            precision = _PRECISIONS.get(params.get("precision", "ns"))
            if precision is None:
                message = f"invalid precision {params['precision']!r}"
                return self._send_v2_error(400, "invalid", message)
            db, _, rp = params["bucket"].partition("/")
            query = {"db": db, **({"rp": rp} if rp else {}), "precision": precision}
            target = "/write?" + urlencode(query)
            names = tuple(n for n in names if n != "Accept-Encoding")  # keep errors readable
            time.sleep(self.server.write_delay_s)  # a slow store, when a test asks for one
        elif self.server.json_only:  # a server that only speaks JSON ignores Accept
            names = tuple(n for n in names if n != "Accept")
        headers = {n: v for n in names if (v := self.headers.get(n)) is not None}
        host, port = self.server.backend
        conn = http.client.HTTPConnection(host, port, timeout=self.server.upstream_timeout)
        try:
            conn.request(self.command, target, body=body, headers=headers)
            resp = conn.getresponse()
            if not is_write and resp.status not in (204, 304):
                return self._relay_streaming(resp)
            data, status, resp_headers = resp.read(), resp.status, resp.getheaders()
        except (OSError, http.client.HTTPException) as exc:
            return self._send_v2_error(503, "unavailable", f"InfluxDB backend unreachable: {exc}")
        finally:
            conn.close()
        if is_write and status >= 400:
            try:
                message = str(json.loads(data)["error"])
            except (ValueError, KeyError, TypeError):
                message = data.decode(errors="replace").strip() or resp.reason
            code = "internal error" if status >= 500 else _ERROR_CODES.get(status, "invalid")
            return self._send_v2_error(status, code, message)
        kept = [(k, v) for k, v in resp_headers if k.lower() not in _HOP_HEADERS]
        self._send(status, kept, data)

    def _relay_streaming(self, resp: http.client.HTTPResponse) -> None:
        """Pass a read answer on chunk by chunk, so a chunked /query stays streamed."""
        with self.server.lock:
            self.server.answer_types.append(resp.getheader("Content-Type", ""))
        self.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while data := resp.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _send_v2_error(self, status: int, code: str, message: str) -> None:
        body = json.dumps({"code": code, "message": message}).encode()
        self._send(status, [("Content-Type", "application/json; charset=utf-8")], body)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status != 204 and status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 204 and status != 304:
            self.wfile.write(body)


class V2WriteFront:
    """Test-only HTTP front that gives an ``influxd`` 1.x the v2 write endpoint.

    It does what InfluxDB 1.8's own v2 compatibility endpoint does:
    ``POST /api/v2/write?bucket=db/rp&org=...&precision=ns|us|ms|s`` becomes
    ``POST /write?db=db&rp=rp&precision=n|u|ms|s`` (no ``/rp`` in the bucket: no ``rp``),
    the body passes through byte for byte (``Content-Encoding: gzip`` included) and
    ``Authorization`` is dropped. 1.x error bodies ``{"error": ...}`` from ``/write`` are
    reshaped to v2's ``{"code": ..., "message": ...}`` with the same status; a missing
    ``bucket`` is a 400. Every other request (``/query``, ``/ping``, ...) is passed through
    unchanged. An unreachable backend yields a 503 with a v2-shaped error body, as a server
    that is down would. Responses are buffered and always carry a length, so keep-alive
    clients (influxdb-client's urllib3 pool) work.
    """

    def __init__(self, backend_url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(backend_url)
        self.backend = (parts.hostname or "127.0.0.1", parts.port or 8086)
        self.timeout = timeout
        self.port = free_port()
        self._server: _FrontServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        server = _FrontServer(("127.0.0.1", self.port), _FrontHandler)
        server.backend, server.upstream_timeout = self.backend, self.timeout
        server.connections, server.lock = set(), threading.Lock()
        server.answer_types = []
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="v2-front", daemon=True)
        self._thread.start()

    def slow_writes(self, delay_s: float) -> None:
        """Answer every write ``delay_s`` seconds late (0: at once), as an overloaded store does."""
        assert self._server is not None, "start() first"
        self._server.write_delay_s = delay_s

    def answer_json_only(self, on: bool = True) -> None:
        """Drop ``Accept`` from reads, as a server that only speaks JSON would ignore it."""
        assert self._server is not None, "start() first"
        self._server.json_only = on

    def answer_types(self) -> list[str]:
        """``Content-Type`` of every read answer relayed so far, in order."""
        assert self._server is not None, "start() first"
        with self._server.lock:
            return list(self._server.answer_types)

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and close the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        with self._server.lock:
            for conn in self._server.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> V2WriteFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def influx_to_stop(base_dir: Path, database: str = "fleet") -> Iterator[tuple[InfluxServer, str]]:
    """A throwaway influxd holding ``database`` behind the v2 write front, for a test that
    stops and restarts it: yields the server and the store URL (2 s timeout), and stops
    both at the end whatever state the test left the server in."""
    server = InfluxServer(base_dir)
    server.start()
    server.create_database(database)
    front = V2WriteFront(server.url)
    front.start()
    try:
        yield server, f"influxdb+{front.url}/{database}?org=test&timeout=2"
    finally:
        front.stop()
        server.stop()
