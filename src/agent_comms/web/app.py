"""The web half of `agent-comms consume`: routes for the consumer's app, and the live fan-out.

`Web.routes()` is one Mount holding its own Starlette app (auth, security headers, error
handlers), added after the consumer's /healthz, /readyz and /metrics, which stay open.
`Web.run(stop)` migrates (waiting out Postgres) and runs the hub until stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final, Literal

import psycopg
import psycopg_pool
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_comms.settings import StoreSettings, WebSettings
from agent_comms.store import connect, migrate
from agent_comms.store.database import TRANSIENT, Conn, describe, retry_transient
from agent_comms.web.api import Api
from agent_comms.web.auth import Login, TokenAuth
from agent_comms.web.live import Hub
from agent_comms.web.metrics import WebMetrics
from agent_comms.web.openapi import openapi_document
from agent_comms.web.pages import general_page, run_page, runs_page
from agent_comms.web.params import BadParameter, NotFound, bad_parameter, not_found
from agent_comms.web.sse import Streams

log = logging.getLogger(__name__)

GZIP_MIN_BYTES: Final = 1024
"""Smaller responses go out as they are: compressing them saves less than it costs."""

WebFact = Literal["listening", "migrated", "database_ok"]
ReportFact = Callable[[WebFact, bool, str], None]

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""No inline script or style anywhere, no remote image (a tracking pixel in a transcript)."""

SECURITY_HEADERS: Final = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every web response (pages, API, SSE)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Web:
    """Routes, hub and settings of the web half; `pool` is the consumer's pool for reads."""

    def __init__(
        self,
        store: StoreSettings,
        web: WebSettings,
        pool: psycopg_pool.AsyncConnectionPool[Conn],
        registry: CollectorRegistry,
        report: ReportFact,
    ) -> None:
        self.store = store
        self.settings = web
        self.pool = pool
        self.report = report
        self.metrics = WebMetrics(registry)
        self.hub = Hub(store, web, pool, self.metrics, on_listening=self._on_listening)
        self.api = Api(pool, web)
        self.streams = Streams(self.hub, pool, web, self.metrics)

    def _on_listening(self, value: bool) -> None:
        self.report("listening", value, "LISTEN connection to Postgres down: live updates paused")

    def app(self) -> Starlette:
        api, streams, login = self.api, self.streams, Login(self.settings.api_token)
        # JSON, transcripts, pages and static files are gzipped for clients that accept it
        # (Starlette's GZipMiddleware; large bodies in a thread). The SSE routes are not wrapped:
        # they compress themselves, once per live batch for every client (deflate.py).
        gz = [Middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES)]
        routes: list[BaseRoute] = [
            Route("/", _to_agents, methods=["GET"]),
            Route("/openapi.json", _openapi, methods=["GET"], middleware=gz),
            Route("/login", login.form, methods=["GET"]),
            Route("/login", login.submit, methods=["POST"]),
            Route("/logout", login.logout, methods=["GET", "POST"]),
            Route("/api/agents/events", streams.events, methods=["GET"]),
            Route("/api/agents/run-updates", streams.run_updates, methods=["GET"]),
            Route("/api/agents/runs", api.runs, methods=["GET"], middleware=gz),
            Route("/api/agents/general/messages", api.general_messages, methods=["GET"], middleware=gz),
            Route("/api/agents/runs/{run_id}", api.run, methods=["GET"], middleware=gz),
            Route("/api/agents/runs/{run_id}/messages", api.run_messages, methods=["GET"], middleware=gz),
            Route(
                "/api/agents/runs/{run_id}/transcript.md", api.transcript_md, methods=["GET"], middleware=gz
            ),
            Route(
                "/api/agents/runs/{run_id}/transcript.jsonl",
                api.transcript_jsonl,
                methods=["GET"],
                middleware=gz,
            ),
            Route("/agents", runs_page, methods=["GET"], middleware=gz),
            Route("/agents/general", general_page, methods=["GET"], middleware=gz),
            Route("/agents/{run_id}", run_page, methods=["GET"], middleware=gz),
            Mount(
                "/static",
                app=StaticFiles(packages=[("agent_comms.web", "static")]),
                name="static",
                middleware=gz,
            ),
        ]
        middleware = [Middleware(SecurityHeaders)]
        if self.settings.api_token:
            middleware.append(Middleware(TokenAuth, token=self.settings.api_token))
        return Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={
                BadParameter: bad_parameter,
                NotFound: not_found,
                # Postgres unreachable (refused, timed out, pool exhausted): a clear 503, no trace.
                psycopg.OperationalError: _database_unavailable,
            },
        )

    def routes(self) -> list[BaseRoute]:
        return [Mount("", app=self.app())]

    async def run(self, stop: asyncio.Event) -> None:
        """Migrate (a web-only process may start before any consumer), then fan out until stop."""
        if not await self._migrate(stop):
            return
        await self.hub.run(stop)

    async def _migrate(self, stop: asyncio.Event) -> bool:
        problem = f"Postgres at {describe(self.store)} unreachable; check DATABASE_URL"

        async def attempt() -> list[int]:
            try:
                conn = await connect(self.store)
            except TRANSIENT:
                self.report("database_ok", False, problem)
                raise
            try:
                return await migrate(conn)
            finally:
                await conn.close()

        try:
            await retry_transient(attempt, self.store, what="web_migrate", should_give_up=stop.is_set)
        except TRANSIENT:
            if stop.is_set():
                return False
            raise
        self.report("migrated", True, "")
        return True


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("request_database_unavailable", extra={"path": request.url.path, "error": repr(exc)})
    return JSONResponse(
        {"error": "Postgres is unreachable: retry shortly (operators: /readyz and the log say why)"},
        status_code=503,
        headers={"Retry-After": "2"},
    )


async def _to_agents(_: Request) -> Response:
    return RedirectResponse("/agents", status_code=307)


async def _openapi(_: Request) -> Response:
    return JSONResponse(openapi_document())
