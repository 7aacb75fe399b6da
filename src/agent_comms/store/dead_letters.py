"""The dead-letter table: messages that could not be stored, kept byte for byte, and their replay.

A redelivered poison message is the same letter again (same stream sequence and bytes): its
`attempts` grows instead of a second row. Replay re-judges the stored bytes with the code that
runs now; the good ones become rows (as if they had just arrived from the stream) and are
marked replayed, the others stay with their refreshed reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agent_comms.store.database import Conn
from agent_comms.store.messages import InsertResult, insert_rows_isolating
from agent_comms.store.rows import InvalidBody, MessageRow, row_from_bytes

log = logging.getLogger(__name__)

_UPSERT: Final = """
INSERT INTO workflow_comms.dead_letters (raw, digest, subject, stream_seq, reason, headers)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (stream_seq, digest) WHERE stream_seq IS NOT NULL
DO UPDATE SET attempts = dead_letters.attempts + 1, last_seen = now(), reason = EXCLUDED.reason
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message to set aside: its bytes, where it came from, and why it cannot be stored."""

    raw: bytes
    reason: str
    subject: str | None = None
    stream_seq: int | None = None
    headers: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    subject: str | None
    stream_seq: int | None
    reason: str
    size: int
    first_seen: datetime
    last_seen: datetime
    attempts: int
    replayed_at: datetime | None
    preview: str
    """The first bytes of the body, decoded leniently, for a person deciding what to fix."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subject": self.subject,
            "stream_seq": self.stream_seq,
            "reason": self.reason,
            "size": self.size,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "attempts": self.attempts,
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
            "preview": self.preview,
        }


@dataclass(slots=True)
class ReplayResult:
    """What a replay did: letters whose rows are now stored, and those still refused (id → reason)."""

    replayed: list[int] = field(default_factory=list)
    rows: InsertResult = field(default_factory=InsertResult.empty)
    still_invalid: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "replayed": len(self.replayed),
            "inserted": len(self.rows.inserted),
            "present": len(self.rows.present),
            "still_invalid": len(self.still_invalid),
            "invalid": [{"id": i, "reason": r} for i, r in sorted(self.still_invalid.items())],
        }


async def add_dead_letters(conn: Conn, letters: Sequence[DeadLetter]) -> None:
    """Record letters (in the caller's transaction, if any); a letter seen before counts an attempt."""
    if not letters:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            _UPSERT,
            [
                (
                    d.raw,
                    d.digest,
                    d.subject,
                    d.stream_seq,
                    d.reason,
                    Jsonb(d.headers) if d.headers is not None else None,
                )
                for d in letters
            ],
        )


async def list_dead_letters(
    conn: Conn, *, include_replayed: bool = False, limit: int = 100, preview_bytes: int = 200
) -> list[StoredDeadLetter]:
    """Letters oldest first; replayed ones only with `include_replayed`."""
    where = "" if include_replayed else "WHERE replayed_at IS NULL"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT id, subject, stream_seq, reason, length(raw) AS size, first_seen, last_seen,
                       attempts, replayed_at, substring(raw FROM 1 FOR %s) AS head
                FROM workflow_comms.dead_letters {where} ORDER BY id LIMIT %s""",
            (preview_bytes, limit),
        )
        records = await cur.fetchall()
    return [
        StoredDeadLetter(
            id=r["id"],
            subject=r["subject"],
            stream_seq=r["stream_seq"],
            reason=r["reason"],
            size=r["size"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            attempts=r["attempts"],
            replayed_at=r["replayed_at"],
            preview=bytes(r["head"]).decode("utf-8", "replace"),
        )
        for r in records
    ]


async def replay_dead_letters(conn: Conn, *, ids: Sequence[int] | None, max_body_bytes: int) -> ReplayResult:
    """Re-judge letters (the given ids, or every one not yet replayed when `ids` is None) and store
    the good ones, in one transaction. Letters already replayed are skipped; concurrent replays
    skip each other's letters (row locks, SKIP LOCKED)."""
    where = "replayed_at IS NULL" + ("" if ids is None else " AND id = ANY(%s)")
    params: tuple[Any, ...] = () if ids is None else (list(ids),)
    outcome = ReplayResult()
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT id, raw, stream_seq FROM workflow_comms.dead_letters WHERE {where} "
            "ORDER BY id FOR UPDATE SKIP LOCKED",
            params,
        )
        letters = await cur.fetchall()
        rows: list[MessageRow] = []
        row_ids: list[int] = []
        for letter_id, raw, stream_seq in letters:
            try:
                row = row_from_bytes(
                    bytes(raw), max_body_bytes=max_body_bytes, arrived_via="nats", stream_seq=stream_seq
                )
            except InvalidBody as exc:
                outcome.still_invalid[letter_id] = exc.reason
                continue
            rows.append(row)
            row_ids.append(letter_id)
        isolated = await insert_rows_isolating(conn, rows)
        outcome.rows = isolated.result
        for index, reason in isolated.rejected.items():
            outcome.still_invalid[row_ids[index]] = reason
        outcome.replayed = [i for n, i in enumerate(row_ids) if n not in isolated.rejected]
        await conn.execute(
            "UPDATE workflow_comms.dead_letters SET replayed_at = now() WHERE id = ANY(%s)",
            (outcome.replayed,),
        )
        if outcome.still_invalid:
            async with conn.cursor() as upd:
                await upd.executemany(
                    "UPDATE workflow_comms.dead_letters SET reason = %s WHERE id = %s",
                    [(reason, i) for i, reason in outcome.still_invalid.items()],
                )
    log.info("dead_letters_replayed", extra={k: v for k, v in outcome.to_json().items() if k != "invalid"})
    return outcome
