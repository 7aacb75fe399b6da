"""Live fan-out: one LISTEN connection and one reader per web process, any number of SSE clients.

How a row reaches a browser: a writer commits; the insert trigger's NOTIFY arrives on the LISTEN
connection; the reader reads every row past its cursor (`high`) that any subscriber wants, once,
encodes each once, and offers the matching ones to each subscriber's bounded queue. Nothing here
awaits a client: a slow or stuck client only fills its own queue, which is then dropped and
marked for a resync, and the client re-reads from Postgres by its own cursor when it next runs.

Invariant: every row with id <= `high` has been offered to every subscriber registered at the
time (or that subscriber was marked for a resync). A subscriber registers first, notes `high`,
then reads Postgres; rows it reads twice are dropped by id, so the stream has no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import psycopg_pool

from agent_comms.settings import StoreSettings, WebSettings
from agent_comms.store import connect
from agent_comms.store.database import TRANSIENT, Conn
from agent_comms.store.feed import Filters, Scope, max_id, rows_after
from agent_comms.web.deflate import Segment, segment
from agent_comms.web.metrics import WebMetrics
from agent_comms.web.rows import encode_row, sse_event

log = logging.getLogger(__name__)

CHANNEL: Final = "agent_comms_messages"
"""The NOTIFY channel of migration 0003's insert trigger."""

READ_ROWS: Final = 2000
"""Rows per read of the fan-out; a larger backlog is read in several."""

RECONNECT_MAX_S: Final = 5.0
LISTEN_APPLICATION_NAME: Final = "agent-comms-web-listen"
"""How the LISTEN connection shows in pg_stat_activity."""

Item = tuple[int, bytes]
"""(row id, the encoded SSE event)."""


class Batch:
    """The rows of one read that a group of identical subscribers wants, joined once for all of
    them: a stream whose cursor is below `first_id` sends `joined` (or, compressed, `deflated()`)
    as it is."""

    __slots__ = ("_deflated", "items", "joined")

    def __init__(self, items: tuple[Item, ...]) -> None:
        self.items = items
        self.joined = b"".join(event for _, event in items)
        self._deflated: Segment | None = None

    @property
    def first_id(self) -> int:
        return self.items[0][0]

    @property
    def last_id(self) -> int:
        return self.items[-1][0]

    def after(self, cursor: int) -> bytes:
        """The events with an id above `cursor`."""
        if self.first_id > cursor:
            return self.joined
        return b"".join(event for row_id, event in self.items if row_id > cursor)

    def deflated(self) -> Segment:
        """`joined`, compressed by the first stream that asks, for every stream (deflate.py)."""
        if self._deflated is None:
            self._deflated = segment(self.joined)
        return self._deflated

    @classmethod
    def of(cls, items: list[Item]) -> Batch:
        return cls(tuple(items))


def in_scope(scope: Scope, record: dict[str, Any]) -> bool:
    if record["channel"] == "general":
        return scope.general
    return record["workflow_uid"] in scope.workflow_uids or record["run_id"] in scope.run_ids


def covers(outer: Scope, inner: Scope) -> bool:
    return (
        (outer.general or not inner.general)
        and set(inner.workflow_uids) <= set(outer.workflow_uids)
        and set(inner.run_ids) <= set(outer.run_ids)
    )


def union(scopes: Iterable[Scope]) -> Scope:
    general = False
    uids: set[str] = set()
    run_ids: set[str] = set()
    for s in scopes:
        general = general or s.general
        uids.update(s.workflow_uids)
        run_ids.update(s.run_ids)
    return Scope(general, tuple(sorted(uids)), tuple(sorted(run_ids)))


