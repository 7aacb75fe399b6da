"""The JSON API: runs, a run's messages, the general channel, transcripts (docs/web.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import psycopg_pool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agent_comms.settings import WebSettings
from agent_comms.store.database import Conn
from agent_comms.store.feed import Filters, Scope, max_id
from agent_comms.store.runs import Resolved, list_runs, resolve
from agent_comms.store.timeline import Order, Page, key_of, page, stream_rows
from agent_comms.web import params
from agent_comms.web.params import BadParameter, NotFound
from agent_comms.web.rows import api_row
from agent_comms.web.runs import api_run, summarize
from agent_comms.web.transcript import markdown_transcript

RUN_KEY: Final = (str, str, int, int)
GENERAL_KEY: Final = (datetime, str, str, int, int)
DEFAULT_PAGE: Final = 200
MAX_RUNS_PAGE: Final = 200


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


@dataclass(slots=True)
class Api:
    pool: psycopg_pool.AsyncConnectionPool[Conn]
    web: WebSettings

    async def runs(self, request: Request) -> Response:
        q = request.query_params
        limit = params.integer(q, "limit", default=50, low=1, high=MAX_RUNS_PAGE)
        after = params.decode_cursor(q, "cursor", (datetime, str))
        namespace = params.text(q, "namespace")
        uids = params.csv(q, "uid")
        async with self.pool.connection() as conn:
            rows, more = await list_runs(
                conn,
                limit=limit,
                namespace=namespace,
                after=(after[0], after[1]) if after else None,
                workflow_uids=uids,
            )
        now = datetime.now(UTC)
        runs = [api_run(r, now, self.web.stale_after_s) for r in rows]
        last = rows[-1] if rows else None
        return JSON(
            {
                "runs": runs,
                "next": params.encode_cursor((last["last_at"], last["workflow_uid"]))
                if more and last
                else None,
                "now": now.isoformat(),
                "stale_after_s": self.web.stale_after_s,
            }
        )

    async def run(self, request: Request) -> Response:
        resolved = await self._resolve(request)
        now = datetime.now(UTC)
        runs = [api_run(r, now, self.web.stale_after_s) for r in resolved.runs]
        return JSON(
            {
                "run": resolved.ref,
                "resolved_by": resolved.by,
                "summary": summarize(runs),
                "workflows": runs,
                "sources": await self._sources(resolved),
                "now": now.isoformat(),
                "stale_after_s": self.web.stale_after_s,
            }
        )

    async def run_messages(self, request: Request) -> Response:
        resolved = await self._resolve(request)
        q = request.query_params
        around = params.text(q, "around")
        if around is not None:
            return JSON(await self._around(resolved.scope, params.filters(q), around, q))
        return JSON(await self._page("run", resolved.scope, request, RUN_KEY))

    async def general_messages(self, request: Request) -> Response:
        return JSON(await self._page("general", Scope(general=True), request, GENERAL_KEY))

    async def transcript_md(self, request: Request) -> Response:
        resolved = await self._resolve(request)
        rows = self._all_rows(resolved, params.filters(request.query_params))
        now = datetime.now(UTC)
        runs = [api_run(r, now, self.web.stale_after_s) for r in resolved.runs]
        return _download(markdown_transcript(resolved.ref, runs, rows), resolved.ref, "md", "text/markdown")

    async def transcript_jsonl(self, request: Request) -> Response:
        resolved = await self._resolve(request)
        rows = self._all_rows(resolved, params.filters(request.query_params))

        async def lines() -> AsyncIterator[bytes]:
            async for batch in rows:
                yield b"".join(orjson.dumps(api_row(r, html=False)) + b"\n" for r in batch)

        return _download(lines(), resolved.ref, "jsonl", "application/x-ndjson")

    # -- helpers ------------------------------------------------------------------------------

    async def _resolve(self, request: Request) -> Resolved:
        ref = str(request.path_params["run_id"])
        async with self.pool.connection() as conn:
            resolved = await resolve(conn, ref)
        if resolved is None:
            raise NotFound(f"run {ref!r}: no workflow_uid or run_id has stored messages")
        return resolved

    async def _sources(self, resolved: Resolved) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT workflow_uid, source, agent_id, max(line), count(*) FROM workflow_comms.agent_messages "
                "WHERE workflow_uid = ANY(%s) AND channel = 'run' GROUP BY 1, 2, 3 ORDER BY 1, 2",
                ([r["workflow_uid"] for r in resolved.runs],),
            )
            return [
                {"workflow_uid": u, "source": s, "agent_id": a, "lines": int(n), "rows": int(c)}
                for u, s, a, n, c in await cur.fetchall()
            ]

    async def _page(
        self, order: Order, scope: Scope, request: Request, key_types: tuple[type, ...]
    ) -> dict[str, Any]:
        q = request.query_params
        filters = params.filters(q)
        limit = params.integer(q, "limit", default=DEFAULT_PAGE, low=1, high=params.MAX_LIMIT)
        after = params.decode_cursor(q, "after", key_types)
        before = params.decode_cursor(q, "before", key_types)
        if after is not None and before is not None:
            raise BadParameter("before", "give after or before, not both")
        tail = params.text(q, "tail") in ("1", "true", "yes")
        async with self.pool.connection() as conn:
            high = await max_id(conn)
            result = await page(
                conn, order, scope, filters, limit=limit, after=after, before=before, tail=tail
            )
        return _page_json(order, result, high)

    async def _around(self, scope: Scope, filters: Filters, around: str, q: Any) -> dict[str, Any]:
        """A page centred on one event (a permalink): `around=<source>:<line>`."""
        source, sep, line_text = around.rpartition(":")
        if not sep or not source or not line_text.isdigit():
            raise BadParameter("around", f"{around!r}: use <source>:<line>, e.g. .codex-x-events.jsonl:42")
        limit = params.integer(q, "limit", default=DEFAULT_PAGE, low=2, high=params.MAX_LIMIT)
        async with self.pool.connection() as conn:
            high = await max_id(conn)
            cur = await conn.execute(
                "SELECT workflow_uid FROM workflow_comms.agent_messages WHERE channel = 'run' "
                "AND source = %s AND line = %s AND (workflow_uid = ANY(%s) OR run_id = ANY(%s)) "
                "ORDER BY id LIMIT 1",
                (source, int(line_text), list(scope.workflow_uids), list(scope.run_ids)),
            )
            found = await cur.fetchone()
            if found is None:
                raise NotFound(f"event {around!r} is not in this run")
            at = (str(found[0]), source, int(line_text), 0)
            earlier = await page(conn, "run", scope, filters, limit=limit // 2, before=at)
            later = await page(conn, "run", scope, filters, limit=limit - limit // 2, after=at)
        merged = Page(earlier.rows + later.rows, earlier.more_before, later.more_after)
        return _page_json("run", merged, high)

    async def _all_rows(self, resolved: Resolved, filters: Filters) -> AsyncIterator[list[dict[str, Any]]]:
        async with self.pool.connection() as conn:
            async for batch in stream_rows(conn, "run", resolved.scope, filters):
                yield batch


def _page_json(order: Order, result: Page, high: int) -> dict[str, Any]:
    rows = result.rows
    return {
        "messages": [api_row(r) for r in rows],
        "first": params.encode_cursor(key_of(order, rows[0])) if rows else None,
        "last": params.encode_cursor(key_of(order, rows[-1])) if rows else None,
        "more_before": result.more_before,
        "more_after": result.more_after,
        # Every row with an id up to here is in the table: resume SSE from it (lastEventId).
        "high": high,
    }


def _download(
    body: AsyncIterator[bytes] | AsyncIterator[str], ref: str, ext: str, media_type: str
) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ref)[:100] or "run"
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="transcript-{safe}.{ext}"'},
    )
