"""Runs: the per-workflow summary that migration 0003's insert trigger keeps in
`workflow_comms.agent_runs`, listed newest first and resolved from a `runId`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from psycopg.rows import dict_row

from agent_comms.store.database import Conn
from agent_comms.store.feed import Scope

_RUNS: Final = "workflow_comms.agent_runs"


@dataclass(frozen=True, slots=True)
class Resolved:
    """What a `runId` names: one workflow (`by="workflow_uid"`) or every workflow carrying that
    `run_id` (`by="run_id"`, which live streams keep following as new workflows appear)."""

    ref: str
    by: Literal["workflow_uid", "run_id"]
    runs: list[dict[str, Any]]

    @property
    def scope(self) -> Scope:
        if self.by == "workflow_uid":
            return Scope(workflow_uids=(self.ref,))
        return Scope(run_ids=(self.ref,))


async def resolve(conn: Conn, ref: str) -> Resolved | None:
    """`ref` as a workflow_uid first, else as a run_id; None when neither has stored rows."""
    rows = await _fetch(conn, f"SELECT * FROM {_RUNS} WHERE workflow_uid = %s", (ref,))
    if rows:
        return Resolved(ref, "workflow_uid", rows)
    rows = await _fetch(conn, f"SELECT * FROM {_RUNS} WHERE run_id = %s ORDER BY first_at", (ref,))
    return Resolved(ref, "run_id", rows) if rows else None


async def list_runs(
    conn: Conn,
    *,
    limit: int,
    namespace: str | None = None,
    after: tuple[datetime, str] | None = None,
    workflow_uids: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """Runs by last activity, newest first, and whether more follow. `after` is the
    (last_at, workflow_uid) of the last run of the previous page."""
    conditions = ["true"]
    params: list[Any] = []
    if namespace is not None:
        conditions.append("workflow_namespace = %s")
        params.append(namespace)
    if workflow_uids:
        conditions.append("workflow_uid = ANY(%s)")
        params.append(list(workflow_uids))
    if after is not None:
        conditions.append("(last_at, workflow_uid) < (%s, %s)")
        params.extend(after)
    rows = await _fetch(
        conn,
        f"SELECT * FROM {_RUNS} WHERE {' AND '.join(conditions)} "
        "ORDER BY last_at DESC, workflow_uid DESC LIMIT %s",
        (*params, limit + 1),
    )
    return rows[:limit], len(rows) > limit


async def _fetch(conn: Conn, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())
