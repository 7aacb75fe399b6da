"""`agent-comms consume` (jangar-consumer) and `agent-comms nats apply`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click

from agent_comms import log as logsetup
from agent_comms.cli.options import (
    SIZE_HELP,
    ByteSize,
    common_logging,
    database_options,
    echo_json,
    max_body_option,
    nats_options,
    nats_settings,
    run_command,
    store_settings,
)
from agent_comms.core.errors import AgentCommsError

log = logging.getLogger("agent_comms.cli")


@click.command()
@click.option(
    "--http-host",
    envvar="AGENT_COMMS_HTTP_HOST",
    default=None,
    help="Address of the HTTP server (probes, metrics, API, pages). Default: 0.0.0.0 when "
    "AGENT_COMMS_API_TOKEN is set, else 127.0.0.1 only (transcripts are sensitive; say so at start).",
)
@click.option(
    "--http-port",
    envvar="AGENT_COMMS_HTTP_PORT",
    type=int,
    default=8080,
    show_default=True,
    help="Port of the HTTP server, up from the start.",
)
@click.option(
    "--stream",
    envvar="AGENT_COMMS_STREAM",
    default="agent-comms",
    show_default=True,
    help="The stream the durable consumer belongs to.",
)
@click.option(
    "--durable",
    envvar="AGENT_COMMS_DURABLE",
    default="jangar-agent-comms",
    show_default=True,
    help="The durable pull consumer to bind (never created or changed by this command).",
)
@click.option(
    "--batch-size",
    envvar="AGENT_COMMS_BATCH_SIZE",
    type=int,
    default=1000,
    show_default=True,
    help="Messages per transaction at most; smaller batches commit sooner when traffic is light.",
)
@click.option(
    "--pull-expires",
    "pull_expires_s",
    envvar="AGENT_COMMS_PULL_EXPIRES",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds a pull request waits on the server for messages.",
)
@max_body_option
@click.option(
    "--bind-retry",
    "bind_retry_s",
    envvar="AGENT_COMMS_BIND_RETRY",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between checks for the consumer while it does not exist.",
)
@click.option(
    "--probe-interval",
    "probe_interval_s",
    envvar="AGENT_COMMS_PROBE_INTERVAL",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between readiness checks (Postgres, consumer).",
)
@click.option(
    "--drain-timeout",
    "drain_timeout_s",
    envvar="AGENT_COMMS_DRAIN_TIMEOUT",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds from SIGTERM to give up a batch Postgres will not take (it stays unacked and "
    "is redelivered); keep it under the pod's grace period.",
)
@click.option(
    "--db-pool-size",
    envvar="AGENT_COMMS_DB_POOL_SIZE",
    type=int,
    default=4,
    show_default=True,
    help="Postgres connections for probes and reads (batches are written on one more).",
)
@click.option(
    "--no-ingest",
    is_flag=True,
    envvar="AGENT_COMMS_NO_INGEST",
    help="Serve the API, SSE and pages only: no NATS, no ingest (scale the web apart from the ingest).",
)
@click.option(
    "--api-token",
    envvar="AGENT_COMMS_API_TOKEN",
    default=None,
    show_default=False,
    help="Token the API and pages require (Bearer header or the /login cookie); unset: no auth, "
    "localhost only unless --http-host is given. Prefer the variable to the flag (ps shows flags).",
)
@click.option(
    "--sse-heartbeat",
    "sse_heartbeat_s",
    envvar="AGENT_COMMS_SSE_HEARTBEAT",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds between SSE keep-alive comments; keep under your proxies' idle timeout.",
)
@click.option(
    "--sse-history",
    "sse_history_rows",
    envvar="AGENT_COMMS_SSE_HISTORY",
    type=int,
    default=500,
    show_default=True,
    help="Rows an SSE stream sends first when it has no Last-Event-ID.",
)
@click.option(
    "--sse-client-queue",
    "sse_client_queue_rows",
    envvar="AGENT_COMMS_SSE_CLIENT_QUEUE",
    type=int,
    default=2000,
    show_default=True,
    help="Live rows held per SSE client; a slower client re-reads from Postgres instead (memory bound).",
)
@click.option(
    "--sse-compression/--no-sse-compression",
    envvar="AGENT_COMMS_SSE_COMPRESSION",
    default=True,
    show_default=True,
    help="Compress SSE streams (Content-Encoding: deflate, each live batch compressed once for every "
    "client) for clients that send Accept-Encoding: deflate, as browsers do.",
)
@click.option(
    "--stale-after",
    "stale_after_s",
    envvar="AGENT_COMMS_STALE_AFTER",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds of silence after which a run without a final status is shown as stale.",
)
@click.option(
    "--live-poll-interval",
    "live_poll_interval_s",
    envvar="AGENT_COMMS_LIVE_POLL_INTERVAL",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between reads by cursor when no NOTIFY arrives (bounds the cost of a lost one).",
)
@click.option(
    "--live-batch-interval",
    "live_batch_interval_s",
    envvar="AGENT_COMMS_LIVE_BATCH_INTERVAL",
    type=float,
    default=0.05,
    show_default=True,
    help="Least seconds between two live reads under steady traffic: rows committed in between reach "
    "every client in one write. Higher: less CPU per client on busy runs; lower: less delay. 0: none.",
)
@click.option(
    "--test-exit-after-commit",
    "exit_after_commits",
    type=int,
    default=0,
    hidden=True,
    help="Tests only: SIGKILL this process right after the Nth commit, before acking it.",
)
@database_options
@nats_options
@common_logging
@run_command
def consume(**kw: Any) -> None:
    """Ingest the durable consumer into Postgres and serve the API, SSE and pages (/agents) beside
    /healthz, /readyz, /metrics: jangar-consumer. `--no-ingest` serves the web half alone.

    \b
    Guarantee: every message of the stream becomes exactly one row per (message_id, channel):
    acks follow commits, and the unique key absorbs redeliveries and backfilled rows. A message
    that can never be stored goes to the dead-letter table (then acked): see `dead-letters`.
    Postgres down: fetching stops, nothing is lost or dead-lettered, ingest resumes when it is
    back. NATS down: reconnects forever. SIGTERM: commits and acks the batch in hand, exits 0.

    \b
    Binds the durable consumer and never creates it: until it exists /readyz fails and the log
    says to apply jangar-consumer/consumer.yaml (locally: `agent-comms nats apply`).
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    import dataclasses

    from agent_comms.consumer.service import serve_consumer
    from agent_comms.settings import ConsumeSettings, WebSettings
    from agent_comms.web.app import Web

    pool_size = kw.pop("db_pool_size")
    web = WebSettings(
        api_token=kw.pop("api_token") or None,
        heartbeat_s=kw.pop("sse_heartbeat_s"),
        history_rows=kw.pop("sse_history_rows"),
        client_queue_rows=kw.pop("sse_client_queue_rows"),
        stale_after_s=kw.pop("stale_after_s"),
        poll_interval_s=kw.pop("live_poll_interval_s"),
        batch_interval_s=kw.pop("live_batch_interval_s"),
        sse_compression=kw.pop("sse_compression"),
    )
    settings = ConsumeSettings(
        store=dataclasses.replace(store_settings(kw), pool_max_size=pool_size).validate(),
        nats=nats_settings(kw, "agent-comms-consumer"),
        ingest=not kw.pop("no_ingest"),
        web=web,
        **kw,
    ).validate()

    def make_web(pool: Any, registry: Any, health: Any) -> Web:
        return Web(settings.store, settings.web, pool, registry, health.set)

    asyncio.run(serve_consumer(settings, make_web))


