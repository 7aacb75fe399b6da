"""The project as processes, the way the pods run them: `agent-comms consume`, `backfill`, `publish`.

- `measure_ingest`: `agent-comms consume` on the real durable (re-created, so it delivers the
  whole stream), timed from spawn until the server counts every message acknowledged; since
  the consumer acks only after the commit, that is also when the last row is committed.
- `measure_backfill`: `agent-comms backfill --from DIR`, spawn to exit, with its JSON summary.
- `measure_latency`: a consumer running, `agent-comms publish` watching a workspace, lines
  written at a steady rate; a line's latency runs from its `write()` to the commit of the last
  of its rows, learnt from a NOTIFY that a statement trigger created in the bench database only
  sends (delivered by Postgres at commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Final

import nats
import orjson
import psycopg
from baselines import IDENTITY
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from process import EVENTS_NAME, cli_cmd, publisher_cmd, publisher_env, run_timed, watch_log
from read_ceilings import POLL_S, all_acked, durable_config, recreate_durable
from report import TreeCpuMeter

from agent_comms.consumer.metadata import parse_ack_subject
from agent_comms.core.subjects import MSG_ID_HEADER
from agent_comms.embedded import free_port
from agent_comms.jetstream import DURABLE_NAME, STREAM_NAME

LATENCY_IDENTITY: Final = {**IDENTITY, "WORKFLOW_UID": "3f0c7c1e-5d2a-4d47-9a55-bench0000002"}
"""The latency run's own workflow: the 100,000 messages already hold IDENTITY's ids."""

NOTIFY_CHANNEL: Final = "bench_rows_committed"
_NOTIFY_TRIGGER: Final = f"""
CREATE FUNCTION public.{NOTIFY_CHANNEL}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE lo bigint; hi bigint; n bigint;
BEGIN
    SELECT min(id), max(id), count(*) INTO lo, hi, n FROM new_rows;
    IF n > 0 THEN
        PERFORM pg_notify('{NOTIFY_CHANNEL}', lo || ',' || hi || ',' || n);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER {NOTIFY_CHANNEL}
    AFTER INSERT ON workflow_comms.agent_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION public.{NOTIFY_CHANNEL}();
