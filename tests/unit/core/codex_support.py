"""Helpers for normalization tests: lines are built by the real `LineSplitter`, never by hand."""

from __future__ import annotations

from typing import Any

import orjson

from agent_comms.core.codex import FileContext, Normalizer, SourceKind, file_context
from agent_comms.core.lines import LineSplitter, RawLine
from agent_comms.core.message import Normalized
from agent_comms.core.redact import Redactor

STEP_ID = "codex-implementation-demo-1234567890"
EVENTS_FILE = ".codex-implementation-events.jsonl"
LOG_FILE = ".codex-implementation-agent.log"


def lines_of(data: bytes, *, max_line_bytes: int = 1 << 20, final: bool = True) -> list[RawLine]:
    """The physical lines of `data`; with `final`, an unterminated last line too (partial)."""
    splitter = LineSplitter(STEP_ID, max_line_bytes=max_line_bytes)
    lines = splitter.feed(data)
    if final:
        rest = splitter.finish()
        if rest is not None:
            lines.append(rest)
    return lines


def one_line(data: bytes, **kw: Any) -> RawLine:
    lines = lines_of(data, **kw)
    assert len(lines) == 1, lines
    return lines[0]


def normalize_event(
    event: Any,
    *,
    ctx: FileContext | None = None,
    normalizer: Normalizer | None = None,
    max_line_bytes: int = 8 << 20,
) -> Normalized:
    """Normalize one events-file line given as a JSON-able value or as the raw bytes of the line."""
    data = event if isinstance(event, bytes) else orjson.dumps(event)
    n = normalizer or Normalizer(Redactor())
    line = one_line(data + b"\n", max_line_bytes=max_line_bytes)
    return n.normalize(SourceKind.EVENTS, line, ctx or file_context(EVENTS_FILE))


def normalize_log(data: bytes, *, normalizer: Normalizer | None = None) -> Normalized:
    n = normalizer or Normalizer(Redactor())
    return n.normalize(SourceKind.AGENT_LOG, one_line(data + b"\n"), file_context(LOG_FILE))


def item(phase: str, **fields: Any) -> dict[str, Any]:
    """A current-format item event: `{"type": "item.<phase>", "item": {...}}`."""
    return {"type": f"item.{phase}", "item": fields}


def legacy(msg_type: str, submission: str = "0", **fields: Any) -> dict[str, Any]:
    """A legacy event: `{"id": <submission>, "msg": {"type": ..., ...}}`."""
    return {"id": submission, "msg": {"type": msg_type, **fields}}
