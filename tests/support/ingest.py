"""Driving the ingest path from tests: bodies, publishing, `nats apply`, the consumer process, rows.

Bodies are built with the contract's own functions (`build_body`, `encode_copies`, the line
splitter for ids), so what is published is exactly what a publisher would send.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
import psycopg

from agent_comms.core.lines import LineSplitter
from agent_comms.core.message import (
    FileIdentity,
    Normalized,
    RunIdentity,
    build_body,
    encode_copies,
    rfc3339_now,
)
from agent_comms.core.subjects import GENERAL_ID_SUFFIX, MSG_ID_HEADER, general_subject, run_subject
from agent_comms.embedded import free_port
from agent_comms.jetstream import STREAM_NAME
from agent_comms.store import StoredDeadLetter, StoredMessage, channel_counts, list_dead_letters, run_messages

REPO = Path(__file__).resolve().parents[2]
STREAM_YAML = REPO / "nats" / "stream.yaml"
CONSUMER_YAML = REPO / "jangar-consumer" / "consumer.yaml"
PREFIX = "argo.workflow"

RUN = RunIdentity(
    workflow_uid="uid-ingest-1",
    workflow_name="codex-impl-ingest",
    workflow_namespace="agents",
    step_id="codex-impl-ingest-step-1",
    run_id="run-42",
)
SOURCE = ".codex-implementation-events.jsonl"

FAST_CONSUMER = [
    "--bind-retry",
    "0.2",
    "--probe-interval",
    "0.2",
    "--pull-expires",
    "1",
    "--db-retry-max-wait",
    "0.5",
    "--db-connect-timeout",
    "1",
    "--drain-timeout",
    "10",
    "--log-format",
    "json",
]


def make_bodies(
    n: int, *, run: RunIdentity = RUN, source: str = SOURCE, start: int = 1
) -> list[dict[str, Any]]:
    """`n` bodies (without `channel`) of consecutive lines `start..start+n-1` of one file."""
    data = b"".join(f"Step {i}: working on it.\n".encode() for i in range(1, start + n))
    lines = LineSplitter(run.step_id, max_line_bytes=1 << 20).feed(data)[start - 1 :]
    file = FileIdentity(source=source, agent_id="implementation", stage="implementation")
    read_at = rfc3339_now()
    kinds = ("message", "tool_call", "tool_result", "status", "log")
    bodies = []
    for ln in lines:
        kind = kinds[ln.number % len(kinds)]
        tool = (
            {"name": "shell", "call_id": f"c{ln.number}", "status": "ok"} if kind.startswith("tool") else None
        )
        norm = Normalized(
            kind=kind,  # type: ignore[arg-type]
            role="tool" if tool else "assistant",
            content=ln.data.decode(),
            tool=tool,
            attrs={"event_type": "item.completed", "n": ln.number},
        )
        bodies.append(build_body(run, file, ln, norm, read_at))
    return bodies


@dataclass(frozen=True)
class Outgoing:
    subject: str
    payload: bytes
    msg_id: str


def encode(
    bodies: Iterable[dict[str, Any]], *, general: bool = True, max_payload: int = 1 << 20
) -> list[Outgoing]:
    """Both copies of each body, as the publisher sends them (subject, bytes, Nats-Msg-Id)."""
    out = []
    for body in bodies:
        copies = encode_copies(body, general=general, max_payload=max_payload)
        subject = run_subject(
            PREFIX,
            body["workflow_namespace"],
            body["workflow_name"],
            body["workflow_uid"],
            body["agent_id"],
            body["kind"],
        )
        out.append(Outgoing(subject, copies.run, copies.message_id))
        if copies.general is not None:
            out.append(
                Outgoing(
                    general_subject(PREFIX, body["kind"]),
                    copies.general,
                    copies.message_id + GENERAL_ID_SUFFIX,
                )
            )
    return out


async def publish(url: str, messages: list[Outgoing], *, chunk: int = 2000) -> None:
    """Publish with PubAcks checked (pipelined in chunks): every message is in the stream after."""
    nc = await nats.connect(url, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        for i in range(0, len(messages), chunk):
            acks = [
                js.publish_async(m.subject, m.payload, headers={MSG_ID_HEADER: m.msg_id}, wait_stall=30.0)
                for m in messages[i : i + chunk]
            ]
            for fut in await asyncio.gather(*acks):
                await fut
    finally:
        await nc.close()


def publish_sync(url: str, messages: list[Outgoing]) -> None:
    asyncio.run(publish(url, messages))


def nats_apply(url: str, *files: Path, extra: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Run the real `agent-comms nats apply` (single-server overrides); its JSON lines."""
    cmd = [
        sys.executable,
        "-m",
        "agent_comms",
        "nats",
        "apply",
        *map(str, files),
        "--replicas",
        "1",
        "--duplicate-window",
        "2s",
        "--max-bytes",
        "1G",
        *extra,
    ]
    done = subprocess.run(cmd, env={**os.environ, "NATS_URL": url}, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return [orjson.loads(ln) for ln in done.stdout.splitlines() if ln.startswith(b"{")]


def apply_repo_resources(url: str, *, ack_wait: str = "2s", max_deliver: int = 10) -> None:
    nats_apply(
        url, STREAM_YAML, CONSUMER_YAML, extra=["--ack-wait", ack_wait, "--max-deliver", str(max_deliver)]
    )


@dataclass
class ConsumerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float = field(default_factory=time.monotonic)

    def readyz(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as resp:
                return resp.status, orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, orjson.loads(exc.read())

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as resp:
            return str(resp.read().decode())

    def wait_http(self, timeout_s: float = 20) -> None:
        wait_for(self._http_up, timeout_s, "the consumer's HTTP server", self)

    def _http_up(self) -> bool:
        try:
            return self.get("/healthz").strip() == "ok"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, timeout_s: float = 30) -> None:
        self.wait_http(timeout_s)
        wait_for(lambda: self.readyz()[0] == 200, timeout_s, "/readyz 200", self)

    def terminate(self, timeout_s: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                doc = orjson.loads(line)
                if doc.get("event") == name:
                    out.append(doc)
        return out


def start_consumer(nats_url: str, dsn: str, log_dir: Path, *args: str) -> ConsumerProcess:
    port = free_port()
    log_path = log_dir / f"consumer-{time.monotonic_ns()}.log"
    env = {**os.environ, "NATS_URL": nats_url, "DATABASE_URL": dsn}
    cmd = [
        sys.executable,
        "-m",
        "agent_comms",
        "consume",
        "--http-host",
        "127.0.0.1",
        "--http-port",
        str(port),
        *FAST_CONSUMER,
        *args,
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    return ConsumerProcess(proc, port, log_path)


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, consumer: ConsumerProcess | None = None
) -> None:
    """Poll a condition on real servers until it holds; fail with the consumer's log tail otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if consumer is not None and consumer.proc.poll() is not None:
            raise AssertionError(
                f"consumer exited ({consumer.proc.returncode}) waiting for {what}:\n{consumer.log()[-4000:]}"
            )
        time.sleep(0.05)
    tail = f"\n{consumer.log()[-4000:]}" if consumer else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{tail}")


def _run(dsn: str, fn: Callable[[Any], Any]) -> Any:
    async def go() -> Any:
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            return await fn(conn)
        finally:
            await conn.close()

    return asyncio.run(go())


def counts(dsn: str) -> dict[str, int]:
    """Rows per channel over the whole table; {} while the table does not exist yet."""
    try:
        return dict(_run(dsn, channel_counts))
    except psycopg.errors.UndefinedTable:
        return {}


def stored(dsn: str, workflow_uid: str = RUN.workflow_uid, channel: str = "run") -> list[StoredMessage]:
    return list(_run(dsn, lambda c: run_messages(c, workflow_uid, channel=channel)))


def dead_letters(dsn: str, *, include_replayed: bool = False) -> list[StoredDeadLetter]:
    return list(_run(dsn, lambda c: list_dead_letters(c, include_replayed=include_replayed, limit=10_000)))


def duplicate_keys(dsn: str) -> int:
    """Rows sharing (message_id, channel): always 0 under the unique key; checked anyway."""

    async def go(conn: Any) -> int:
        cur = await conn.execute(
            "SELECT count(*) FROM (SELECT 1 FROM workflow_comms.agent_messages "
            "GROUP BY message_id, channel HAVING count(*) > 1) d"
        )
        row = await cur.fetchone()
        return int(row[0])

    return int(_run(dsn, go))


def stream_state(url: str) -> Any:
    async def go() -> Any:
        nc = await nats.connect(url, max_reconnect_attempts=1)
        try:
            return await nc.jetstream().stream_info(STREAM_NAME)
        finally:
            await nc.close()

    return asyncio.run(go())


def consumer_state(url: str) -> Any:
    async def go() -> Any:
        nc = await nats.connect(url, max_reconnect_attempts=1)
        try:
            return await nc.jetstream().consumer_info(STREAM_NAME, "jangar-agent-comms")
        finally:
            await nc.close()

    return asyncio.run(go())
