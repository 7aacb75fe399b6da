"""A message body becomes a table row: decoded, validated, cleaned of NULs, unknown fields kept.

The consumer (bytes from the stream), the dead-letter replay (the same bytes, later) and the
backfill (bodies it built itself) all go through `row_from_body`, so one set of rules decides
what can be stored. A body that breaks them raises `InvalidBody`, whose `reason` is what the
dead-letter table records.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

import orjson

from agent_comms.core.errors import AgentCommsError
from agent_comms.core.message import CHANNELS, KINDS, REQUIRED_FIELDS, ROLES, SCHEMA_VERSION, rfc3339

ArrivedVia = Literal["nats", "backfill"]

NUL_REPLACEMENT: Final = "\ufffd"
"""Postgres refuses U+0000 in text and jsonb; the replacement character says something was there."""

MAX_INT4: Final = 2**31 - 1

OPTIONAL_TEXT_FIELDS: Final = ("run_id", "stage", "runtime")
KNOWN_FIELDS: Final = frozenset((*REQUIRED_FIELDS, *OPTIONAL_TEXT_FIELDS, "tool", "attrs"))
_CHECKED_APART: Final = ("content", "timestamp", "line", "schema", "kind", "role", "channel")
_NONEMPTY_TEXT: Final = tuple(f for f in REQUIRED_FIELDS if f not in _CHECKED_APART)
_NUL_ESCAPE: Final = b"\\u0000"


class InvalidBody(AgentCommsError):
    """A body that can never be stored as it is; `reason` is short and names the offending field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageRow(NamedTuple):
    """One row of workflow_comms.agent_messages, in COPY column order (JSON columns as text)."""

    message_id: str
    channel: str
    workflow_uid: str
    workflow_name: str
    workflow_namespace: str
    agent_id: str
    kind: str
    role: str
    timestamp: datetime
    content: str
    source: str
    line: int
    step_id: str
    run_id: str | None
    stage: str | None
    runtime: str | None
    tool: str | None
    attrs: str
    schema: int
    extra: str | None
    arrived_via: str
    stream_seq: int | None

    @property
    def key(self) -> tuple[str, str]:
        """(message_id, channel): the table's unique key."""
        return (self.message_id, self.channel)


COLUMNS: Final = MessageRow._fields


def decode_body(raw: bytes, *, max_body_bytes: int) -> dict[str, Any]:
    """Parse the bytes of one stream message into a body object.

    Raises InvalidBody for a body above `max_body_bytes`, invalid UTF-8 or JSON, or JSON that is
    not an object (an array, a string, ...).
    """
    if len(raw) > max_body_bytes:
        raise InvalidBody(f"too_large: {len(raw)} bytes > --max-body-bytes {max_body_bytes}")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"not_json: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidBody(f"not_object: a JSON {type(body).__name__}")
    return body


def row_from_bytes(
    raw: bytes, *, max_body_bytes: int, arrived_via: ArrivedVia, stream_seq: int | None
) -> MessageRow:
    """`decode_body` then `row_from_body`; the escaped-NUL scan is skipped when the bytes have none."""
    body = decode_body(raw, max_body_bytes=max_body_bytes)
    may_hold_nul = _NUL_ESCAPE in raw
    return row_from_body(body, arrived_via=arrived_via, stream_seq=stream_seq, may_hold_nul=may_hold_nul)


