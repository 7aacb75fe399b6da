"""What a run already has in Postgres: the backfill's view, decided by the table alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent_comms.store.database import Conn

_PRESENT = """
SELECT message_id, channel, source, line, "timestamp"
FROM workflow_comms.agent_messages
WHERE workflow_uid = %s AND source = ANY(%s)
"""


@dataclass(slots=True)
class Present:
    """Rows of one run's files already stored, and the run-channel time of each stored line."""

    keys: set[tuple[str, str]] = field(default_factory=set)
    times: dict[str, dict[int, datetime]] = field(default_factory=dict)
    """source -> line -> timestamp, for estimating the time of a line that has none of its own."""


async def present_rows(conn: Conn, workflow_uid: str, sources: Sequence[str]) -> Present:
    out = Present()
    async with conn.cursor() as cur:
        await cur.execute(_PRESENT, (workflow_uid, list(sources)))
        async for message_id, channel, source, line, ts in cur:
            out.keys.add((message_id, channel))
            if channel == "run":
                out.times.setdefault(source, {})[line] = ts
    return out
