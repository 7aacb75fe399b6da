"""Running the real `agent-comms backfill` and reading the table back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import psycopg

from tests.support.publisher import IDENTITY

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "codex-run"


def copy_example(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(EXAMPLE.glob(".codex-*")):
        shutil.copy(f, dest / f.name)
        out.append(dest / f.name)
    return out


def run_backfill(
    source: Path, dsn: str, *args: str, env: dict[str, str] | None = None, identity: bool = True
) -> tuple[int, dict[str, Any], str]:
    """(exit code, the JSON summary, stderr)."""
    base = {k: v for k, v in os.environ.items() if k not in IDENTITY}
    full = {**base, **(IDENTITY if identity else {}), "DATABASE_URL": dsn, **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "agent_comms",
        "backfill",
        "--from",
        str(source),
        "--db-retry-for",
        "5",
        *args,
    ]
    done = subprocess.run(cmd, env=full, capture_output=True, timeout=300)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(b"{")]
    return done.returncode, orjson.loads(lines[-1]) if lines else {}, done.stderr.decode(errors="replace")


def rows(dsn: str, workflow_uid: str = IDENTITY["WORKFLOW_UID"]) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT * FROM workflow_comms.agent_messages WHERE workflow_uid = %s ORDER BY source, line, channel",
            (workflow_uid,),
        )
        return list(cur.fetchall())
