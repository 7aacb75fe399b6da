"""The SSE cursor under concurrent writers, and clients that are slow or come and go.

`id` is a sequence value drawn at insert, not at commit. Without migration 0003's serializing
lock, a writer that commits late leaves a hole below ids a reader has already passed; the
control test shows that hole with the lock switched off, the others that it never opens with it.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from agent_comms.store import Conn, insert_rows
from agent_comms.store.feed import Filters, Scope, rows_after
from tests.integration.conftest import PgServer, fresh_database
from tests.support.ingest import ConsumerProcess
from tests.support.sse import Event, SseClient
from tests.support.web import bodies_for, insert, rows_for, start_web, stop, wait_live, writer


@pytest.fixture(scope="module")
def dsn(pg_server: PgServer) -> Iterator[str]:
    with fresh_database(pg_server.admin_dsn) as d:
        yield d


@pytest.fixture(scope="module")
def web(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsumerProcess]:
    c = start_web(dsn, tmp_path_factory.mktemp("web"), "--sse-client-queue", "50")
    try:
        wait_live(c)
        yield c
    finally:
        stop(c)


def events_url(c: ConsumerProcess, run: str) -> str:
    return f"http://127.0.0.1:{c.port}/api/agents/events?runId={run}"


def assert_exactly_once_in_order(events: list[Event], want_lines: list[int]) -> None:
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "ids ascend, none repeated"
    assert sorted(e.data["line"] for e in events) == want_lines, "every row, once"


async def test_second_writer_waits_for_the_first_so_a_late_commit_is_never_skipped(
    web: ConsumerProcess, dsn: str
) -> None:
    run = f"uid-{uuid.uuid4().hex[:8]}"
    await insert(dsn, rows_for(bodies_for(run, 1), general=False))
    reader = await SseClient.connect(events_url(web, run))
    (first,) = await reader.events(1)
    await reader.close()  # a client that goes away, to come back with Last-Event-ID
    live = await SseClient.connect(events_url(web, run), headers={"Last-Event-ID": str(first.id)})
    slow_conn = await psycopg.AsyncConnection.connect(dsn)  # a transaction held open
    fast_conn = await writer(dsn)
    held, release = asyncio.Event(), asyncio.Event()

    async def slow_writer() -> None:
        async with slow_conn.transaction():
            await insert_rows(slow_conn, rows_for(bodies_for(run, 10, start=2), general=False))
            held.set()
            await release.wait()

    async def fast_writer() -> None:
        await held.wait()
        await insert_rows(fast_conn, rows_for(bodies_for(run, 10, start=12), general=False))

    try:
        slow, fast = asyncio.create_task(slow_writer()), asyncio.create_task(fast_writer())
        await held.wait()
        assert await live.drain_for(0.8) == [], "nothing is visible while the first writer is open"
        assert not fast.done(), "the second writer queues behind the first instead of committing first"
        release.set()
        await asyncio.gather(slow, fast)
        assert_exactly_once_in_order(await live.events(20), list(range(2, 22)))
        resumed = await SseClient.connect(events_url(web, run), headers={"Last-Event-ID": str(first.id)})
        try:
            got = await resumed.events(20)
            assert_exactly_once_in_order(got, list(range(2, 22)))
            assert [e.data["line"] for e in got] == list(range(2, 22)), "commit order is id order"
            assert await resumed.drain_for(0.5) == []
        finally:
            await resumed.close()
    finally:
        await live.close()
        await slow_conn.close()
        await fast_conn.close()


async def test_control_without_the_lock_a_reader_by_id_misses_the_late_commit(dsn: str) -> None:
    """The hazard the lock removes: with triggers off, the later writer commits first and a
    reader that moved its cursor past its ids never sees the earlier writer's rows."""
    run = f"uid-{uuid.uuid4().hex[:8]}"
    slow_conn = await psycopg.AsyncConnection.connect(dsn)
    fast_conn = await writer(dsn)
    read_conn = await writer(dsn)
    try:
        for conn in (slow_conn, fast_conn):
            try:
                await conn.execute("SET session_replication_role = replica")  # triggers off
            except psycopg.errors.InsufficientPrivilege:
                pytest.skip("needs a superuser to switch triggers off (DATABASE_URL's role is not one)")
            if not conn.autocommit:
                await conn.commit()
        scope = Scope(workflow_uids=(run,))
        async with slow_conn.transaction():
            await insert_rows(slow_conn, rows_for(bodies_for(run, 5), general=False))
            await insert_rows(fast_conn, rows_for(bodies_for(run, 5, start=6), general=False))
            seen = await rows_after(read_conn, scope, Filters(), 0, 100)
            cursor = max(r["id"] for r in seen)
        after = await rows_after(read_conn, scope, Filters(), cursor, 100)
        assert [r["line"] for r in seen] == [6, 7, 8, 9, 10] and after == [], "lines 1-5 were skipped"
    finally:
        for conn in (slow_conn, fast_conn, read_conn):
            await conn.close()


