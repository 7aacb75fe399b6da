"""Retention: Postgres keeps 30 to 90 days of messages while JetStream keeps 7.

Rows are deleted by message time, in batches each committed on its own, so a prune never holds
long locks on the table the consumer is writing to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agent_comms.store.database import Conn

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS: Final = 10_000

_DELETE_MESSAGES: Final = """
DELETE FROM workflow_comms.agent_messages
WHERE id IN (SELECT id FROM workflow_comms.agent_messages WHERE "timestamp" < %s LIMIT %s)
"""
# A run summary (migration 0003) goes when its newest message does; a run pruned only in part
# keeps the counts of everything it ever stored.
_DELETE_RUNS: Final = """
DELETE FROM workflow_comms.agent_runs
WHERE workflow_uid IN (SELECT workflow_uid FROM workflow_comms.agent_runs WHERE last_at < %s LIMIT %s)
"""
_DELETE_LETTERS: Final = """
DELETE FROM workflow_comms.dead_letters
WHERE id IN (SELECT id FROM workflow_comms.dead_letters WHERE last_seen < %s LIMIT %s)
"""


@dataclass(frozen=True, slots=True)
class PruneResult:
    cutoff: datetime
    messages: int
    dead_letters: int
    runs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "messages": self.messages,
            "dead_letters": self.dead_letters,
            "runs": self.runs,
        }


async def prune(conn: Conn, older_than: timedelta, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> PruneResult:
    """Delete messages whose `timestamp`, dead letters whose `last_seen` and run summaries whose
    `last_at` is older than `older_than`.

    `conn` must not be inside a transaction: each batch commits on its own.
    """
    cutoff = datetime.now(UTC) - older_than
    counts = []
    for statement in (_DELETE_MESSAGES, _DELETE_LETTERS, _DELETE_RUNS):
        total = 0
        while True:
            async with conn.transaction():
                cur = await conn.execute(statement, (cutoff, batch_rows))
                deleted = cur.rowcount
            total += deleted
            if deleted < batch_rows:
                break
        counts.append(total)
    result = PruneResult(cutoff, counts[0], counts[1], counts[2])
    log.info("pruned", extra=result.to_json())
    return result
