"""Pipelined JetStream publishing with every PubAck checked.

Publishes go out on the core connection with a reply subject under one inbox subscription that
collects the PubAcks, the fastest way Python can get messages stored with acknowledgement
(`js.publish()` waits a round trip per message; `js.publish_async()` costs a future and its
bookkeeping per message). At most `max_in_flight` copies are unacknowledged at once: when the
window is full, `send()` waits, so the reader stops reading and the file stays the buffer.
Copies are handed over in batches, their frames built by `wire` and queued together.

The fast path allocates no task: an ack resolves its copy in the subscription callback. A copy
that times out, meets no responders or gets an error reply moves to the slow path: a retry task
driven by tenacity (exponential backoff with jitter, no attempt limit) that republishes it with
the same `Nats-Msg-Id`, so a re-send inside the duplicate window is absorbed by the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

import nats.errors
import orjson
from nats.aio.msg import Msg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential_jitter,
)

from agent_comms.bus import Connection
from agent_comms.core.subjects import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, MSG_ID_HEADER
from agent_comms.publisher import wire

log = logging.getLogger(__name__)

SWEEP_INTERVAL_MAX_S: Final = 0.25
WRITE_BYTES: Final = 256 * 1024
"""Frames are queued in pieces of about this size: large enough to cost one call per hundred
copies, small enough that a batch is never held twice in memory at once."""
NO_RESPONDERS_STATUS: Final = "503"

# JetStream API error codes that no retry can fix (the body itself is refused).
PERMANENT_ERR_CODES: Final = frozenset({10054})  # maximum message size exceeded


class PublishFailed(Exception):
    """A transient publish failure (timeout, no responders, error reply, connection down)."""


class PublishRejected(Exception):
    """JetStream refused the message for good; retrying cannot help."""


class Outcome:
    """Receives the final result of each copy; implemented by the publisher's line tickets."""

    __slots__ = ()

    def acked(self, duplicate: bool = False) -> None:
        """Stored (or, with `duplicate`, already stored: a re-send inside the duplicate window)."""
        raise NotImplementedError

    def rejected(self, reason: str) -> None:
        raise NotImplementedError


class Copy:
    """One message to store: a subject, an encoded body, its `Nats-Msg-Id` and who to tell."""

    __slots__ = ("deadline", "future", "msg_id", "outcome", "payload", "subject")

    def __init__(self, subject: str, payload: bytes, msg_id: str, outcome: Outcome) -> None:
        self.subject = subject
        self.payload = payload
        self.msg_id = msg_id
        self.outcome = outcome
        self.deadline = 0.0
        self.future: asyncio.Future[bool] | None = None


