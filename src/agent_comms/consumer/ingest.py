"""The ingest loop: pull a batch, store it in one transaction, ack only after the commit.

Guarantees (DESIGN.md, issue 3):
- every message is acked only once its row (or its dead letter) is committed: a crash between
  commit and ack redelivers it, and the unique key stores it once;
- a message that can never be stored goes to the dead-letter table and is acked: it never
  blocks the stream and never loops;
- Postgres down: the batch in hand is retried with backoff and nothing more is pulled, so no
  delivery attempt is burnt and nothing is dead-lettered for an outage;
- stop: the batch in hand (and what was already delivered) is committed and acked, then the
  loop returns; if Postgres stays down past the drain timeout the batch is left unacked, to be
  redelivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.aio.msg import Msg

from agent_comms.bus import Connection
from agent_comms.consumer.binding import bind_consumer
from agent_comms.consumer.health import Health
from agent_comms.consumer.metadata import parse_ack_subject
from agent_comms.consumer.metrics import IngestMetrics
from agent_comms.consumer.puller import Puller
from agent_comms.settings import ConsumeSettings
from agent_comms.store import (
    Conn,
    DeadLetter,
    InsertResult,
    InvalidBody,
    MessageRow,
    add_dead_letters,
    connect,
    insert_rows_isolating,
    is_transient,
    migrate,
    prepare_staging,
    row_from_bytes,
)
from agent_comms.store.database import TRANSIENT, describe, retry_transient

log = logging.getLogger(__name__)

ACK = b"+ACK"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Bytes one pull request may bring: far above any single message (the server's max payload)."""


@dataclass(slots=True)
class Prepared:
    """A batch split by what can be stored: rows (with their messages) and dead letters."""

    rows: list[MessageRow]
    row_msgs: list[Msg]
    letters: list[DeadLetter]

    def extend(self, more: Prepared) -> None:
        self.rows += more.rows
        self.row_msgs += more.row_msgs
        self.letters += more.letters


