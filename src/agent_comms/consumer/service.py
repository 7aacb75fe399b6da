"""`agent-comms consume` from start to exit: HTTP first, then NATS, Postgres and the ingest.

Startup: the HTTP server answers /healthz at once (/readyz fails until the consumer is bound
and Postgres answers); the ingest connects to NATS (forever), migrates (waiting out Postgres),
binds the durable consumer (waiting for NACK) and ingests. SIGTERM/SIGINT only set the stop
event: /readyz fails, the ingest commits and acks what it holds, then the server exits.

The web half (API, SSE, pages) is handed in by the CLI as a factory, so this package never
imports it; with `--no-ingest` it runs alone, without NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

import psycopg_pool
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute

from agent_comms.bus import Connection
from agent_comms.consumer.health import Health
from agent_comms.consumer.http import bind_socket, create_app, http_server
from agent_comms.consumer.ingest import Ingest
from agent_comms.consumer.metrics import IngestMetrics
from agent_comms.consumer.probe import Prober
from agent_comms.gctune import tune_for_throughput
from agent_comms.settings import ConsumeSettings
from agent_comms.store.database import Conn, create_pool, describe

log = logging.getLogger(__name__)

HTTP_GRACE_S = 2.0


class WebPart(Protocol):
    """What the web half gives the consumer: routes for its app and one long-running task."""

    def routes(self) -> Sequence[BaseRoute]: ...

    async def run(self, stop: asyncio.Event) -> None: ...


WebFactory = Callable[[psycopg_pool.AsyncConnectionPool[Conn], CollectorRegistry, Health], WebPart]


async def serve_consumer(settings: ConsumeSettings, web_factory: WebFactory | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain and return; a crash of any part raises."""
    tune_for_throughput()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        # SIGTERM: the kubelet stopping the pod (rolling update, scale down); SIGINT: Ctrl-C.
        log.info("signal_received", extra={"signal": sig.name})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    metrics = IngestMetrics()
    health = Health(metrics, needs_consumer=settings.ingest, needs_listening=web_factory is not None)
    sock = bind_socket(settings.bind_host, settings.http_port)
    # The name shows in pg_stat_activity: which Deployment a connection belongs to.
    pool = create_pool(settings.store, name="agent-comms-consumer" if settings.ingest else "agent-comms-web")
    web = web_factory(pool, metrics.registry, health) if web_factory else None
    app = create_app(health, metrics.registry, routes=web.routes() if web else ())
    server = http_server(app, graceful_timeout_s=HTTP_GRACE_S)
    nats_conn = Connection(settings.nats, name=settings.nats.name)
    ingest = Ingest(settings, nats_conn, health, metrics, stop) if settings.ingest else None
    prober = Prober(settings, nats_conn, pool, health, metrics, stop)
    url = f"http://{settings.bind_host}:{sock.getsockname()[1]}"
    log.info(
        "consumer_starting",
        extra={
            "ingest": settings.ingest,
            "stream": settings.stream,
            "consumer": settings.durable,
            "nats_url": settings.nats.url if settings.ingest else None,
            "database": describe(settings.store),
            "http": url,
            "pages": f"{url}/agents" if web else None,
            "batch_size": settings.batch_size,
        },
    )
    if web and settings.is_open_to_localhost_only:
        log.warning(
            "http_localhost_only",
            extra={
                "http": url,
                "why": "AGENT_COMMS_API_TOKEN is not set, so the API and pages answer on this machine only",
                "fix": "set AGENT_COMMS_API_TOKEN (or put an auth proxy in front) and pass --http-host 0.0.0.0",
            },
        )

    async def run_ingest(ingest: Ingest) -> None:
        try:
            await ingest.run()
        finally:
            # Whatever ended the ingest, the rest of the process follows it.
            stop.set()
            server.should_exit = True

    async def exit_on_stop() -> None:
        await stop.wait()
        server.should_exit = True

    async with contextlib.AsyncExitStack() as stack:
        await pool.open(wait=False)
        stack.push_async_callback(pool.close)
        stack.push_async_callback(nats_conn.close)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve(sockets=[sock]))
                tg.create_task(prober.run())
                if web is not None:
                    tg.create_task(web.run(stop))
                if ingest is not None:
                    tg.create_task(run_ingest(ingest))
                else:
                    tg.create_task(exit_on_stop())
        except BaseExceptionGroup as group:
            # One failure is the story; surface it as itself (an AgentCommsError stays one line).
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    log.info("consumer_stopped", extra={"commits": ingest.commits if ingest else 0})