def row_from_body(
    body: dict[str, Any], *, arrived_via: ArrivedVia, stream_seq: int | None = None, may_hold_nul: bool = True
) -> MessageRow:
    """The row for a body (with its `channel`), or InvalidBody naming what is wrong.

    Bodies of a newer `schema` are accepted: kinds and roles this version does not know are kept
    as they are, and unknown fields go to `extra`. Every NUL in a string (values and keys, at any
    depth) becomes U+FFFD and `attrs.nul_replaced` counts them. A timestamp without an offset is
    taken as UTC.
    """
    missing = [f for f in REQUIRED_FIELDS if body.get(f) is None]
    if missing:
        raise InvalidBody(f"missing_fields: {','.join(missing)}")
    if may_hold_nul:
        body, replaced = _replace_nul(body)
        if replaced:
            attrs = body.get("attrs")
            body["attrs"] = {**(attrs if isinstance(attrs, dict) else {}), "nul_replaced": replaced}
    schema = _int_field(body, "schema", low=1)
    for name in _NONEMPTY_TEXT:
        _text_field(body, name, nonempty=True)
    channel = _text_field(body, "channel", nonempty=True)
    if channel not in CHANNELS:
        raise InvalidBody(f"invalid_field: channel={channel!r} is not one of {', '.join(CHANNELS)}")
    is_known_schema = schema <= SCHEMA_VERSION
    kind = _choice_field(body, "kind", KINDS, strict=is_known_schema)
    role = _choice_field(body, "role", ROLES, strict=is_known_schema)
    tool = body.get("tool")
    if tool is not None and not isinstance(tool, dict):
        raise InvalidBody(f"invalid_field: tool must be an object or null, not a {type(tool).__name__}")
    attrs = body.get("attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise InvalidBody(f"invalid_field: attrs must be an object or null, not a {type(attrs).__name__}")
    optional = [_optional_text(body, name) for name in OPTIONAL_TEXT_FIELDS]
    extra = {k: v for k, v in body.items() if k not in KNOWN_FIELDS}
    return MessageRow(
        body["message_id"],
        channel,
        body["workflow_uid"],
        body["workflow_name"],
        body["workflow_namespace"],
        body["agent_id"],
        kind,
        role,
        _timestamp_field(body),
        _text_field(body, "content", nonempty=False),
        body["source"],
        _int_field(body, "line", low=1),
        body["step_id"],
        optional[0],
        optional[1],
        optional[2],
        orjson.dumps(tool).decode() if tool is not None else None,
        orjson.dumps(attrs).decode() if attrs else "{}",
        schema,
        orjson.dumps(extra).decode() if extra else None,
        arrived_via,
        stream_seq,
    )


def _text_field(body: dict[str, Any], name: str, *, nonempty: bool) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise InvalidBody(f"invalid_field: {name} must be a string, not a {type(value).__name__}")
    if nonempty and not value:
        raise InvalidBody(f"invalid_field: {name} is empty")
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidBody(f"invalid_field: {name} must be a string or null, not a {type(value).__name__}")
    return value


def _int_field(body: dict[str, Any], name: str, *, low: int) -> int:
    value = body[name]
    # bool is an int in Python but not in JSON: `"line": true` is a broken body, not line 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBody(f"invalid_field: {name} must be an integer, not {value!r}"[:200])
    if not low <= value <= MAX_INT4:
        raise InvalidBody(f"invalid_field: {name}={value} is out of range {low}..{MAX_INT4}")
    return value


def _choice_field(body: dict[str, Any], name: str, allowed: tuple[str, ...], *, strict: bool) -> str:
    value = _text_field(body, name, nonempty=True)
    if strict and value not in allowed:
        raise InvalidBody(f"invalid_field: {name}={value!r}"[:200] + f" is not one of {', '.join(allowed)}")
    return value


def _timestamp_field(body: dict[str, Any]) -> datetime:
    value = _text_field(body, "timestamp", nonempty=True)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidBody(f"invalid_field: timestamp={value[:64]!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _replace_nul(value: Any) -> tuple[Any, int]:
    """The value with every NUL in its strings (and object keys) replaced, and how many there were."""
    if isinstance(value, str):
        count = value.count("\x00")
        return (value.replace("\x00", NUL_REPLACEMENT), count) if count else (value, 0)
    if isinstance(value, dict):
        total = 0
        out: dict[str, Any] = {}
        for k, v in value.items():
            new_k, nk = _replace_nul(k)
            new_v, nv = _replace_nul(v)
            out[new_k] = new_v
            total += nk + nv
        return (out, total) if total else (value, 0)
    if isinstance(value, list):
        items = [_replace_nul(v) for v in value]
        total = sum(n for _, n in items)
        return ([v for v, _ in items], total) if total else (value, 0)
    return value, 0


def body_from_record(record: dict[str, Any]) -> dict[str, Any]:
    """The contract body of a stored row: the inverse of `row_from_body` (absent fields stay absent)."""
    body: dict[str, Any] = {k: record[k] for k in REQUIRED_FIELDS}
    body["timestamp"] = rfc3339(record["timestamp"])
    for name in (*OPTIONAL_TEXT_FIELDS, "tool"):
        if record.get(name) is not None:
            body[name] = record[name]
    body["attrs"] = record.get("attrs") or {}
    body.update(record.get("extra") or {})
    return body
