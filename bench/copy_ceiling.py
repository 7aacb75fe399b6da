"""The write ceiling: the same rows COPYed into a fresh `workflow_comms.agent_messages`.

Fresh databases are cloned from a template that `agent_comms.store.migrate` migrated once, so
each measurement writes into the project's real table (indexes, constraints, triggers) with
nothing in it. The rows are built once, outside the clock, with the project's own code:
`row_from_bytes` on the published bodies (what the consumer stores), or the backfill's own
line-to-row path (what the backfill stores). The clock then covers only the fastest honest way
to store them with conflict handling: per batch, one transaction with a binary COPY into a
temporary staging table and one `INSERT ... SELECT ... ON CONFLICT (message_id, channel) DO
NOTHING` (no RETURNING: the ceiling need not know which rows were new).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import psycopg
from baselines import Out
from psycopg import sql

from agent_comms.backfill.backfill import DEFAULT_MAX_LINE_BYTES, Backfill, BackfillSettings, discover
from agent_comms.core.codex import DEFAULT_GLOBS, make_normalizer
from agent_comms.core.message import RunIdentity
from agent_comms.settings import ConsumeSettings, StoreSettings, parse_general_kinds
from agent_comms.store import MessageRow, migrate, row_from_bytes
from agent_comms.store.present import Present
from agent_comms.store.rows import COLUMNS

TEMPLATE_DB: Final = "bench_template"
_JSON: Final = frozenset(("tool", "attrs", "extra"))
_TYPES: Final = [
    {"timestamp": "timestamptz", "line": "int4", "schema": "int4", "stream_seq": "int8"}.get(c, "text")
    for c in COLUMNS
]
_COLUMNS: Final = ", ".join(f'"{c}"' for c in COLUMNS)
_STAGING: Final = "bench_staging"
_CREATE: Final = (
    f"CREATE TEMP TABLE {_STAGING} ("
    + ", ".join(f'"{c}" {t}' for c, t in zip(COLUMNS, _TYPES, strict=True))
    + ") ON COMMIT DROP"
)
_COPY: Final = f"COPY {_STAGING} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_INSERT: Final = (
    f"INSERT INTO workflow_comms.agent_messages ({_COLUMNS}) SELECT "
    + ", ".join(f'"{c}"::jsonb' if c in _JSON else f'"{c}"' for c in COLUMNS)
    + f" FROM {_STAGING} ON CONFLICT (message_id, channel) DO NOTHING"
)


class Databases:
    """Fresh migrated databases on one Postgres server, cloned from a migrated template."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._count = 0

    def dsn(self, name: str) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=name)

    async def prepare_template(self) -> list[int]:
        """Create the template database and migrate it; returns the versions applied."""
        await self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
        conn = await psycopg.AsyncConnection.connect(self.dsn(TEMPLATE_DB))
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    async def fresh(self, label: str) -> str:
        """A new database with the migrated, empty table; its DSN."""
        self._count += 1
        name = f"bench_{self._count}_{label}"
        await self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
        return self.dsn(name)

    async def drop(self, dsn: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        await self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )

    async def _admin(self, statement: sql.Composed) -> None:
        conn = await psycopg.AsyncConnection.connect(self.admin_dsn, autocommit=True)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


async def table_counts(dsn: str) -> dict[str, int]:
    """Rows per channel and dead letters in a database."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        cur = await conn.execute(
            "SELECT channel, count(*) FROM workflow_comms.agent_messages GROUP BY channel"
        )
        out = {str(c): int(n) for c, n in await cur.fetchall()}
        cur = await conn.execute("SELECT count(*) FROM workflow_comms.dead_letters")
        row = await cur.fetchone()
        out["dead_letters"] = int(row[0]) if row else 0
        out["rows"] = out.get("run", 0) + out.get("general", 0)
        return out
    finally:
        await conn.close()


async def checkpoint(dsn: str) -> None:
    """Write dirty pages out now, so a checkpoint does not land inside the next measurement."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


# -- the rows ------------------------------------------------------------------------------------


def consumer_rows(msgs: Sequence[Out]) -> list[MessageRow]:
    """What the consumer stores for the published messages: `row_from_bytes`, stream seq 1..n."""
    max_body = ConsumeSettings(store=StoreSettings(database_url="unused")).max_body_bytes  # the default
    return [
        row_from_bytes(m.payload, max_body_bytes=max_body, arrived_via="nats", stream_seq=seq)
        for seq, m in enumerate(msgs, 1)
    ]


class _RowCollector(Backfill):
    """The backfill's own line-to-row path (normalizer, bodies, time estimates), rows kept in memory."""

    def __init__(self, settings: BackfillSettings) -> None:
        super().__init__(settings, make_normalizer(max_line_bytes=settings.max_line_bytes))
        self.rows: list[MessageRow] = []

    async def _flush(self) -> None:
        self.rows.extend(self._batch)
        self._batch, self._batch_files = [], []


async def backfill_rows(source_dir: Path, identity: RunIdentity) -> tuple[list[MessageRow], float]:
    """Every row `agent-comms backfill --from source_dir` inserts into an empty table; and the seconds
    spent building them (read, split, normalize, build bodies, `row_from_body`)."""
    settings = BackfillSettings(
        source_dir=source_dir,
        identity=identity,
        store=StoreSettings(database_url="unused"),
        general_kinds=parse_general_kinds("all"),
        globs=DEFAULT_GLOBS,
        max_line_bytes=DEFAULT_MAX_LINE_BYTES,
        batch_rows=1 << 62,
    )
    collector = _RowCollector(settings)
    t0 = time.perf_counter()
    for path in discover(source_dir, settings.globs):
        await collector._file(path, Present())
    await collector._flush()
    return collector.rows, time.perf_counter() - t0


# -- the ceiling ---------------------------------------------------------------------------------


async def copy_ceiling(dsn: str, rows: Sequence[MessageRow], batch_rows: int) -> dict[str, Any]:
    """COPY + INSERT ... ON CONFLICT DO NOTHING of `rows` in batches, one transaction each."""
    await checkpoint(dsn)
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    inserted = 0
    try:
        t0 = time.perf_counter()
        for start in range(0, len(rows), batch_rows):
            async with conn.transaction():
                await conn.execute(_CREATE)
                async with conn.cursor() as cur:
                    async with cur.copy(_COPY) as copy:
                        copy.set_types(_TYPES)
                        for row in rows[start : start + batch_rows]:
                            await copy.write_row(row)
                    await cur.execute(_INSERT)
                    inserted += cur.rowcount
        took = time.perf_counter() - t0
    finally:
        await conn.close()
    if inserted != len(rows):
        raise SystemExit(f"COPY ceiling: inserted {inserted} of {len(rows)} rows into a fresh table")
    return {"batch_rows": batch_rows, "rows": len(rows), "seconds": took, "rows_per_s": len(rows) / took}
