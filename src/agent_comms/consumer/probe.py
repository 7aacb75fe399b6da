"""Periodic checks behind /readyz and the lag gauge: Postgres answers, the consumer still exists."""

from __future__ import annotations

import asyncio
import logging

import nats.errors
import psycopg_pool
from nats.js.errors import NotFoundError

from agent_comms.bus import Connection
from agent_comms.consumer.binding import missing_consumer_fix
from agent_comms.consumer.health import Health
from agent_comms.consumer.metrics import IngestMetrics
from agent_comms.settings import ConsumeSettings
from agent_comms.store.database import Conn, describe, ping

log = logging.getLogger(__name__)


class Prober:
    """Every `probe_interval_s`: ping Postgres through the pool, and look up the bound consumer."""

    def __init__(
        self,
        settings: ConsumeSettings,
        nats_conn: Connection,
        pool: psycopg_pool.AsyncConnectionPool[Conn],
        health: Health,
        metrics: IngestMetrics,
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.nats = nats_conn
        self.pool = pool
        self.health = health
        self.metrics = metrics
        self.stop = stop

    async def run(self) -> None:
        while not self.stop.is_set():
            await self.probe_once()
            try:
                async with asyncio.timeout(self.settings.probe_interval_s):
                    await self.stop.wait()
            except TimeoutError:
                continue

    async def probe_once(self) -> None:
        s = self.settings
        timeout_s = min(s.probe_interval_s, s.store.connect_timeout_s)
        if await ping(self.pool, timeout_s):
            self.health.set("database_ok", True)
        else:
            self.health.set(
                "database_ok", False, f"Postgres at {describe(s.store)} does not answer; check DATABASE_URL"
            )
        if not (self.health.consumer_bound and self.nats.connected.is_set()):
            return
        try:
            info = await self.nats.nc.jetstream().consumer_info(s.stream, s.durable, timeout=timeout_s)
        except NotFoundError as exc:
            problem = f"consumer {s.durable} on stream {s.stream} disappeared ({exc.description}): "
            self.health.set("consumer_bound", False, problem + missing_consumer_fix(s))
            log.error("consumer_lost", extra={"problem": problem})
        except (TimeoutError, nats.errors.Error) as exc:
            log.debug("consumer_probe_failed", extra={"error": repr(exc)})
        else:
            self.metrics.lag.set(info.num_pending or 0)
