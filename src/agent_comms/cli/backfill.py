"""`agent-comms backfill --from DIR`: the exit-handler step that completes a run in Postgres."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from agent_comms import log as logsetup
from agent_comms.cli.options import (
    common_logging,
    database_options,
    echo_json,
    identity_options,
    run_command,
    store_settings,
)
from agent_comms.core.errors import AgentCommsError
from agent_comms.settings import IDENTITY_FIELDS, layered_identity, parse_general_kinds

log = logging.getLogger("agent_comms.cli")


@click.command()
@click.option(
    "--from",
    "source_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The run's files (the agent's workspace, or the artifacts that carried it), "
    "with .agent-comms/identity.json beside them when the publisher ran.",
)
@click.option(
    "--file",
    "globs",
    multiple=True,
    metavar="GLOB",
    help="File name glob (repeatable); default: the globs in identity.json, else the Codex defaults.",
)
@click.option(
    "--general-kinds",
    envvar="AGENT_COMMS_GENERAL_KINDS",
    default=None,
    help="Kinds that also get a general-channel row; default: the policy in identity.json, else all.",
)
@click.option(
    "--batch-rows",
    envvar="AGENT_COMMS_BACKFILL_BATCH_ROWS",
    type=int,
    default=20_000,
    show_default=True,
    help="Rows per COPY and transaction.",
)
@click.option(
    "--db-retry-for",
    "db_retry_for_s",
    envvar="AGENT_COMMS_DB_RETRY_FOR",
    type=float,
    default=120.0,
    show_default=True,
    help="Seconds to keep retrying while Postgres is unreachable, then fail.",
)
@identity_options
@database_options
@common_logging
@run_command
@click.pass_context
def backfill(ctx: click.Context, /, **kw: Any) -> None:
    """Insert every line of a finished run that Postgres does not have yet: the exit handler.

    \b
    Reads the run's files through the same normalization as the publisher and inserts, for both
    channels by the run's policy, every row that is missing, whichever way earlier rows arrived.
    Idempotent: a second run inserts 0. What is present is decided by Postgres alone.

    \b
    Identity: each field from the flags, else .agent-comms/identity.json, else the environment
    (WORKFLOW_UID, WORKFLOW_NAME, WORKFLOW_NAMESPACE, STEP_ID, AGENT_ID, RUN_ID, STAGE).

    \b
    Prints one JSON summary on stdout: lines, rows, inserted, present (inserted + present ==
    rows), and the same per file. Exits non-zero with the reason when it cannot finish.
    """
    logsetup.configure(kw.pop("log_level"), kw.pop("log_format"))
    from agent_comms.backfill.backfill import DEFAULT_MAX_LINE_BYTES, Backfill, BackfillSettings
    from agent_comms.core.codex import DEFAULT_GLOBS, make_normalizer
    from agent_comms.core.runfiles import read_manifest
    from agent_comms.store.database import TRANSIENT, describe

    source_dir: Path = kw.pop("source_dir")
    manifest = read_manifest(source_dir)
    flags: dict[str, str | None] = {}
    env: dict[str, str | None] = {}
    for name in IDENTITY_FIELDS:
        value = kw.pop(name)
        from_cli = ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
        (flags if from_cli else env)[name] = value
    identity = layered_identity(flags, manifest.identity if manifest else None, env)
    kinds = kw.pop("general_kinds")
    if kinds is None and manifest is not None:
        kinds = ",".join(manifest.general_kinds) or "none"
    store = store_settings(kw)
    settings = BackfillSettings(
        source_dir=source_dir,
        identity=identity,
        store=store,
        general_kinds=parse_general_kinds(kinds or "all"),
        globs=tuple(kw.pop("globs")) or (manifest.globs if manifest and manifest.globs else DEFAULT_GLOBS),
        max_line_bytes=manifest.max_line_bytes if manifest else DEFAULT_MAX_LINE_BYTES,
        batch_rows=kw.pop("batch_rows"),
        db_retry_for_s=kw.pop("db_retry_for_s"),
    )
    try:
        normalizer = make_normalizer(
            max_line_bytes=settings.max_line_bytes,
            redact_patterns=manifest.redact_patterns if manifest else (),
        )
    except ValueError as exc:
        raise AgentCommsError(f"identity.json redact_patterns: {exc}") from exc
    try:
        summary = asyncio.run(Backfill(settings, normalizer).run())
    except TRANSIENT as exc:
        raise AgentCommsError(
            f"Postgres at {describe(store)} unreachable after {settings.db_retry_for_s:g}s of retries: {exc}; "
            "check DATABASE_URL and that the database is up (nothing is lost: run the backfill again)"
        ) from exc
    echo_json(summary.to_json())