class Subscriber:
    """One SSE client's live queue: bounded; on overflow it is emptied and `must_resync` is set."""

    def __init__(self, scope: Scope, filters: Filters, max_rows: int) -> None:
        self.scope = scope
        self.filters = filters
        self.max_rows = max_rows
        self.queue: deque[Batch] = deque()
        self.queued_rows = 0
        self.wake = asyncio.Event()
        self.must_resync = False
        self.closed = False

    def wants(self, record: dict[str, Any]) -> bool:
        return in_scope(self.scope, record) and self.filters.matches(record)

    def offer(self, batch: Batch | None) -> None:
        if self.closed or self.must_resync or batch is None:
            return
        if self.queued_rows + len(batch.items) > self.max_rows:
            self.resync()
            return
        self.queue.append(batch)
        self.queued_rows += len(batch.items)
        self.wake.set()

    def resync(self) -> None:
        """Forget what is queued; the stream re-reads from Postgres by its cursor."""
        self.clear()
        self.must_resync = True
        self.wake.set()

    def clear(self) -> None:
        self.queue.clear()
        self.queued_rows = 0

    def drain(self) -> list[Batch]:
        batches = list(self.queue)
        self.clear()
        self.wake.clear()
        return batches

    def close(self) -> None:
        self.closed = True
        self.wake.set()


@dataclass(slots=True, eq=False)
class RunWatcher:
    """A /agents page: told which runs changed (None in the set: unknown, refresh all)."""

    changed: set[str | None]
    wake: asyncio.Event
    closed: bool = False


