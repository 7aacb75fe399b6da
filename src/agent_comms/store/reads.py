"""Reading stored messages back: as contract bodies, with the row's id and how it arrived.

The web issue adds the API's queries (runs, pages, cursors) beside these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from psycopg.rows import dict_row

from agent_comms.store.database import Conn
from agent_comms.store.rows import body_from_record

_SELECT: Final = "SELECT * FROM workflow_comms.agent_messages"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    arrived_via: str
    stream_seq: int | None
    stored_at: datetime
    body: dict[str, Any]


async def run_messages(conn: Conn, workflow_uid: str, *, channel: str = "run") -> list[StoredMessage]:
    """One run's rows of a channel, in timeline order: by file, then line (never by timestamp)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{_SELECT} WHERE workflow_uid = %s AND channel = %s ORDER BY source, line, id",
            (workflow_uid, channel),
        )
        return [_stored(r) for r in await cur.fetchall()]


async def channel_counts(conn: Conn, workflow_uid: str | None = None) -> dict[str, int]:
    """Rows per channel, over one run or the whole table."""
    where, params = ("WHERE workflow_uid = %s", (workflow_uid,)) if workflow_uid else ("", ())
    cur = await conn.execute(
        f"SELECT channel, count(*) FROM workflow_comms.agent_messages {where} GROUP BY channel", params
    )
    return {str(channel): int(n) for channel, n in await cur.fetchall()}


def _stored(record: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=record["id"],
        arrived_via=record["arrived_via"],
        stream_seq=record["stream_seq"],
        stored_at=record["stored_at"],
        body=body_from_record(record),
    )