class Ingest:
    """Binds the durable consumer and stores what it delivers; see the module docstring."""

    def __init__(
        self,
        settings: ConsumeSettings,
        nats_conn: Connection,
        health: Health,
        metrics: IngestMetrics,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.nats = nats_conn
        self.health = health
        self.metrics = metrics
        self.stop = stop
        self._db: Conn | None = None
        self._commits = 0
        self._stop_seen_at: float | None = None

    @property
    def commits(self) -> int:
        """Batches committed so far."""
        return self._commits

    async def run(self) -> None:
        """Connect, migrate, bind, ingest until stop, drain. Returns when stopped."""
        try:
            if not await self._until_stop(self.nats.connect()):
                return
            if not await self._migrate():
                return
            while not self.stop.is_set():
                info = await bind_consumer(
                    self.nats.nc.jetstream(), self.settings, self.health, self.metrics, self.stop, self._sleep
                )
                if info is None:
                    break
                await self._consume()
        finally:
            await self._close_db()

    # -- startup -----------------------------------------------------------------------------

    async def _until_stop(self, coro: Coroutine[Any, Any, object]) -> bool:
        """Run `coro` unless stop comes first (then cancel it); True when it finished."""
        task = asyncio.create_task(coro)
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopper):
                if not t.done():
                    t.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        if task.done() and not task.cancelled():
            task.result()  # re-raise a failure
            return True
        return False

    async def _migrate(self) -> bool:
        """Apply migrations, waiting out an unreachable Postgres; False if stopped meanwhile."""
        problem = f"Postgres at {describe(self.settings.store)} unreachable; check DATABASE_URL"

        async def attempt() -> list[int]:
            try:
                conn = await self._writer()
                return await migrate(conn)
            except TRANSIENT:
                self.health.set("database_ok", False, problem)
                await self._close_db()
                raise

        try:
            applied = await retry_transient(
                attempt,
                self.settings.store,
                what="migrate",
                should_give_up=self.stop.is_set,
                sleep=self._sleep,
            )
        except TRANSIENT:
            if self.stop.is_set():
                return False
            raise
        self.health.set("database_ok", True)
        self.health.set("migrated", True)
        log.info("migrations_checked", extra={"applied": applied})
        return True

    # -- the loop ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        s = self.settings
        puller = Puller(
            self.nats.nc, s.stream, s.durable, expires_s=s.pull_expires_s, max_request_bytes=MAX_REQUEST_BYTES
        )
        await puller.start(max_buffered=4 * s.batch_size)
        stop_watch = asyncio.create_task(self._wake_on_stop(puller))
        # One batch is committed (a task) while the next is validated: Postgres and Python work
        # side by side, yet commits stay one at a time, in order, on one connection.
        in_flight: asyncio.Task[None] | None = None
        try:
            while not self.stop.is_set() and self.health.consumer_bound:
                if puller.consumer_gone:
                    self.health.set("consumer_bound", False, f"the server said: {puller.consumer_gone}")
                    log.error("consumer_lost", extra={"status": puller.consumer_gone})
                    break
                # Two batches of credit: one arriving while the one in hand is stored. While
                # Postgres is down the loop waits on the commit below and asks for nothing.
                await puller.top_up(2 * s.batch_size, min_request=max(1, s.batch_size // 4))
                if await puller.wait(timeout_s=1.0):
                    batch = puller.take(s.batch_size)
                    if batch:
                        prepared = self._prepare(batch)
                        if in_flight is not None:
                            await in_flight
                            # What arrived during that commit joins this one instead of waiting
                            # for the next: a message waits for at most one commit before its own.
                            late = puller.take(s.batch_size - len(batch))
                            if late:
                                batch += late
                                prepared.extend(self._prepare(late))
                        in_flight = asyncio.create_task(self._store(batch, prepared))
            if in_flight is not None:
                await in_flight
            # Stopping: store what was already delivered (no new pulls), then stop listening.
            if self.stop.is_set():
                while puller.buffered and not self._drain_expired():
                    batch = puller.take(s.batch_size)
                    await self._store(batch, self._prepare(batch))
        finally:
            if in_flight is not None and not in_flight.done():
                # Only on a failure of this loop: the process is going down.
                in_flight.cancel()
                await asyncio.gather(in_flight, return_exceptions=True)
            stop_watch.cancel()
            await puller.stop()

    async def _wake_on_stop(self, puller: Puller) -> None:
        await self.stop.wait()
        self.health.set("stopping", True)
        puller.wake()

    async def _store(self, msgs: list[Msg], prepared: Prepared) -> None:
        """Commit a prepared batch, then ack all of it (dead letters included)."""
        try:
            result, letters = await self._commit(prepared)
        except TRANSIENT as exc:
            if not self._drain_expired():
                raise
            log.warning(
                "batch_abandoned",
                extra={"messages": len(msgs), "error": repr(exc), "note": "not acked: redelivered later"},
            )
            return
        self._commits += 1
        if self._commits == self.settings.exit_after_commits:
            # Test hook: die like a killed pod, after the commit and before any ack.
            log.warning("exit_after_commit_hook", extra={"commits": self._commits})
            os.kill(os.getpid(), signal.SIGKILL)
        self._count(prepared, result, letters)
        await self._ack(msgs)

    def _prepare(self, msgs: list[Msg]) -> Prepared:
        out = Prepared([], [], [])
        max_body = self.settings.max_body_bytes
        for msg in msgs:
            meta = parse_ack_subject(msg.reply) if msg.reply else None
            seq = meta.stream_seq if meta else None
            try:
                out.rows.append(
                    row_from_bytes(msg.data, max_body_bytes=max_body, arrived_via="nats", stream_seq=seq)
                )
            except InvalidBody as exc:
                out.letters.append(DeadLetter(msg.data, exc.reason, msg.subject, seq, msg.headers))
                log.warning(
                    "dead_letter", extra={"stream_seq": seq, "subject": msg.subject, "reason": exc.reason}
                )
                continue
            out.row_msgs.append(msg)
        last = parse_ack_subject(msgs[-1].reply) if msgs and msgs[-1].reply else None
        if last is not None:
            self.metrics.lag.set(last.pending)
        return out

    async def _commit(self, batch: Prepared) -> tuple[InsertResult, list[DeadLetter]]:
        """Rows and dead letters in one transaction, retried while Postgres is unreachable."""

        async def attempt() -> tuple[InsertResult, list[DeadLetter]]:
            try:
                conn = await self._writer()
                with self.metrics.commit_seconds.time():
                    async with conn.transaction():
                        isolated = await insert_rows_isolating(conn, batch.rows, staging_ready=True)
                        letters = batch.letters + [
                            self._rejected(batch, i, r) for i, r in isolated.rejected.items()
                        ]
                        await add_dead_letters(conn, letters)
            except BaseException as exc:
                if is_transient(exc):
                    self.metrics.database_retries.inc()
                    self.health.set("database_ok", False, f"Postgres unreachable: {exc!r}")
                    await self._close_db()
                raise
            self.health.set("database_ok", True)
            return isolated.result, letters

        return await retry_transient(
            attempt,
            self.settings.store,
            what="commit_batch",
            should_give_up=self._drain_expired,
            sleep=self._sleep,
        )

    def _rejected(self, batch: Prepared, index: int, reason: str) -> DeadLetter:
        msg = batch.row_msgs[index]
        row = batch.rows[index]
        log.warning(
            "dead_letter", extra={"stream_seq": row.stream_seq, "subject": msg.subject, "reason": reason}
        )
        return DeadLetter(msg.data, reason, msg.subject, row.stream_seq, msg.headers)

    async def _ack(self, msgs: list[Msg]) -> None:
        """Ack every message of a committed batch.

        The acks go out with nats-py's next write; the next commit does not wait for a round trip
        to confirm them (closing the connection writes what is still queued). A failure here, or
        a crash before they are written, loses nothing: unacked messages are redelivered and the
        unique key stores them once.
        """
        nc = self.nats.nc
        try:
            for msg in msgs:
                if msg.reply:
                    await nc.publish(msg.reply, ACK)
        except nats.errors.Error as exc:
            log.warning("ack_incomplete", extra={"messages": len(msgs), "error": repr(exc)})

    def _count(self, batch: Prepared, result: InsertResult, letters: list[DeadLetter]) -> None:
        inserted = Counter(channel for _, channel in result.inserted)
        present = Counter(channel for _, channel in result.present)
        for channel, n in inserted.items():
            self.metrics.rows.labels(channel).inc(n)
        for channel, n in present.items():
            self.metrics.duplicate_rows.labels(channel).inc(n)
        self.metrics.dead_letters.inc(len(letters))
        self.metrics.messages.labels("stored").inc(len(result.inserted))
        self.metrics.messages.labels("duplicate").inc(len(result.present))
        self.metrics.messages.labels("dead_letter").inc(len(letters))
        self.metrics.batches.inc()
        log.debug(
            "batch_committed",
            extra={"rows": len(batch.rows), "inserted": len(result.inserted), "dead_letters": len(letters)},
        )

    # -- helpers -----------------------------------------------------------------------------

    def _drain_expired(self) -> bool:
        """True once stop was requested more than the drain timeout ago."""
        if not self.stop.is_set():
            return False
        now = time.monotonic()
        if self._stop_seen_at is None:
            self._stop_seen_at = now
        return now - self._stop_seen_at > self.settings.drain_timeout_s

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when stop arrives; once stopping, never past the drain deadline."""
        if self.stop.is_set():
            self._drain_expired()  # records when stop was first seen
            assert self._stop_seen_at is not None
            remaining = self._stop_seen_at + self.settings.drain_timeout_s - time.monotonic()
            await asyncio.sleep(max(0.0, min(seconds, remaining)) + 0.01)
            return
        try:
            async with asyncio.timeout(seconds):
                await self.stop.wait()
        except TimeoutError:
            return

    async def _writer(self) -> Conn:
        """The connection batches are written on, opened on demand (again after a failure)."""
        if self._db is None or self._db.closed:
            db = await connect(self.settings.store)
            try:
                await prepare_staging(db)
            except BaseException:
                await db.close()
                raise
            self._db = db
        return self._db

    async def _close_db(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