class Sender:
    """Sends copies with a bounded window and retries until acknowledged or closed."""

    def __init__(
        self,
        conn: Connection,
        *,
        max_in_flight: int,
        ack_timeout_s: float,
        retry_initial_wait_s: float,
        retry_max_wait_s: float,
    ) -> None:
        self._conn = conn
        self._max = max_in_flight
        self._ack_timeout_s = ack_timeout_s
        self._retry_initial_s = retry_initial_wait_s
        self._retry_max_s = retry_max_wait_s
        self._space = asyncio.Event()
        self._space.set()
        self._pending: dict[str, Copy] = {}
        self._tokens = itertools.count(1)
        self._prefix = ""
        self._reply_prefix = ""
        self._reply_prefix_b = b""
        self._subjects: dict[str, bytes] = {}
        self._raw = False
        self._token_at = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.in_flight = 0
        self.acked = 0
        self.retries = 0
        self.rejected = 0
        self.last_ack_at = 0.0

    async def start(self) -> None:
        """Subscribe the reply inbox and start the ack-timeout sweeper (needs a connection)."""
        nc = self._conn.nc
        self._loop = asyncio.get_running_loop()
        self._prefix = nc.new_inbox()
        self._reply_prefix = self._prefix + "."
        self._reply_prefix_b = self._reply_prefix.encode()
        self._token_at = len(self._reply_prefix)
        self._raw = wire.supported(nc)
        if not self._raw:
            log.warning("nats_client_fallback", extra={"reason": "nats-py lacks the members wire.py uses"})
        self._sub = await nc.subscribe(self._prefix + ".*", cb=self._on_reply)
        self._spawn(self._sweep())

    @property
    def started(self) -> bool:
        return self._sub is not None

    async def send(self, copies: Sequence[Copy], expired: Callable[[], bool] | None = None) -> int:
        """Publish the copies in order, taking window slots (waiting while the window is full).

        Returns how many were handed over: fewer than all only when `expired()` turned true while
        waiting for a slot.
        """
        sent, total = 0, len(copies)
        while sent < total:
            room = self._max - self.in_flight
            if room <= 0:
                self._space.clear()
                if expired is not None and expired():
                    return sent
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._space.wait(), SWEEP_INTERVAL_MAX_S)
                continue
            batch = copies[sent : sent + room]
            self.in_flight += len(batch)
            self._idle.clear()
            await self._publish(batch)
            sent += len(batch)
        return sent

    async def wait_idle(self, expired: Callable[[], bool]) -> bool:
        """Wait until every copy is acknowledged; False if `expired()` turns true first."""
        while not self._idle.is_set():
            if expired():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), SWEEP_INTERVAL_MAX_S)
        return True

    async def close(self) -> None:
        """Stop retrying and stop listening for acks; copies still in flight stay unacknowledged."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._sub is not None and not self._conn.nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._sub = None

    # -- publishing --------------------------------------------------------------------------

    async def _publish(self, copies: Sequence[Copy]) -> None:
        """Register each copy under a fresh reply token, then queue their frames."""
        assert self._loop is not None, "start() first"
        deadline = self._loop.time() + self._ack_timeout_s
        tokens: list[str] = []
        for copy in copies:
            token = str(next(self._tokens))
            copy.deadline = deadline
            self._pending[token] = copy
            tokens.append(token)
        nc = self._conn.nc
        queued = 0  # copies whose frames nats-py holds: acked or timed out like any other
        try:
            if self._raw:
                for end, data in self._frames(copies, tokens):
                    await wire.write(nc, data, end - queued)
                    queued = end
            else:
                for copy, token in zip(copies, tokens, strict=True):
                    headers = {MSG_ID_HEADER: copy.msg_id, CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE}
                    await nc.publish(
                        copy.subject, copy.payload, reply=self._reply_prefix + token, headers=headers
                    )
                    queued += 1
        except (nats.errors.OutboundBufferLimitError, nats.errors.ConnectionClosedError) as exc:
            failed = PublishFailed(repr(exc))
            for token in tokens[queued:]:
                unsent = self._pending.pop(token, None)
                if unsent is not None:
                    self._fail(unsent, failed)

    def _frames(self, copies: Sequence[Copy], tokens: list[str]) -> Iterator[tuple[int, bytes]]:
        """The copies' frames joined in pieces of about WRITE_BYTES: (copies covered so far, bytes)."""
        parts: list[bytes] = []
        size = 0
        reply = self._reply_prefix_b
        subjects = self._subjects
        for i, copy in enumerate(copies):
            subject = subjects.get(copy.subject)
            if subject is None:
                subject = subjects[copy.subject] = copy.subject.encode()
            header = wire.header_block(copy.msg_id)
            payload = copy.payload
            head = wire.frame_head(subject, reply + tokens[i].encode(), len(header), len(payload))
            parts += (head, header, payload, wire.CRLF)
            size += len(header) + len(payload)
            if size >= WRITE_BYTES:
                yield i + 1, b"".join(parts)
                parts, size = [], 0
        if parts:
            yield len(copies), b"".join(parts)

    def _finish(self) -> None:
        self.in_flight -= 1
        self._space.set()
        if self.in_flight == 0:
            self._idle.set()

    def _fail(self, copy: Copy, exc: Exception) -> None:
        if copy.future is not None:
            if not copy.future.done():
                copy.future.set_exception(exc)
        else:
            self._spawn(self._retry(copy, exc))

    async def _on_reply(self, msg: Msg) -> None:
        copy = self._pending.pop(msg.subject[self._token_at :], None)
        if copy is None:
            return  # a late ack for a copy that already timed out and was re-sent
        try:
            duplicate = self._read_ack(msg)
        except PublishRejected as exc:
            if copy.future is None:
                self._reject(copy, str(exc))
            else:
                self._fail(copy, exc)
            return
        except PublishFailed as exc:
            self._fail(copy, exc)
            return
        self.acked += 1
        assert self._loop is not None
        self.last_ack_at = self._loop.time()
        if copy.future is not None:
            if not copy.future.done():
                copy.future.set_result(duplicate)
            return
        copy.outcome.acked(duplicate)
        self._finish()

    @staticmethod
    def _read_ack(msg: Msg) -> bool:
        """Whether the PubAck says `duplicate`; raises PublishFailed (retry) or PublishRejected."""
        data = msg.data
        if not data:
            status = (msg.headers or {}).get("Status", "")
            if status == NO_RESPONDERS_STATUS:
                raise PublishFailed("no responders: no stream covers the subject, or JetStream is down")
            raise PublishFailed(f"empty reply (status {status or 'none'})")
        try:
            resp = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise PublishFailed(f"unreadable PubAck: {data[:200]!r}") from None
        if not isinstance(resp, dict):
            raise PublishFailed(f"unexpected PubAck: {data[:200]!r}")
        err = resp.get("error")
        if err:
            text = f"JetStream error {err.get('code')}/{err.get('err_code')}: {err.get('description')}"
            if err.get("err_code") in PERMANENT_ERR_CODES:
                raise PublishRejected(text)
            raise PublishFailed(text)
        if "seq" not in resp:
            raise PublishFailed(f"unexpected PubAck: {data[:200]!r}")
        # The server writes `"duplicate": true` (with a space): read it, never match bytes.
        return resp.get("duplicate") is True

    def _reject(self, copy: Copy, reason: str) -> None:
        self.rejected += 1
        log.error("publish_rejected", extra={"subject": copy.subject, "reason": reason})
        copy.outcome.rejected(reason)
        self._finish()

    # -- slow path ---------------------------------------------------------------------------

    async def _retry(self, copy: Copy, first: Exception) -> None:
        """Re-send one copy until it is acknowledged (or the sender is closed)."""
        log.debug("publish_retry", extra={"subject": copy.subject, "error": str(first)})
        await asyncio.sleep(self._retry_initial_s * random.uniform(0.5, 1.5))
        try:
            async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(
                    multiplier=self._retry_initial_s, max=self._retry_max_s, jitter=self._retry_initial_s
                ),
                retry=retry_if_exception_type(PublishFailed),
                stop=stop_never,
                before_sleep=self._log_retry,
                reraise=True,
            ):
                with attempt:
                    self.retries += 1
                    await self._conn.connected.wait()
                    copy.future = asyncio.get_running_loop().create_future()
                    await self._publish((copy,))
                    duplicate = await copy.future
        except PublishRejected as exc:
            copy.future = None
            self._reject(copy, str(exc))
            return
        copy.future = None
        copy.outcome.acked(duplicate)
        self._finish()

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.debug("publish_retry_wait", extra={"attempt": state.attempt_number, "error": str(exc)})

    async def _sweep(self) -> None:
        """Fail copies whose ack did not come in time. Deadlines grow in insertion order."""
        interval = min(self._ack_timeout_s / 4, SWEEP_INTERVAL_MAX_S)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            expired: list[str] = []
            for token, copy in self._pending.items():
                if copy.deadline > now:
                    break
                expired.append(token)
            for token in expired:
                copy = self._pending.pop(token)
                self._fail(copy, PublishFailed(f"no PubAck within {self._ack_timeout_s}s"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
