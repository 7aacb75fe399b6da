"""The web half under faults: its LISTEN connection cut, Postgres stopped and started under open
streams. Clients, plain and compressed, must see every row once, in order, and requests made
during an outage get a 503 that says what is wrong instead of a stack trace."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agent_comms.embedded import EmbeddedPostgres
from agent_comms.web.live import LISTEN_APPLICATION_NAME
from tests.integration.conftest import PgServer, fresh_database
from tests.support.ingest import ConsumerProcess
from tests.support.sse import Event, SseClient
from tests.support.web import bodies_for, http, insert, rows_for, start_web, stop, wait_live


@pytest.fixture
def web(pg_server: PgServer, tmp_path: Path) -> Iterator[tuple[ConsumerProcess, str]]:
    with fresh_database(pg_server.admin_dsn) as dsn:
        c = start_web(dsn, tmp_path)
        try:
            wait_live(c)
            yield c, dsn
        finally:
            stop(c)


def events_url(c: ConsumerProcess, run: str) -> str:
    return f"http://127.0.0.1:{c.port}/api/agents/events?runId={run}"


def lines(events: list[Event]) -> list[int]:
    return [e.data["line"] for e in events]


def wait_listening(c: ConsumerProcess, value: bool, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if c.readyz()[1].get("listening") is value:
            return
        time.sleep(0.05)
    raise AssertionError(f"/readyz never said listening={value}:\n{c.log()[-3000:]}")


async def test_a_cut_listen_connection_misses_no_row(web: tuple[ConsumerProcess, str]) -> None:
    c, dsn = web
    run = f"uid-{uuid.uuid4().hex[:8]}"
    await insert(dsn, rows_for(bodies_for(run, 3), general=False))
    plain = await SseClient.connect(events_url(c, run))
    packed = await SseClient.connect(events_url(c, run), compressed=True)
    try:
        assert lines(await plain.events(3)) == lines(await packed.events(3)) == [1, 2, 3]
        with psycopg.connect(dsn, autocommit=True) as admin:
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (LISTEN_APPLICATION_NAME,),
            ).fetchall()
        assert cut == [(True,)], "the web process's one LISTEN connection"
        # Commits while the web process reconnects: their NOTIFYs go nowhere.
        for start in range(4, 24, 5):
            await insert(dsn, rows_for(bodies_for(run, 5, start=start), general=False))
        assert lines(await plain.events(20, timeout_s=15)) == list(range(4, 24))
        assert lines(await packed.events(20, timeout_s=15)) == list(range(4, 24))
        assert await plain.drain_for(0.5) == []
    finally:
        await plain.close()
        await packed.close()
    assert "live_listen_lost" in c.log()
    wait_listening(c, True)


async def test_postgres_stopped_and_started_under_open_streams(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    run = f"uid-{uuid.uuid4().hex[:8]}"
    with fresh_database(own_postgres.dsn()) as dsn:
        c = start_web(dsn, tmp_path)
        try:
            wait_live(c)
            await insert(dsn, rows_for(bodies_for(run, 5), general=False))
            plain = await SseClient.connect(events_url(c, run))
            packed = await SseClient.connect(events_url(c, run), compressed=True)
            try:
                assert lines(await plain.events(5)) == lines(await packed.events(5)) == [1, 2, 3, 4, 5]
                own_postgres.stop()
                await asyncio.to_thread(wait_listening, c, False)
                status, _, body = await asyncio.to_thread(http, c, f"/api/agents/runs/{run}/messages")
                assert status == 503 and b"Postgres" in body, (status, body)
                status, _, body = await asyncio.to_thread(http, c, f"/api/agents/events?runId={run}")
                assert status == 503 and b"Postgres" in body, (status, body)
                own_postgres.start()
                await asyncio.to_thread(wait_listening, c, True)
                await insert(dsn, rows_for(bodies_for(run, 5, start=6), general=False))
                assert lines(await plain.events(5, timeout_s=15)) == [6, 7, 8, 9, 10]
                assert lines(await packed.events(5, timeout_s=15)) == [6, 7, 8, 9, 10]
                assert await packed.drain_for(0.5) == []
            finally:
                await plain.close()
                await packed.close()
        finally:
            stop(c)
