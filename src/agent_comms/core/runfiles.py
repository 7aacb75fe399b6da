"""What the publisher leaves beside the files: `.agent-comms/identity.json` and `checkpoints/`.

The backfill reads the identity (and the normalization options the publisher used, so both
produce the same content); whatever carries the run's files carries this folder too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from agent_comms.core.message import SCHEMA_VERSION, RunIdentity

STATE_DIR: Final = ".agent-comms"
IDENTITY_FILE: Final = "identity.json"
CHECKPOINT_DIR: Final = "checkpoints"


def state_dir(watch_dir: Path) -> Path:
    return watch_dir / STATE_DIR


def identity_path(watch_dir: Path) -> Path:
    return state_dir(watch_dir) / IDENTITY_FILE


def checkpoint_dir(watch_dir: Path) -> Path:
    return state_dir(watch_dir) / CHECKPOINT_DIR


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: temp file, fsync, rename (a crash leaves the old or the new)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class RunManifest:
    """The content of identity.json: who wrote the files and how their lines were normalized."""

    identity: RunIdentity
    general_kinds: tuple[str, ...]
    subject_prefix: str
    max_line_bytes: int
    redact_patterns: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            **self.identity.to_json(),
            "general_kinds": list(self.general_kinds),
            "subject_prefix": self.subject_prefix,
            "max_line_bytes": self.max_line_bytes,
            "redact_patterns": list(self.redact_patterns),
            "globs": list(self.globs),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RunManifest:
        ident = RunIdentity(
            workflow_uid=doc["workflow_uid"],
            workflow_name=doc["workflow_name"],
            workflow_namespace=doc["workflow_namespace"],
            step_id=doc["step_id"],
            agent_id=doc.get("agent_id"),
            run_id=doc.get("run_id"),
            stage=doc.get("stage"),
            runtime=doc.get("runtime", "argo"),
        )
        return cls(
            identity=ident,
            general_kinds=tuple(doc.get("general_kinds", ())),
            subject_prefix=doc.get("subject_prefix", "argo.workflow"),
            max_line_bytes=int(doc.get("max_line_bytes", 4 * 1024 * 1024)),
            redact_patterns=tuple(doc.get("redact_patterns", ())),
            globs=tuple(doc.get("globs", ())),
        )


def write_manifest(watch_dir: Path, manifest: RunManifest) -> Path:
    path = identity_path(watch_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, orjson.dumps(manifest.to_json(), option=orjson.OPT_INDENT_2))
    return path


def read_manifest(watch_dir: Path) -> RunManifest | None:
    """The manifest beside the files, or None when there is none (a run without a publisher)."""
    path = identity_path(watch_dir)
    if not path.is_file():
        return None
    return RunManifest.from_json(orjson.loads(path.read_bytes()))
