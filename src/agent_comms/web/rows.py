"""A stored row as the API shows it: the contract body plus where it sits and how it arrived.

`id` is the SSE cursor; `html` (agent messages only) is the content rendered by `render.py`,
so browsers never parse untrusted markdown themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from agent_comms.core.message import rfc3339
from agent_comms.store.rows import body_from_record
from agent_comms.web.render import render_markdown

MARKDOWN_KINDS = frozenset(("message",))


def api_row(record: dict[str, Any], *, html: bool = True) -> dict[str, Any]:
    out = body_from_record(record)
    out["id"] = record["id"]
    out["arrived_via"] = record["arrived_via"]
    out["stored_at"] = iso(record["stored_at"])
    if html and record["kind"] in MARKDOWN_KINDS:
        out["html"] = render_markdown(record["content"])
    return out


def encode_row(record: dict[str, Any]) -> bytes:
    return orjson.dumps(api_row(record))


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return rfc3339(ts)


def sse_event(row_id: int, data: bytes) -> bytes:
    """One SSE event: `id:` (the cursor) and one `data:` line (JSON has no raw newlines)."""
    return b"id: %d\ndata: %s\n\n" % (row_id, data)