class Hub:
    """The process's LISTEN connection, reader and subscribers; `run()` owns them until stop."""

    def __init__(
        self,
        store: StoreSettings,
        web: WebSettings,
        pool: psycopg_pool.AsyncConnectionPool[Conn],
        metrics: WebMetrics,
        on_listening: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self.on_listening = on_listening
        self.store = store
        self.web = web
        self.pool = pool
        self.metrics = metrics
        self.high: int | None = None
        self._target = 0
        self._dirty = asyncio.Event()
        self.ready = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        self.watchers: set[RunWatcher] = set()
        self.is_listening = False

    # -- subscribers --------------------------------------------------------------------------

    def subscribe(self, scope: Scope, filters: Filters) -> tuple[Subscriber, int]:
        """Register a subscriber; returns it and `high` at this moment (see the invariant).

        Call only once `ready` is set."""
        assert self.high is not None, "subscribe() before the hub is ready"
        sub = Subscriber(scope, filters, self.web.client_queue_rows)
        self.subscribers.add(sub)
        self.metrics.sse_clients.set(len(self.subscribers))
        return sub, self.high

    def restart(self, sub: Subscriber) -> int:
        """Clear a subscriber's queue and resync flag; returns `high` to read up to, as `subscribe`."""
        assert self.high is not None
        sub.clear()
        sub.must_resync = False
        sub.wake.clear()
        self.metrics.sse_resyncs.inc()
        return self.high

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close()
        self.subscribers.discard(sub)
        self.metrics.sse_clients.set(len(self.subscribers))

    def watch_runs(self) -> RunWatcher:
        watcher = RunWatcher(set(), asyncio.Event())
        self.watchers.add(watcher)
        return watcher

    def unwatch_runs(self, watcher: RunWatcher) -> None:
        watcher.closed = True
        watcher.wake.set()
        self.watchers.discard(watcher)

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """LISTEN and fan out until `stop`; then every stream ends (clients reconnect elsewhere)."""
        try:
            async with asyncio.TaskGroup() as tg:
                listener = tg.create_task(self._listen_forever(stop))
                reader = tg.create_task(self._read_forever())
                await stop.wait()
                listener.cancel()
                reader.cancel()
        finally:
            for sub in list(self.subscribers):
                sub.close()
            for watcher in list(self.watchers):
                watcher.closed = True
                watcher.wake.set()
            log.info("live_fanout_stopped", extra={"subscribers": len(self.subscribers)})

    async def _listen_forever(self, stop: asyncio.Event) -> None:
        wait_s = 0.2
        while not stop.is_set():
            try:
                await self._listen()
            except TRANSIENT as exc:
                self._set_listening(False)
                log.warning("live_listen_lost", extra={"error": repr(exc), "retry_in_s": round(wait_s, 2)})
            try:
                async with asyncio.timeout(wait_s):
                    await stop.wait()
            except TimeoutError:
                wait_s = min(wait_s * 2, RECONNECT_MAX_S)

    async def _listen(self) -> None:
        conn = await connect(self.store, autocommit=True, name=LISTEN_APPLICATION_NAME)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            # Read after LISTEN: a commit after this read is notified, one before it is counted.
            top = await max_id(conn)
            if self.high is None:
                self.high = top
                log.info("live_fanout_ready", extra={"high": top})
            self._advance(top)
            self._set_listening(True)
            self.ready.set()
            while True:
                async for note in conn.notifies(timeout=self.web.poll_interval_s):
                    self._on_notify(note.payload)
                # No NOTIFY for a while: read anyway, so a lost one costs at most this interval.
                self._dirty.set()
        finally:
            self._set_listening(False)
            await conn.close()

    def _set_listening(self, value: bool) -> None:
        if value != self.is_listening:
            log.info("live_listen_changed", extra={"listening": value})
        self.is_listening = value
        self.metrics.listening.set(1 if value else 0)
        self.on_listening(value)

    def _on_notify(self, payload: str) -> None:
        self.metrics.notifications.inc()
        try:
            doc = orjson.loads(payload)
            top = int(doc["id"])
            runs = doc.get("runs")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("live_notify_unreadable", extra={"payload": payload[:200]})
            self._dirty.set()
            return
        self._advance(top)
        changed: list[str | None] = list(runs) if isinstance(runs, list) else [None]
        for watcher in self.watchers:
            watcher.changed.update(changed)
            watcher.wake.set()

    def _advance(self, top: int) -> None:
        self._target = max(self._target, top)
        self._dirty.set()

    # -- the reader ---------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            started = loop.time()
            self._dirty.clear()
            try:
                await self._catch_up()
            except TRANSIENT as exc:
                # Postgres unreachable for a moment: `high` did not move, the next wake retries.
                log.warning("live_read_failed", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
                self._dirty.set()
            # A first notification after a quiet spell is read at once; under steady traffic what
            # commits during this pause goes out in the next read: one write per client for it all.
            await asyncio.sleep(started + self.web.batch_interval_s - loop.time())

    async def _catch_up(self) -> None:
        while self.high is not None:
            if not self.subscribers:
                # Nobody to offer rows to: every row up to the target is trivially "offered".
                self.high = max(self.high, self._target)
                return
            target = self._target
            start = self.high
            included = set(self.subscribers)
            scope = union(s.scope for s in included)
            async with self.pool.connection() as conn:
                records = await rows_after(conn, scope, Filters(), start, READ_ROWS)
            self.metrics.live_reads.inc()
            self.metrics.live_rows.inc(len(records))
            self._dispatch(records, scope, included)
            full = len(records) == READ_ROWS
            last = records[-1]["id"] if records else start
            # A full page may leave rows behind it; otherwise everything up to the target (known
            # committed before this read began) has been read.
            self.high = last if full else max(last, target, start)
            if not full:
                return

    def _dispatch(self, records: list[dict[str, Any]], scope: Scope, included: set[Subscriber]) -> None:
        """Offer rows to every subscriber; no await in here, so no subscriber joins half-way.

        Each row is encoded once, and subscribers with the same scope and filters (the usual
        case: many people on one page) share one pass over the rows.
        """
        encoded: dict[int, Item] = {}
        shared: dict[tuple[Scope, Filters], Batch | None] = {}
        for sub in self.subscribers:
            if sub not in included and not covers(scope, sub.scope):
                # Joined while the read was under way, for rows the read did not ask for.
                sub.resync()
                continue
            key = (sub.scope, sub.filters)
            if key not in shared:
                items = [self._encoded(r, encoded) for r in records if sub.wants(r)]
                shared[key] = Batch.of(items) if items else None
            sub.offer(shared[key])

    @staticmethod
    def _encoded(record: dict[str, Any], cache: dict[int, Item]) -> Item:
        row_id = int(record["id"])
        item = cache.get(row_id)
        if item is None:
            item = cache[row_id] = (row_id, sse_event(row_id, encode_row(record)))
        return item
