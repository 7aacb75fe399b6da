"""`agent-comms consume` from start to exit: HTTP first, then NATS, Postgres and the ingest.

Startup: the HTTP server answers /healthz at once (/readyz fails until the consumer is bound
and Postgres answers); the ingest connects to NATS (forever), migrates (waiting out Postgres),
binds the durable consumer (waiting for NACK) and ingests. SIGTERM/SIGINT only set the stop
event: /readyz fails, the ingest commits and acks what it holds, then the server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from agent_comms.bus import Connection
from agent_comms.consumer.health import Health
from agent_comms.consumer.http import bind_socket, create_app, http_server
from agent_comms.consumer.ingest import Ingest
from agent_comms.consumer.metrics import IngestMetrics
from agent_comms.consumer.probe import Prober
from agent_comms.settings import ConsumeSettings
from agent_comms.store.database import create_pool, describe

log = logging.getLogger(__name__)

HTTP_GRACE_S = 2.0


async def serve_consumer(settings: ConsumeSettings) -> None:
    """Run until SIGTERM/SIGINT, then drain and return; a crash of any part raises."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        # SIGTERM: the kubelet stopping the pod (rolling update, scale down); SIGINT: Ctrl-C.
        log.info("signal_received", extra={"signal": sig.name})
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    metrics = IngestMetrics()
    health = Health(metrics)
    sock = bind_socket(settings.http_host, settings.http_port)
    server = http_server(create_app(health, metrics.registry), graceful_timeout_s=HTTP_GRACE_S)
    nats_conn = Connection(settings.nats, name=settings.nats.name)
    pool = create_pool(settings.store, name="agent-comms-consumer")
    ingest = Ingest(settings, nats_conn, health, metrics, stop)
    prober = Prober(settings, nats_conn, pool, health, metrics, stop)
    log.info(
        "consumer_starting",
        extra={
            "stream": settings.stream,
            "consumer": settings.durable,
            "nats_url": settings.nats.url,
            "database": describe(settings.store),
            "http": f"{settings.http_host}:{sock.getsockname()[1]}",
            "batch_size": settings.batch_size,
        },
    )

    async def run_ingest() -> None:
        try:
            await ingest.run()
        finally:
            # Whatever ended the ingest, the rest of the process follows it.
            stop.set()
            server.should_exit = True

    async with contextlib.AsyncExitStack() as stack:
        await pool.open(wait=False)
        stack.push_async_callback(pool.close)
        stack.push_async_callback(nats_conn.close)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(server.serve(sockets=[sock]))
                tg.create_task(prober.run())
                tg.create_task(run_ingest())
        except BaseExceptionGroup as group:
            # One failure is the story; surface it as itself (an AgentCommsError stays one line).
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    log.info("consumer_stopped", extra={"commits": ingest.commits})