@click.group("nats")
def nats_group() -> None:
    """Local JetStream resources (in Kubernetes, NACK applies the same files)."""


@nats_group.command("apply")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--replicas", type=int, default=None, help="Override replicas (1 for a single local server).")
@click.option("--duplicate-window", default=None, help="Override the stream's duplicate window, e.g. 2s.")
@click.option("--ack-wait", default=None, help="Override the consumer's ack wait, e.g. 2s.")
@click.option("--max-deliver", type=int, default=None, help="Override the consumer's max deliver.")
@click.option(
    "--max-bytes",
    type=ByteSize(),
    default=None,
    help=f"Override the stream's byte limit (a local disk may be smaller; {SIZE_HELP}).",
)
@click.option(
    "--connect-wait",
    "connect_wait_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the NATS server.",
)
@nats_options
@common_logging
@run_command
def nats_apply(files: tuple[Path, ...], connect_wait_s: float, **kw: Any) -> None:
    """Create or update the Stream and Consumer of NACK YAML files (e.g. nats/stream.yaml
    jangar-consumer/consumer.yaml) on the server at NATS_URL; prints one JSON line per resource.

    \b
    Every spec field maps to the JetStream setting NACK would set; a field this command cannot
    map is an error naming it. Locally: --replicas 1 (one server), --duplicate-window 2s.
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.bus import Connection
    from agent_comms.nats_apply import Overrides, apply_resources, load_resources, parse_go_duration

    def duration(flag: str, value: str | None) -> float | None:
        return None if value is None else parse_go_duration(value, field=flag)

    overrides = Overrides(
        replicas=kw.pop("replicas"),
        duplicate_window_s=duration("--duplicate-window", kw.pop("duplicate_window")),
        ack_wait_s=duration("--ack-wait", kw.pop("ack_wait")),
        max_deliver=kw.pop("max_deliver"),
        max_bytes=kw.pop("max_bytes"),
    )
    settings = nats_settings(kw, "agent-comms-nats-apply").validate()
    resources = load_resources(files)

    async def go() -> list[Any]:
        conn = Connection(settings, name=settings.name)
        try:
            async with asyncio.timeout(connect_wait_s):
                await conn.connect()
        except TimeoutError:
            raise AgentCommsError(
                f"NATS_URL={settings.url}: no server answered in {connect_wait_s:g}s; start nats-server "
                "or fix NATS_URL"
            ) from None
        try:
            return await apply_resources(conn, resources, overrides)
        finally:
            await conn.close()

    for applied in asyncio.run(go()):
        echo_json(applied.to_json())
