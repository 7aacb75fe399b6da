"""Paging a timeline by keyset: a run's messages by (workflow_uid, source, line, id), the general
channel by (timestamp, workflow_uid, source, line, id), the orders DESIGN.md gives (a runId that
names several workflows shows them one after the other).

A page is always returned in ascending order. `after` gives the rows following a key, `before`
the rows preceding it, neither the first rows (or the last, with `tail`). One extra row is read
to tell whether more exist beyond the page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from psycopg import sql
from psycopg.rows import dict_row

from agent_comms.store.database import Conn
from agent_comms.store.feed import TABLE, Filters, Scope, filters_where, scope_where

Order = Literal["run", "general"]

ORDER_COLUMNS: Final[dict[Order, tuple[str, ...]]] = {
    "run": ("workflow_uid", "source", "line", "id"),
    "general": ("timestamp", "workflow_uid", "source", "line", "id"),
}


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    more_before: bool
    more_after: bool


def key_of(order: Order, record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record[c] for c in ORDER_COLUMNS[order])


def _key_sql(order: Order) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in ORDER_COLUMNS[order]))


async def page(
    conn: Conn,
    order: Order,
    scope: Scope,
    filters: Filters,
    *,
    limit: int,
    after: tuple[Any, ...] | None = None,
    before: tuple[Any, ...] | None = None,
    tail: bool = False,
) -> Page:
    """One page of the timeline; `after` and `before` are keys (`key_of`), at most one of them."""
    key = _key_sql(order)
    where_s, params_s = scope_where(scope)
    where_f, params_f = filters_where(filters)
    conditions: list[sql.Composable] = [where_s, where_f]
    params: list[Any] = [*params_s, *params_f]
    backwards = before is not None or (after is None and tail)
    if after is not None:
        conditions.append(sql.SQL("{} > ({})").format(key, _placeholders(after)))
        params.extend(after)
    if before is not None:
        conditions.append(sql.SQL("{} < ({})").format(key, _placeholders(before)))
        params.extend(before)
    direction = sql.SQL("DESC" if backwards else "ASC")
    order_by = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), direction) for c in ORDER_COLUMNS[order]
    )
    query = sql.SQL("SELECT * FROM {} WHERE {} ORDER BY {} LIMIT %s").format(
        TABLE, sql.SQL(" AND ").join(conditions), order_by
    )
    rows = await _fetch(conn, query, [*params, limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        return Page(rows, more_before=more, more_after=before is not None)
    return Page(rows, more_before=after is not None, more_after=more)


async def stream_rows(
    conn: Conn, order: Order, scope: Scope, filters: Filters, *, batch_rows: int = 1000
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of a scope in timeline order, in batches, through a server-side cursor.

    `conn` must not be in autocommit mode: the named cursor lives in its transaction.
    """
    where_s, params_s = scope_where(scope)
    where_f, params_f = filters_where(filters)
    query = sql.SQL("SELECT * FROM {} WHERE {} AND {} ORDER BY {}").format(
        TABLE, where_s, where_f, sql.SQL(", ").join(sql.Identifier(c) for c in ORDER_COLUMNS[order])
    )
    async with conn.cursor(name="agent_comms_transcript", row_factory=dict_row) as cur:
        await cur.execute(query, [*params_s, *params_f])
        while True:
            batch = await cur.fetchmany(batch_rows)
            if not batch:
                return
            yield list(batch)


def _placeholders(values: Sequence[Any]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Placeholder() for _ in values)


async def _fetch(conn: Conn, query: sql.Composed, params: Sequence[Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())
