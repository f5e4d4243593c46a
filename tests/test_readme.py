"""The README's examples, run in order as a user would, so one that stops working fails CI.

A fenced ``bash`` or ``python`` block right after ``<!-- readme-test -->`` is run; one
after ``<!-- readme-test: background PORT -->`` is a command that keeps running (the
demo, the agent, the dashboard): it is started, the test waits until PORT listens, and it
runs until the next background block, when it gets Ctrl-C (SIGINT) as a user would stop
it and must exit 0. ``<!-- readme-test: after flush -->`` waits one agent flush interval
first, as the text before such a block says.

Everything runs in a fresh home directory (so the default store and spool are new), with
this interpreter's environment first on ``PATH`` (and as ``.venv``), and on free ports:
the README's default ports 9109 (push), 9108 (``/metrics``) and 8050 (dashboard) are
replaced in the blocks' text and set through the settings the README documents
(``FLEETGAUGE_PUSH_URL``, ``FLEETGAUGE_PUSH_PORT``, ``FLEETGAUGE_METRICS_PORT``,
``FLEETGAUGE_DASHBOARD_PORT``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKED = re.compile(
    r"^(?P<indent> *)<!-- readme-test(?::\s*(?P<how>[^>]*?))?\s*-->\n"
    r"(?P=indent)```(?P<lang>bash|python)\n(?P<body>.*?)^(?P=indent)```",
    re.M | re.S,
)
DEFAULT_PORTS = {"push": 9109, "metrics": 9108, "dashboard": 8050}
FLUSH_INTERVAL_S = 10.0  # the agent's default --flush-interval, as the README says
BLOCK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    body: str
    how: str

    @property
    def background_port(self) -> int | None:
        match = re.fullmatch(r"background (\d+)", self.how)
        return int(match.group(1)) if match else None

    def __str__(self) -> str:
        return f"README.md line {self.line} ({self.lang})"


def runnable_blocks(text: str) -> list[Block]:
    return [
        Block(
            text.count("\n", 0, m.start("body")) + 1,
            m.group("lang"),
            textwrap.dedent(m.group("body")),
            (m.group("how") or "").strip(),
        )
        for m in MARKED.finditer(text)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Session:
    """A shell session of the README's reader: one home, one environment, background jobs."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = {name: free_port() for name in DEFAULT_PORTS}
        (home / ".venv").symlink_to(sys.prefix)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETGAUGE_")}
        env.pop("XDG_DATA_HOME", None)
        self.env = env | {
            "HOME": str(home),
            "TMPDIR": str(home),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "FLEETGAUGE_PUSH_URL": f"http://127.0.0.1:{self.ports['push']}",
            "FLEETGAUGE_PUSH_PORT": str(self.ports["push"]),
            "FLEETGAUGE_METRICS_PORT": str(self.ports["metrics"]),
            "FLEETGAUGE_DASHBOARD_PORT": str(self.ports["dashboard"]),
        }
        self.job: tuple[Block, subprocess.Popen[bytes], Path] | None = None

    def text(self, block: Block) -> str:
        body = block.body
        for name, default in DEFAULT_PORTS.items():
            body = re.sub(rf"\b{default}\b", str(self.ports[name]), body)
        return body

    def command(self, block: Block) -> list[str]:
        if block.lang == "python":
            return [sys.executable, "-c", self.text(block)]
        return ["bash", "-e", "-o", "pipefail", "-c", self.text(block)]

    def run(self, block: Block) -> None:
        if block.how == "after flush":
            time.sleep(FLUSH_INTERVAL_S + 1)
        if (port := block.background_port) is not None:
            self.start(block, port)
            return
        done = subprocess.run(
            self.command(block),
            cwd=self.home,
            env=self.env,
            capture_output=True,
            timeout=BLOCK_TIMEOUT_S,
        )
        output = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 0, f"{block} exited {done.returncode}:\n{output}"
        assert "Traceback" not in output, f"{block}:\n{output}"

    def start(self, block: Block, port: int) -> None:
        self.stop()
        port = self.ports[next(n for n, p in DEFAULT_PORTS.items() if p == port)]
        log = self.home / f"job-{block.line}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.command(block),
                cwd=self.home,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        self.job = (block, proc, log)
        deadline = time.monotonic() + BLOCK_TIMEOUT_S
        while not listening(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{block} did not listen on {port}:\n{log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Ctrl-C the background job, as its section says to; it must end cleanly."""
        if self.job is None:
            return
        block, proc, log = self.job
        self.job = None
        os.killpg(proc.pid, signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{block} did not stop on Ctrl-C in 30 s:\n{log.read_text()}")
        output = log.read_text(errors="replace")
        assert code == 0, f"{block} exited {code} on Ctrl-C:\n{output}"
        assert "Traceback" not in output, f"{block}:\n{output}"

    def kill(self) -> None:
        if self.job is not None:
            with_proc = self.job[1]
            if with_proc.poll() is None:
                os.killpg(with_proc.pid, signal.SIGKILL)
                with_proc.wait()
            self.job = None


def test_the_readme_marks_a_path_from_the_demo_to_the_dashboard() -> None:
    blocks = runnable_blocks(README.read_text())
    background = [b.body.split()[1] for b in blocks if b.background_port]
    assert background == ["demo", "agent", "dashboard"], background
    assert sum(b.lang == "python" for b in blocks) >= 3
    assert all(b.how in ("", "after flush") or b.background_port for b in blocks), blocks


def test_every_marked_readme_example_runs_in_order(tmp_path: Path) -> None:
    session = Session(tmp_path)
    try:
        for block in runnable_blocks(README.read_text()):
            session.run(block)
        session.stop()
    finally:
        session.kill()
    assert not list(tmp_path.glob("fleetgauge-demo-*")), "the demo left its directory behind"
