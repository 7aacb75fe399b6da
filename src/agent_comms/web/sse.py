"""`GET /api/agents/events`: history, then live, resumable by `Last-Event-ID` (DESIGN.md, HTTP).

A stream registers with the hub before it reads Postgres, then reads by cursor (`id`): the
newest `history` rows, or everything after the client's Last-Event-ID, page by page. Live rows
come from its queue; any row at or below the cursor is dropped, so nothing repeats. When its
queue overflowed (the client was slow), it re-reads from Postgres by cursor, so nothing is
missed either. Comment lines keep proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Final

import orjson
import psycopg_pool
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from agent_comms.settings import WebSettings
from agent_comms.store.database import TRANSIENT, Conn
from agent_comms.store.feed import Filters, Scope, latest_rows, rows_after
from agent_comms.store.runs import resolve
from agent_comms.web import params
from agent_comms.web.deflate import Deflated, Plain, Wire, accepts_deflate
from agent_comms.web.live import Hub, RunWatcher
from agent_comms.web.metrics import WebMetrics
from agent_comms.web.params import BadParameter, NotFound
from agent_comms.web.rows import encode_row, sse_event

log = logging.getLogger(__name__)

RETRY_MS: Final = 2000
"""What EventSource waits before reconnecting (it then sends Last-Event-ID)."""
READY_WAIT_S: Final = 5.0
HEARTBEAT: Final = b": keepalive\n\n"
SSE_HEADERS: Final = {
    "Cache-Control": "no-cache, no-transform",
    # nginx (and ingress-nginx) buffers responses unless told not to.
    "X-Accel-Buffering": "no",
}


class EventStreamResponse(Response):
    """Streams an async iterator of bytes, ending it as soon as the client disconnects.

    Starlette's StreamingResponse notices a gone client only when a write fails (ASGI 2.4), so an
    idle stream would linger until its next heartbeat; here a listener ends it at once.
    """

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[bytes, None], sent: Counter, headers: dict[str, str] | None = None
    ) -> None:
        self.events = events
        self.sent = sent
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        async def stream() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            try:
                async for chunk in self.events:
                    self.sent.inc(len(chunk))
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                await self.events.aclose()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        tasks = {asyncio.create_task(stream()), asyncio.create_task(listen())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            exc = t.exception()
            if exc is not None and not isinstance(exc, OSError):  # OSError: the client went away
                raise exc


@dataclass(slots=True)
class _Cursor:
    """The id of the last row this stream sent (or knows it need not send)."""

    value: int


@dataclass(slots=True)
class Streams:
    """What the SSE endpoints need: the hub, the pool for reads by cursor, settings, metrics."""

    hub: Hub
    pool: psycopg_pool.AsyncConnectionPool[Conn]
    web: WebSettings
    metrics: WebMetrics

    async def events(self, request: Request) -> Response:
        q = request.query_params
        run_ref = params.text(q, "runId")
        channel = params.text(q, "channel")
        if run_ref and channel:
            raise BadParameter("channel", "give either runId or channel=general, not both")
        if not run_ref and not channel:
            raise BadParameter("runId", "required: pass runId=<workflow_uid or run_id>, or channel=general")
        if channel is not None and channel != "general":
            raise BadParameter("channel", f"{channel!r}: the only channel is general (for a run, use runId)")
        filters = Filters(agents=params.csv(q, "agent"), kinds=params.kinds(q))
        last_id = params.last_event_id(request)
        history = params.integer(q, "history", default=self.web.history_rows, low=0, high=5000)
        if run_ref is not None:
            async with self.pool.connection() as conn:
                resolved = await resolve(conn, run_ref)
            if resolved is None:
                raise NotFound(f"run {run_ref!r}: no workflow_uid or run_id has stored messages")
            scope = resolved.scope
        else:
            scope = Scope(general=True)
        if not await self._hub_ready():
            return _unavailable()
        wire: Wire = (
            Deflated()
            if self.web.sse_compression and accepts_deflate(request.headers.get("accept-encoding"))
            else Plain()
        )
        return EventStreamResponse(
            self._stream(scope, filters, last_id, history, wire),
            self.metrics.sse_bytes.labels(encoding=wire.name),
            {**wire.headers, "Vary": "Accept-Encoding"},
        )

    async def run_updates(self, _: Request) -> Response:
        """`GET /api/agents/run-updates`: `event: runs` with the workflow_uids that changed (at most
        one event a second); a `null` in the list means "unknown, refresh everything"."""
        if not await self._hub_ready():
            return _unavailable()
        return EventStreamResponse(
            self._run_updates(self.hub.watch_runs()), self.metrics.sse_bytes.labels(encoding="identity")
        )

    async def _hub_ready(self) -> bool:
        try:
            async with asyncio.timeout(READY_WAIT_S):
                await self.hub.ready.wait()
        except TimeoutError:
            return False
        return True

    async def _stream(
        self, scope: Scope, filters: Filters, last_id: int | None, history: int, wire: Wire
    ) -> AsyncGenerator[bytes, None]:
        """The stream's bytes as `wire` encodes them: per-client text (history, catch-up,
        heartbeats) is encoded for this client, live batches once for all (deflate.py)."""
        sub, high = self.hub.subscribe(scope, filters)
        cursor = _Cursor(last_id or 0)
        try:
            # First, before any read that can fail: every later byte (and `end()`) follows it.
            yield wire.start() + wire.text(b"retry: %d\n\n" % RETRY_MS)
            if last_id is None:
                async with self.pool.connection() as conn:
                    records = await latest_rows(conn, scope, filters, history) if history else []
                cursor.value = max(high, int(records[-1]["id"]) if records else 0)
                if records:
                    self.metrics.sse_events.inc(len(records))
                    yield wire.text(b"".join(sse_event(int(r["id"]), encode_row(r)) for r in records))
            else:
                async for chunk in self._catch_up(scope, filters, cursor, high, wire):
                    yield chunk
            while not sub.closed:
                if sub.must_resync:
                    high = self.hub.restart(sub)
                    async for chunk in self._catch_up(scope, filters, cursor, high, wire):
                        yield chunk
                    continue
                batches = [b for b in sub.drain() if b.last_id > cursor.value]
                if batches:
                    chunk = wire.batches(batches, cursor.value)
                    self.metrics.sse_events.inc(sum(len(b.items) for b in batches))
                    cursor.value = batches[-1].last_id  # batches come in id order
                    yield chunk
                    continue
                try:
                    async with asyncio.timeout(self.web.heartbeat_s):
                        await sub.wake.wait()
                except TimeoutError:
                    yield wire.text(HEARTBEAT)
        except TRANSIENT as exc:
            # Postgres unreachable: end the stream; EventSource reconnects with its Last-Event-ID.
            log.warning("sse_stream_ended", extra={"error": repr(exc), "cursor": cursor.value})
        finally:
            self.hub.unsubscribe(sub)
        yield wire.end()  # reached when the stream ends, not when the client went away

    async def _catch_up(
        self, scope: Scope, filters: Filters, cursor: _Cursor, high: int, wire: Wire
    ) -> AsyncIterator[bytes]:
        """Everything after the cursor, page by page; leaves the cursor at `high` at least."""
        while True:
            async with self.pool.connection() as conn:
                records = await rows_after(conn, scope, filters, cursor.value, self.web.catchup_rows)
            if records:
                cursor.value = int(records[-1]["id"])
                self.metrics.sse_events.inc(len(records))
                yield wire.text(b"".join(sse_event(int(r["id"]), encode_row(r)) for r in records))
            if len(records) < self.web.catchup_rows:
                # The last read saw every committed row, so nothing up to `high` is left behind.
                cursor.value = max(cursor.value, high)
                return

    async def _run_updates(self, watcher: RunWatcher) -> AsyncGenerator[bytes, None]:
        try:
            yield b"retry: %d\n\n" % RETRY_MS
            while not watcher.closed:
                try:
                    async with asyncio.timeout(self.web.heartbeat_s):
                        await watcher.wake.wait()
                except TimeoutError:
                    yield HEARTBEAT
                    continue
                await asyncio.sleep(1.0)  # coalesce: one event a second at most
                changed, watcher.changed = watcher.changed, set()
                watcher.wake.clear()
                if changed and not watcher.closed:
                    runs = None if None in changed else sorted(r for r in changed if r is not None)
                    yield b"event: runs\ndata: %s\n\n" % orjson.dumps({"runs": runs})
        finally:
            self.hub.unwatch_runs(watcher)


def _unavailable() -> Response:
    return JSONResponse(
        {"error": "live updates are not ready: the LISTEN connection to Postgres is down; see /readyz"},
        status_code=503,
        headers={"Retry-After": "2"},
    )
