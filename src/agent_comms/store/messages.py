"""Idempotent bulk insert into workflow_comms.agent_messages: COPY, then insert what is missing.

Rows are COPYed (binary) into a temporary staging table, then moved with
`INSERT ... SELECT ... ON CONFLICT (message_id, channel) DO NOTHING RETURNING`, so a batch costs
a few round trips whatever its size, and the caller learns exactly which rows were new. The
consumer, the dead-letter replay and the backfill all write through here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import psycopg

from agent_comms.store.database import DATA_REJECTED, Conn
from agent_comms.store.rows import COLUMNS, MessageRow

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(message_id, channel): one row."""

_STAGING: Final = "agent_messages_staging"
_JSON_COLUMNS: Final = frozenset(("tool", "attrs", "extra"))
_COPY_TYPES: Final = [
    {"timestamp": "timestamptz", "line": "int4", "schema": "int4", "stream_seq": "int8"}.get(c, "text")
    for c in COLUMNS
]

_STAGING_COLUMNS: Final = ", ".join(f'"{c}" {t}' for c, t in zip(COLUMNS, _COPY_TYPES, strict=True))
_COLUMN_LIST: Final = ", ".join(f'"{c}"' for c in COLUMNS)
_SELECT_LIST: Final = ", ".join(f'"{c}"::jsonb' if c in _JSON_COLUMNS else f'"{c}"' for c in COLUMNS)

# ON COMMIT DELETE ROWS: a pooled connection reuses the table without carrying rows across
# transactions. The move below also empties it (DELETE ... RETURNING feeds the INSERT), so a
# second insert inside the same transaction starts from an empty table without a TRUNCATE,
# which would create a new file per batch.
_PREPARE_STAGING: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ({_STAGING_COLUMNS}) ON COMMIT DELETE ROWS"
)
_COPY: Final = f"COPY {_STAGING} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_MOVE: Final = f"""
WITH staged AS (DELETE FROM {_STAGING} RETURNING *)
INSERT INTO workflow_comms.agent_messages ({_COLUMN_LIST})
SELECT {_SELECT_LIST}
FROM staged
ON CONFLICT (message_id, channel) DO NOTHING
RETURNING message_id, channel
"""


@dataclass(frozen=True, slots=True)
class InsertResult:
    """What an insert did, per (message_id, channel): `inserted` new rows, the rest already present.

    Duplicate keys in the input count once.
    """

    inserted: frozenset[Key]
    keys: frozenset[Key]

    @property
    def present(self) -> frozenset[Key]:
        return self.keys - self.inserted

    def was_inserted(self, key: Key) -> bool:
        return key in self.inserted

    @classmethod
    def empty(cls) -> InsertResult:
        return cls(frozenset(), frozenset())

    def merge(self, other: InsertResult) -> InsertResult:
        return InsertResult(self.inserted | other.inserted, self.keys | other.keys)


@dataclass(slots=True)
class IsolatedResult:
    """An insert that set aside the rows Postgres refused: `rejected` maps a row's index to the error."""

    result: InsertResult
    rejected: dict[int, str] = field(default_factory=dict)


async def prepare_staging(conn: Conn) -> None:
    """Create this connection's staging table now, in a transaction of its own, so that inserts
    on it can pass `staging_ready=True` and save a round trip per batch (the consumer's commits)."""
    async with conn.transaction():
        await conn.execute(_PREPARE_STAGING)


async def insert_rows(conn: Conn, rows: Sequence[MessageRow], *, staging_ready: bool = False) -> InsertResult:
    """Insert every row that is not stored yet; returns which were new.

    Runs inside the caller's transaction when there is one (as a savepoint), so a consumer can
    commit rows and dead letters together; commits on its own otherwise. Raises on any database
    error, leaving the caller's transaction usable. With `staging_ready` (after `prepare_staging`
    on this connection) the staging table is not created again; should it be gone all the same
    (`DISCARD TEMP`), it is.
    """
    if not rows:
        return InsertResult.empty()
    if staging_ready:
        try:
            return await _insert(conn, rows, create=False)
        except psycopg.errors.UndefinedTable:
            log.info("staging_table_recreated")
    return await _insert(conn, rows, create=True)


async def _insert(conn: Conn, rows: Sequence[MessageRow], *, create: bool) -> InsertResult:
    async with conn.transaction():
        if create:
            await conn.execute(_PREPARE_STAGING)
        async with conn.cursor() as cur:
            async with cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for row in rows:
                    await copy.write_row(row)
            await cur.execute(_MOVE)
            inserted = frozenset((str(m), str(c)) for m, c in await cur.fetchall())
    return InsertResult(inserted, frozenset(r.key for r in rows))


async def insert_rows_isolating(
    conn: Conn, rows: Sequence[MessageRow], *, staging_ready: bool = False
) -> IsolatedResult:
    """`insert_rows`, but a row Postgres refuses (a value our checks let through) does not sink the
    batch: the batch is retried row by row and the refused rows come back in `rejected`.

    Failures of the database itself (connection lost, shutdown) still raise.
    """
    try:
        return IsolatedResult(await insert_rows(conn, rows, staging_ready=staging_ready))
    except DATA_REJECTED as exc:
        log.warning("batch_rejected_isolating_rows", extra={"rows": len(rows), "error": _short(exc)})
    outcome = IsolatedResult(InsertResult.empty())
    for index, row in enumerate(rows):
        try:
            outcome.result = outcome.result.merge(await insert_rows(conn, [row]))
        except DATA_REJECTED as exc:
            outcome.rejected[index] = f"rejected_by_postgres: {_short(exc)}"
    return outcome


def _short(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