"""


def project_env(nats_url: str, dsn: str, identity: dict[str, str] = IDENTITY) -> dict[str, str]:
    env = {k: v for k, v in publisher_env(nats_url).items() if k != "DATABASE_URL"}
    return {**env, **identity, "DATABASE_URL": dsn}


class Consumer:
    """`agent-comms consume` as a child process; its log is saved, and each event's first time kept."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, t0: float) -> None:
        self.proc = proc
        self.log_path = log_path
        self.t0 = t0
        self.seen: dict[str, float] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed when the process's stderr ends
        self._reader = asyncio.create_task(self._read_log())

    @classmethod
    async def start(cls, nats_url: str, dsn: str, log_path: Path, *args: str) -> Consumer:
        cmd = cli_cmd("consume", "--http-host", "127.0.0.1", "--http-port", str(free_port()),
                      "--log-format", "json", *args)  # fmt: skip
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=project_env(nats_url, dsn),
        )
        return cls(proc, log_path, t0)

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        with self._log as out:
            async for raw in self.proc.stderr:
                out.write(raw)
                with contextlib.suppress(orjson.JSONDecodeError):
                    doc = orjson.loads(raw)
                    if isinstance(doc, dict) and isinstance(doc.get("event"), str):
                        name = doc["event"]
                        self.seen.setdefault(name, time.perf_counter())
                        if name in self._events:
                            self._events[name].set()

    async def wait_event(self, name: str, timeout_s: float) -> None:
        event = self._events.setdefault(name, asyncio.Event())
        if name in self.seen:
            return
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            raise SystemExit(f"the consumer did not log {name} in {timeout_s:.0f}s:\n{self.tail()}") from None

    def check_alive(self) -> None:
        if self.proc.returncode is not None:
            raise SystemExit(f"the consumer exited with {self.proc.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    async def stop(self, timeout_s: float = 30) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds from the signal to the exit)."""
        t0 = time.perf_counter()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode or 0, time.perf_counter() - t0

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self._reader.cancel()


async def measure_ingest(
    nats_url: str, dsn: str, *, last_seq: int, batch_size: int, log_path: Path, cpu_roots: dict[str, int]
) -> dict[str, Any]:
    """`agent-comms consume --batch-size N` on the re-created real durable, spawn to all acknowledged."""
    nc = await nats.connect(nats_url, name="bench-ingest-watch")
    consumer: Consumer | None = None
    try:
        js = nc.jetstream(timeout=10)
        await recreate_durable(js, durable_config(DURABLE_NAME))
        with TreeCpuMeter(**cpu_roots) as cpu:
            consumer = await Consumer.start(nats_url, dsn, log_path, "--batch-size", str(batch_size))
            cpu.track("consumer", consumer.proc.pid)
            deadline = time.monotonic() + 300
            while await all_acked(js, DURABLE_NAME, last_seq) is None:
                consumer.check_alive()
                if time.monotonic() > deadline:
                    raise SystemExit(f"the consumer did not ack every message in 300s:\n{consumer.tail()}")
                await asyncio.sleep(POLL_S)
            took = time.perf_counter() - consumer.t0
        bound = consumer.seen.get("consumer_bound", math.nan) - consumer.t0
        code, stop_s = await consumer.stop()
    finally:
        if consumer is not None:
            await consumer.kill()
        await nc.close()
    return {
        "batch_size": batch_size,
        "seconds": took,
        "spawn_to_bound_s": bound,
        "bound_to_done_s": took - bound,
        "cpu": cpu.result,
        "exit_code": code,
        "sigterm_to_exit_s": stop_s,
    }


def measure_backfill(source_dir: Path, nats_url: str, dsn: str, workdir: Path, label: str,
                     cpu_roots: dict[str, int]) -> dict[str, Any]:  # fmt: skip
    """`agent-comms backfill --from DIR` with the run's identity in the environment, spawn to exit."""
    with TreeCpuMeter(**cpu_roots) as cpu:
        result = run_timed(
            cli_cmd("backfill", "--from", str(source_dir)), project_env(nats_url, dsn), workdir, label
        )
    result["cpu"] = cpu.result
    if result["exit_code"] != 0:
        raise SystemExit(f"agent-comms backfill exited {result['exit_code']}:\n{result['stderr_tail']}")
    return result


# -- latency -------------------------------------------------------------------------------------


async def add_notify_trigger(dsn: str) -> None:
    """In the bench's own database: a NOTIFY per insert statement with its id range and row count."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await conn.execute(_NOTIFY_TRIGGER)
    finally:
        await conn.close()


class CommitWatch:
    """When each insert statement committed: (time received, first id, last id, rows), from NOTIFY."""

    def __init__(self, expected_rows: int) -> None:
        self.commits: list[tuple[float, int, int, int]] = []
        self.rows = 0
        self.expected = expected_rows
        self.all_committed = asyncio.Event()

    async def listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for note in conn.notifies():
            t = time.perf_counter()
            lo, hi, n = (int(x) for x in note.payload.split(","))
            self.commits.append((t, lo, hi, n))
            self.rows += n
            if self.rows >= self.expected:
                self.all_committed.set()

    def committed_at(self, row_id: int) -> float:
        for t, lo, hi, _ in self.commits:
            if lo <= row_id <= hi:
                return t
        return math.inf


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))]


async def stored_times(nats_url: str, first_seq: int) -> dict[tuple[int, str], float]:
    """(line, channel) -> when the stream stored the message (server clock, Unix seconds), from
    `first_seq` on, through a headers-only ephemeral consumer (the time is in the ack subject)."""
    nc = await nats.connect(nats_url, name="bench-stored-times")
    out: dict[tuple[int, str], float] = {}
    try:
        config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=first_seq, headers_only=True)  # fmt: skip
        sub = await nc.jetstream(timeout=10).pull_subscribe(
            "", durable=None, stream=STREAM_NAME, config=config
        )
        while True:
            try:
                msgs = await sub.fetch(5000, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):  # fetch() raises either
                break
            for msg in msgs:
                meta = parse_ack_subject(msg.reply)
                parts = (msg.headers or {}).get(MSG_ID_HEADER, "").split(":")
                if meta is not None and len(parts) >= 4:
                    channel = "general" if parts[-1] == "general" else "run"
                    out.setdefault((int(parts[2]), channel), meta.timestamp_ns / 1e9)
        await sub.unsubscribe()
    finally:
        await nc.close()
    return out


async def write_at_rate(path: Path, lines: list[bytes], rate: int, found: asyncio.Event) -> list[float]:
    """Append `lines` to `path` at `rate` per second, one `write()` each, once the publisher found
    the file; returns when each line was written (perf_counter, index = line number)."""
    written = [0.0] * (len(lines) + 1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        await asyncio.wait_for(found.wait(), 20)
        start = time.perf_counter()
        for i, line in enumerate(lines, 1):
            delay = start + (i - 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            os.write(fd, line)  # one write per line: what a flush per line does
            written[i] = time.perf_counter()
    finally:
        os.close(fd)
    return written


async def measure_latency(
    nats_url: str,
    dsn: str,
    watch: Path,
    lines: list[bytes],
    rate: int,
    log_dir: Path,
    cpu_roots: dict[str, int],
) -> dict[str, Any]:
    """Write `lines` at `rate` per second into a watched file; time each from its write to its rows' commit.

    Split in two with the time the stream stored each message: write -> stored (the publisher's
    part) and stored -> committed (the consumer's part).
    """
    n_lines = len(lines)
    await add_notify_trigger(dsn)
    listener = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    watcher = CommitWatch(2 * n_lines)
    await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    listen_task = asyncio.create_task(watcher.listen(listener))
    first_seq = await next_seq(nats_url)
    consumer = await Consumer.start(nats_url, dsn, log_dir / "consumer-latency.log")
    publisher: asyncio.subprocess.Process | None = None
    try:
        await consumer.wait_event("consumer_bound", 30)
        seen = {"nats_connected": asyncio.Event(), "file_found": asyncio.Event()}
        publisher = await asyncio.create_subprocess_exec(
            *publisher_cmd(watch), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**publisher_env(nats_url), **LATENCY_IDENTITY},
        )  # fmt: skip
        assert publisher.stderr is not None and publisher.stdout is not None
        log_task = asyncio.create_task(watch_log(publisher.stderr, seen))
        await asyncio.wait_for(seen["nats_connected"].wait(), 20)
        with TreeCpuMeter(**cpu_roots, consumer=consumer.proc.pid, publisher=publisher.pid) as cpu:
            wall0, perf0 = time.time(), time.perf_counter()
            written = await write_at_rate(watch / EVENTS_NAME, lines, rate, seen["file_found"])
            write_s = written[-1] - written[1]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watcher.all_committed.wait(), 30)
        publisher.send_signal(signal.SIGTERM)
        await asyncio.wait_for(publisher.stdout.read(), 60)
        publisher_code = await asyncio.wait_for(publisher.wait(), 60)
        log_task.cancel()
        consumer_code, _ = await consumer.stop()
        # notifies() holds the connection: stop listening before querying on it.
        listen_task.cancel()
        await asyncio.gather(listen_task, return_exceptions=True)
        cur = await listener.execute(
            "SELECT id, line, channel FROM workflow_comms.agent_messages WHERE workflow_uid = %s",
            (LATENCY_IDENTITY["WORKFLOW_UID"],),
        )
        rows = await cur.fetchall()
        stored = await stored_times(nats_url, first_seq)
    finally:
        if publisher is not None and publisher.returncode is None:
            publisher.kill()
            await publisher.wait()
        await consumer.kill()
        listen_task.cancel()
        await listener.close()

    # Per line: its last row committed, its last copy stored (a line is done when both are).
    committed: dict[int, list[float]] = {}
    for row_id, line, _channel in rows:
        committed.setdefault(line, []).append(watcher.committed_at(row_id))
    total, publisher_part, consumer_part = [], [], []
    for line, ts in committed.items():
        if not 1 <= line <= n_lines or len(ts) != 2 or max(ts) == math.inf:
            continue
        total.append((max(ts) - written[line]) * 1000)
        in_stream = [stored.get((line, c)) for c in ("run", "general")]
        if None not in in_stream:
            at = max(t for t in in_stream if t is not None) - wall0 + perf0  # server clock -> perf_counter
            publisher_part.append((at - written[line]) * 1000)
            consumer_part.append((max(ts) - at) * 1000)
    return {
        "rate_lines_per_s": rate,
        "lines": n_lines,
        "achieved_lines_per_s": (n_lines - 1) / write_s if write_s else math.nan,
        "rows": len(rows),
        "lines_committed": len(total),
        "commits": len(watcher.commits),
        **summarize(total),
        "write_to_stored": summarize(publisher_part),
        "stored_to_committed": summarize(consumer_part),
        "publisher_exit_code": publisher_code,
        "consumer_exit_code": consumer_code,
        "cpu": cpu.result,
    }


def summarize(delays_ms: list[float]) -> dict[str, float]:
    values = sorted(delays_ms)
    return {
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "max_ms": values[-1] if values else math.nan,
    }


async def next_seq(nats_url: str) -> int:
    """The sequence the stream gives its next message."""
    nc = await nats.connect(nats_url, name="bench-stream-info")
    try:
        info = await nc.jetstream(timeout=10).stream_info(STREAM_NAME)
        return int(info.state.last_seq) + 1
    finally:
        await nc.close()
