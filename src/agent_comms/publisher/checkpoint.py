"""Per-file read positions that survive a crash, advanced only behind acknowledged lines.

A checkpoint names the offset and line number after the last line whose copies were all
acknowledged, the file's inode, and a fingerprint of the bytes just before the offset. On
restart a file that was replaced (other inode), truncated (shorter than the offset) or rewritten
in place (fingerprint differs) is read again from its start.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from agent_comms.core.runfiles import write_atomic

FINGERPRINT_BYTES: Final = 4096
"""How many bytes before the offset the fingerprint covers: enough to tell a rewrite apart."""


def fingerprint(fd: int, offset: int) -> str:
    """SHA-256 (16 hex digits) of up to FINGERPRINT_BYTES bytes before `offset` in an open file."""
    start = max(0, offset - FINGERPRINT_BYTES)
    data = os.pread(fd, offset - start, start)
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass(slots=True)
class Checkpoint:
    source: str
    offset: int = 0
    line: int = 0
    inode: int = 0
    fingerprint: str = ""
    step_id: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    """The normalizer's per-file state at `offset` (e.g. the sticky thread id)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "offset": self.offset,
            "line": self.line,
            "inode": self.inode,
            "fingerprint": self.fingerprint,
            "step_id": self.step_id,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        return cls(
            source=str(doc["source"]),
            offset=int(doc["offset"]),
            line=int(doc["line"]),
            inode=int(doc.get("inode", 0)),
            fingerprint=str(doc.get("fingerprint", "")),
            step_id=str(doc.get("step_id", "")),
            context=dict(doc.get("context") or {}),
        )


class CheckpointStore:
    """One JSON file per watched file under `.agent-comms/checkpoints/`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, source: str) -> Path:
        return self.directory / f"{source}.json"

    def load(self, source: str) -> Checkpoint | None:
        """The saved checkpoint, or None when there is none or it cannot be read (start over)."""
        try:
            return Checkpoint.from_json(orjson.loads(self.path(source).read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, cp: Checkpoint) -> None:
        write_atomic(self.path(cp.source), orjson.dumps(cp.to_json()))


def resume_position(cp: Checkpoint | None, fd: int) -> Checkpoint | None:
    """The checkpoint if it still describes the open file, else None (read from the start)."""
    if cp is None or cp.offset == 0:
        return None
    st = os.fstat(fd)
    if st.st_ino != cp.inode or st.st_size < cp.offset:
        return None
    if fingerprint(fd, cp.offset) != cp.fingerprint:
        return None
    return cp
