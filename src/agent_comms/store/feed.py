"""Reading rows by cursor: what SSE streams are made of.

The cursor is the row `id`. Migration 0003 makes ids follow commit order (every insert takes one
advisory lock until its transaction ends), so once a reader has seen id N, every row with a
smaller id is either visible already or never will be: `id > cursor` misses nothing and repeats
nothing, whatever the number of writers.

The rows go straight out as JSON, so `tool` and `attrs` come back as Postgres wrote them, wrapped
in `orjson.Fragment` for `orjson.dumps` to embed as they are: parsing them only to serialize them
again was a third of the live fan-out's CPU. `extra` (merged into the body) is parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.rows import dict_row

from agent_comms.store.database import Conn
from agent_comms.store.rows import COLUMNS

TABLE: Final = sql.SQL("workflow_comms.agent_messages")
SELECTED: Final = sql.SQL(", ").join(
    [
        sql.Identifier("id"),
        # json, not jsonb: the jsonb loader below leaves it alone and psycopg parses it.
        *(sql.SQL('"extra"::json AS "extra"') if c == "extra" else sql.Identifier(c) for c in COLUMNS),
        sql.Identifier("stored_at"),
    ]
)


class RawJsonb(Loader):
    """jsonb as Postgres wrote it, for `orjson.dumps` to embed unparsed."""

    def load(self, data: Any) -> orjson.Fragment:
        return orjson.Fragment(bytes(data))


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows a stream carries: the general channel, and/or the run-channel rows of workflows
    (by `workflow_uid`) or of every workflow carrying a `run_id`."""

    general: bool = False
    workflow_uids: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.general or self.workflow_uids or self.run_ids)


@dataclass(frozen=True, slots=True)
class Filters:
    """Narrowing within a scope; empty tuples and None mean no filter."""

    agents: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """The SQL of `where()` in Python, for rows fanned out from memory."""
        if self.agents and record["agent_id"] not in self.agents:
            return False
        if self.kinds and record["kind"] not in self.kinds:
            return False
        ts: datetime = record["timestamp"]
        if self.since is not None and ts < self.since:
            return False
        return self.until is None or ts < self.until


def scope_where(scope: Scope) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    if scope.general:
        parts.append(sql.SQL("channel = 'general'"))
    if scope.workflow_uids:
        parts.append(sql.SQL("(channel = 'run' AND workflow_uid = ANY(%s))"))
        params.append(list(scope.workflow_uids))
    if scope.run_ids:
        parts.append(sql.SQL("(channel = 'run' AND run_id = ANY(%s))"))
        params.append(list(scope.run_ids))
    if not parts:
        return sql.SQL("false"), []
    return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")"), params


def filters_where(filters: Filters) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = [sql.SQL("true")]
    params: list[Any] = []
    if filters.agents:
        parts.append(sql.SQL("agent_id = ANY(%s)"))
        params.append(list(filters.agents))
    if filters.kinds:
        parts.append(sql.SQL("kind = ANY(%s)"))
        params.append(list(filters.kinds))
    if filters.since is not None:
        parts.append(sql.SQL('"timestamp" >= %s'))
        params.append(filters.since)
    if filters.until is not None:
        parts.append(sql.SQL('"timestamp" < %s'))
        params.append(filters.until)
    return sql.SQL(" AND ").join(parts), params


async def max_id(conn: Conn) -> int:
    """The highest id committed now (0 for an empty table): every row at or below it is decided."""
    cur = await conn.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(TABLE))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def rows_after(
    conn: Conn, scope: Scope, filters: Filters, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` rows with id > `after_id`, in id order."""
    where_s, params_s = scope_where(scope)
    where_f, params_f = filters_where(filters)
    query = sql.SQL("SELECT {} FROM {} WHERE id > %s AND {} AND {} ORDER BY id LIMIT %s").format(
        SELECTED, TABLE, where_s, where_f
    )
    return await _fetch(conn, query, [after_id, *params_s, *params_f, limit])


async def latest_rows(conn: Conn, scope: Scope, filters: Filters, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` rows by id, returned oldest first."""
    where_s, params_s = scope_where(scope)
    where_f, params_f = filters_where(filters)
    query = sql.SQL("SELECT {} FROM {} WHERE {} AND {} ORDER BY id DESC LIMIT %s").format(
        SELECTED, TABLE, where_s, where_f
    )
    rows = await _fetch(conn, query, [*params_s, *params_f, limit])
    rows.reverse()
    return rows


async def _fetch(conn: Conn, query: sql.Composed, params: Sequence[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        cur.adapters.register_loader("jsonb", RawJsonb)
        await cur.execute(query, params)
        return list(await cur.fetchall())