async def test_many_writers_and_reconnecting_clients_see_every_row_once(
    web: ConsumerProcess, dsn: str
) -> None:
    run = f"uid-{uuid.uuid4().hex[:8]}"
    await insert(dsn, rows_for(bodies_for(run, 1), general=False))
    writers, batches, per_batch = 4, 15, 7
    total = 1 + writers * batches * per_batch
    follower = await SseClient.connect(events_url(web, run))
    # The same live batches, compressed once and shared (deflate.py): the same rows, once each.
    compressed = await SseClient.connect(events_url(web, run), compressed=True)
    assert compressed.headers.get("content-encoding") == "deflate"

    async def write(w: int) -> None:
        conn: Conn = await psycopg.AsyncConnection.connect(dsn)
        rng = random.Random(w)
        try:
            for b in range(batches):
                start = 2 + (w * batches + b) * per_batch
                async with conn.transaction():
                    await insert_rows(conn, rows_for(bodies_for(run, per_batch, start=start), general=False))
                    await asyncio.sleep(rng.uniform(0, 0.02))  # hold the transaction a little
        finally:
            await conn.close()

    async def hop() -> list[Event]:
        """A client that disconnects every few events and resumes with Last-Event-ID."""
        got: list[Event] = []
        while len(got) < total:
            headers = {"Last-Event-ID": str(got[-1].id)} if got else {}
            client = await SseClient.connect(events_url(web, run) + "&history=1000", headers=headers)
            try:
                got += await client.drain_for(0.15) if got else await client.events(1)
            finally:
                await client.close()
        return got

    try:
        hopper = asyncio.create_task(hop())
        await asyncio.gather(*(write(w) for w in range(writers)))
        followed = await follower.events(total, timeout_s=30)
        inflated = await compressed.events(total, timeout_s=30)
        hopped = await asyncio.wait_for(hopper, 60)
    finally:
        await follower.close()
        await compressed.close()
    want = list(range(1, total + 1))
    assert_exactly_once_in_order(followed, want)
    assert_exactly_once_in_order(inflated, want)
    assert_exactly_once_in_order(hopped, want)


async def test_a_stuck_client_neither_slows_others_nor_misses_rows(web: ConsumerProcess, dsn: str) -> None:
    run = f"uid-{uuid.uuid4().hex[:8]}"
    await insert(dsn, rows_for(bodies_for(run, 1), general=False))
    stuck = await SseClient.connect(events_url(web, run), rcvbuf=4096)  # connected, never read
    healthy = await SseClient.connect(events_url(web, run))
    try:
        (first,) = await healthy.events(1)
        n = 3000
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(0, n, 300):
            bodies = bodies_for(run, 300, start=2 + i)
            for b in bodies:
                b["content"] = "x" * 800  # 3000 rows of ~1 KiB: far past the socket buffers
            await insert(dsn, rows_for(bodies, general=False))
        got = await healthy.events(n, timeout_s=20)
        took = loop.time() - started
        assert_exactly_once_in_order(got, list(range(2, n + 2)))
        assert took < 15, f"the healthy client took {took:.1f}s"
        late = await stuck.events(n + 1, timeout_s=30)  # now it reads: resynced from Postgres
        assert late[0].id == first.id
        assert_exactly_once_in_order(late[1:], list(range(2, n + 2)))
        resyncs = [
            ln
            for ln in web.get("/metrics").splitlines()
            if ln.startswith("agent_comms_web_sse_resyncs_total")
        ]
        assert resyncs and float(resyncs[0].split()[-1]) >= 1, "its queue overflowed and was dropped"
    finally:
        await stuck.close()
        await healthy.close()
