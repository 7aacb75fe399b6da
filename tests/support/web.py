"""The web half under test: `agent-comms consume` as a process, rows written the way writers do,
and plain HTTP requests against it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from agent_comms.core.message import RunIdentity, body_with_channel
from agent_comms.embedded import free_port
from agent_comms.settings import StoreSettings
from agent_comms.store import Conn, MessageRow, connect, insert_rows, row_from_body
from tests.support.ingest import FAST_CONSUMER, RUN, ConsumerProcess, make_bodies

WEB_FAST = ["--sse-heartbeat", "1", "--live-poll-interval", "1"]


def start_web(
    dsn: str,
    log_dir: Path,
    *args: str,
    nats_url: str | None = None,
    env: dict[str, str] | None = None,
    host: str | None = "127.0.0.1",
) -> ConsumerProcess:
    """`agent-comms consume` serving the web half; `--no-ingest` unless `nats_url` is given."""
    port = free_port()
    log_path = log_dir / f"web-{time.monotonic_ns()}.log"
    full_env = {k: v for k, v in os.environ.items() if k != "AGENT_COMMS_API_TOKEN"}
    full_env.update({"DATABASE_URL": dsn, **(env or {})})
    cmd = [
        sys.executable,
        "-m",
        "agent_comms",
        "consume",
        "--http-port",
        str(port),
        *FAST_CONSUMER,
        *WEB_FAST,
    ]
    if host is not None:
        cmd += ["--http-host", host]
    if nats_url is None:
        cmd.append("--no-ingest")
    else:
        full_env["NATS_URL"] = nats_url
    cmd += list(args)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    return ConsumerProcess(proc, port, log_path)


def run_identity(
    uid: str, *, run_id: str | None = None, name: str | None = None, namespace: str = "agents"
) -> RunIdentity:
    return replace(
        RUN, workflow_uid=uid, workflow_name=name or f"wf-{uid}", workflow_namespace=namespace, run_id=run_id
    )


def rows_for(bodies: list[dict[str, Any]], *, general: bool = True) -> list[MessageRow]:
    channels = ("run", "general") if general else ("run",)
    return [
        row_from_body(body_with_channel(b, ch), arrived_via="backfill")  # type: ignore[arg-type]
        for b in bodies
        for ch in channels
    ]


def bodies_for(uid: str, n: int, *, start: int = 1, **kw: Any) -> list[dict[str, Any]]:
    return make_bodies(n, run=run_identity(uid, **kw), start=start)


async def writer(dsn: str) -> Conn:
    return await connect(StoreSettings(dsn), autocommit=True)


async def insert(dsn: str, rows: list[MessageRow]) -> None:
    conn = await writer(dsn)
    try:
        await insert_rows(conn, rows)
    finally:
        await conn.close()


def http(
    c: ConsumerProcess,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    method: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one request; errors come back as their status, not raised."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{c.port}{path}", headers=headers or {}, data=data, method=method
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(c: ConsumerProcess, path: str, **kw: Any) -> tuple[int, Any]:
    status, _, body = http(c, path, **kw)
    return status, orjson.loads(body) if body else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def wait_live(c: ConsumerProcess, timeout_s: float = 30) -> None:
    """Until /readyz reports the LISTEN connection up (the web half is ready)."""
    c.wait_http(timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _status, doc = c.readyz()
        if doc.get("listening") and doc.get("migrated"):
            return
        if c.proc.poll() is not None:
            raise AssertionError(f"web process exited:\n{c.log()[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"web half not live after {timeout_s}s:\n{c.log()[-3000:]}")


def stop(c: ConsumerProcess) -> None:
    if c.proc.poll() is None:
        c.terminate(20)
