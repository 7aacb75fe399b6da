"""Versioned migrations: `migrations/NNNN_name.sql`, applied in order, each exactly once.

Safe when several processes migrate at once (two consumer replicas and a backfill starting
together): everything runs in one transaction that first takes a transaction-level advisory
lock, so the second process waits, then finds the versions applied and does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

from agent_comms.core.errors import AgentCommsError
from agent_comms.store.database import Conn

log = logging.getLogger(__name__)

SCHEMA: Final = "workflow_comms"

MIGRATION_LOCK_KEY: Final = 0x6167656E745F636D
"""pg_advisory_xact_lock key ("agent_cm" in ASCII): one migrator at a time per database."""

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP: Final = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations() -> list[Migration]:
    """The migration files shipped in this package, by version; a gap or a duplicate is a bug."""
    found: list[Migration] = []
    for entry in resources.files("agent_comms.store").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise AgentCommsError(
            f"store migrations must be numbered 0001, 0002, ... without gaps; found {versions}"
        )
    return found


async def migrate(conn: Conn) -> list[int]:
    """Apply the pending migrations in order; returns the versions this call applied.

    Idempotent: a second call (or a concurrent one, which waits for the lock) applies nothing.
    A migration file that changed after it was applied is an error: migrations are append-only.
    """
    migrations = load_migrations()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        await conn.execute(_BOOTSTRAP)
        cur = await conn.execute(f"SELECT version, checksum FROM {SCHEMA}.schema_migrations")
        applied = {int(v): str(c) for v, c in await cur.fetchall()}
        for m in migrations:
            if m.version in applied and applied[m.version] != m.checksum:
                raise AgentCommsError(
                    f"migration {m.version:04d}_{m.name}.sql differs from the one applied to this database; "
                    "migrations are append-only: restore the file and add a new migration for the change"
                )
        pending = [m for m in migrations if m.version not in applied]
        for m in pending:
            await conn.execute(m.sql)
            await conn.execute(
                f"INSERT INTO {SCHEMA}.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
            log.info("migration_applied", extra={"version": m.version, "migration": m.name})
        newer = sorted(v for v in applied if v > len(migrations))
    if newer:
        log.warning(
            "database_schema_newer",
            extra={"versions": newer, "known": len(migrations), "fix": "upgrade agent-comms"},
        )
    return [m.version for m in pending]
