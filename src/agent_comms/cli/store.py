"""Postgres commands: `migrate`, `prune`, `dead-letters list|replay`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import click

from agent_comms import log as logsetup
from agent_comms.cli.options import (
    common_logging,
    database_options,
    echo_json,
    max_body_option,
    run_command,
    store_settings,
)
from agent_comms.core.errors import AgentCommsError

log = logging.getLogger("agent_comms.cli")


@click.command()
@click.option(
    "--wait",
    "wait_s",
    envvar="AGENT_COMMS_MIGRATE_WAIT",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to retry while Postgres is unreachable (e.g. starting).",
)
@database_options
@common_logging
@run_command
def migrate(wait_s: float, **kw: Any) -> None:
    """Apply the Postgres migrations (schema workflow_comms) and print the versions applied.

    \b
    Idempotent, and safe when several processes run it at once (an advisory lock serializes
    them; the later ones find nothing to do). The consumer and the backfill also migrate on start.
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry
    from agent_comms.store import migrate as apply_migrations

    settings = store_settings(kw)

    async def go() -> list[int]:
        conn = await connect_with_retry(settings, within_s=wait_s)
        try:
            return await apply_migrations(conn)
        finally:
            await conn.close()

    echo_json({"applied": asyncio.run(go())})


@click.command()
@click.option(
    "--older-than",
    required=True,
    envvar="AGENT_COMMS_RETENTION",
    help="Delete messages older than this (by message time), e.g. 60d; and dead letters last seen before it.",
)
@click.option(
    "--batch-rows",
    type=int,
    default=10_000,
    show_default=True,
    help="Rows deleted per transaction (short locks beside a running consumer).",
)
@database_options
@common_logging
@run_command
def prune(older_than: str, batch_rows: int, **kw: Any) -> None:
    """Delete rows past the retention (Postgres keeps 30 to 90 days; JetStream keeps 7)."""
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from datetime import timedelta

    from agent_comms.settings import parse_duration
    from agent_comms.store import connect_with_retry
    from agent_comms.store import prune as prune_rows

    age = timedelta(seconds=parse_duration(older_than, name="--older-than"))
    if age < timedelta(days=1):
        raise AgentCommsError(
            f"--older-than={older_than}: less than a day would delete live runs; use e.g. 60d"
        )
    settings = store_settings(kw)

    async def go() -> Any:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2, autocommit=True)
        try:
            return await prune_rows(conn, age, batch_rows=batch_rows)
        finally:
            await conn.close()

    echo_json(asyncio.run(go()).to_json())


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages that could not be stored: list them, replay them after a fix."""


@dead_letters.command("list")
@click.option("--limit", type=int, default=100, show_default=True, help="At most this many, oldest first.")
@click.option("--all", "include_replayed", is_flag=True, help="Include letters already replayed.")
@database_options
@common_logging
@run_command
def dead_letters_list(limit: int, include_replayed: bool, **kw: Any) -> None:
    """One JSON object per letter: id, subject, stream_seq, reason, size, attempts, a preview."""
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry, list_dead_letters

    settings = store_settings(kw)

    async def go() -> list[Any]:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2)
        try:
            return await list_dead_letters(conn, include_replayed=include_replayed, limit=limit)
        finally:
            await conn.close()

    for letter in asyncio.run(go()):
        echo_json(letter.to_json())


@dead_letters.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Replay this letter (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every letter not yet replayed.")
@max_body_option
@database_options
@common_logging
@run_command
def dead_letters_replay(ids: tuple[int, ...], replay_all: bool, max_body_bytes: int, **kw: Any) -> None:
    """Re-judge stored letters with the code that runs now; store the good ones, mark them replayed.

    Prints a JSON summary: replayed, inserted, present (already stored), still_invalid (with reasons).
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.store import connect_with_retry, replay_dead_letters

    if bool(ids) == replay_all:
        raise AgentCommsError("dead-letters replay: pass --id N (repeatable) or --all")
    settings = store_settings(kw)

    async def go() -> Any:
        conn = await connect_with_retry(settings, within_s=settings.connect_timeout_s * 2)
        try:
            chosen = None if replay_all else ids
            return await replay_dead_letters(conn, ids=chosen, max_body_bytes=max_body_bytes)
        finally:
            await conn.close()

    echo_json(asyncio.run(go()).to_json())
