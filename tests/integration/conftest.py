"""Real servers for integration tests: each test gets its own nats-server (free port, own store)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import psycopg
import pytest
from nats.js.api import StreamConfig
from psycopg import sql
from psycopg.conninfo import make_conninfo

from agent_comms.embedded import EmbeddedNats, EmbeddedPostgres
from agent_comms.jetstream import ensure_stream
from agent_comms.nats_apply import Overrides, stream_from_file

STREAM_YAML = Path(__file__).resolve().parents[2] / "nats" / "stream.yaml"


def contract_stream(*, duplicate_window_s: float = 120.0, max_bytes: int = 1 << 30) -> StreamConfig:
    """The stream NACK applies (nats/stream.yaml), with single-server overrides."""
    overrides = Overrides(replicas=1, duplicate_window_s=duplicate_window_s, max_bytes=max_bytes)
    return stream_from_file(STREAM_YAML, overrides)


def create_stream(url: str, *, duplicate_window_s: float = 120.0) -> None:
    async def go() -> None:
        nc = await nats.connect(url)
        try:
            await ensure_stream(nc.jetstream(), contract_stream(duplicate_window_s=duplicate_window_s))
        finally:
            await nc.close()

    asyncio.run(go())


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A running nats-server with the contract's stream (2-minute duplicate window)."""
    server = EmbeddedNats(tmp_path / "nats").start()
    create_stream(server.url)
    yield server
    server.kill()


@pytest.fixture
def watch_dir(tmp_path: Path) -> Path:
    d = tmp_path / "workspace"
    d.mkdir()
    return d


# -- Postgres (issue 3): a real server, and a database per test that the test creates and drops ---------


@dataclass(frozen=True)
class PgServer:
    """A Postgres server the tests may create databases on: DATABASE_URL's, or an embedded one."""

    admin_dsn: str
    embedded: EmbeddedPostgres | None = None


def dsn_for(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return make_conninfo(dsn, dbname=dbname)


@contextmanager
def fresh_database(admin_dsn: str) -> Iterator[str]:
    """CREATE a uniquely named database, yield its DSN, DROP it (also when the test failed)."""
    name = f"agent_comms_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield dsn_for(admin_dsn, name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """DATABASE_URL's server when set (only ever used to create and drop test databases), else an
    embedded Postgres for the whole session, its data under /tmp (never under the home directory)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield PgServer(admin_dsn=url)
        return
    workdir = Path(tempfile.mkdtemp(prefix="agent-comms-pg-", dir="/tmp"))
    server = EmbeddedPostgres(workdir).start()
    try:
        yield PgServer(admin_dsn=server.dsn(), embedded=server)
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def database(pg_server: PgServer) -> Iterator[str]:
    """The DSN of a database created for this test alone and dropped after it (not yet migrated)."""
    with fresh_database(pg_server.admin_dsn) as dsn:
        yield dsn


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres of this test's own, for tests that stop, kill and restart it."""
    workdir = Path(tempfile.mkdtemp(prefix="agent-comms-pg-", dir="/tmp"))
    server = EmbeddedPostgres(workdir).start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def bare_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A running nats-server with JetStream and no stream: tests apply the repo's NACK YAML themselves."""
    server = EmbeddedNats(tmp_path / "nats").start()
    yield server
    server.kill()
