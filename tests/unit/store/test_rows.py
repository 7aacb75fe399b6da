"""What a body must be to become a row, and what the row keeps (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from agent_comms.core.message import REQUIRED_FIELDS
from agent_comms.store.migrate import load_migrations
from agent_comms.store.rows import (
    NUL_REPLACEMENT,
    InvalidBody,
    body_from_record,
    decode_body,
    row_from_body,
    row_from_bytes,
)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel": "run",
        "schema": 1,
        "message_id": "uid-1:.codex-implementation-events.jsonl:3:0123456789abcdef",
        "workflow_uid": "uid-1",
        "workflow_name": "wf",
        "workflow_namespace": "agents",
        "agent_id": "implementation",
        "kind": "message",
        "role": "assistant",
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "content": "",
        "source": ".codex-implementation-events.jsonl",
        "line": 3,
        "step_id": "wf-step-1",
        "attrs": {},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def reason(raw: bytes, *, max_body_bytes: int = 1 << 20) -> str:
    with pytest.raises(InvalidBody) as caught:
        row_from_bytes(raw, max_body_bytes=max_body_bytes, arrived_via="nats", stream_seq=1)
    return caught.value.reason


def test_not_json_not_object_and_too_large_are_refused_with_a_reason() -> None:
    assert reason(b"{not json").startswith("not_json")
    assert reason(b"\xff\xfe").startswith("not_json")
    assert reason(b"[1, 2]") == "not_object: a JSON list"
    assert reason(b'"text"') == "not_object: a JSON str"
    assert reason(orjson.dumps(body()), max_body_bytes=100).startswith("too_large:")


@pytest.mark.parametrize("missing", REQUIRED_FIELDS)
def test_each_required_field_is_required(missing: str) -> None:
    assert reason(orjson.dumps(body(**{missing: ...}))) == f"missing_fields: {missing}"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"channel": "private"}, "invalid_field: channel="),
        ({"kind": "thought"}, "invalid_field: kind="),
        ({"role": "robot"}, "invalid_field: role="),
        ({"line": 0}, "invalid_field: line=0"),
        ({"line": True}, "invalid_field: line must be an integer"),
        ({"line": "3"}, "invalid_field: line must be an integer"),
        ({"schema": 0}, "invalid_field: schema=0"),
        ({"timestamp": "yesterday"}, "invalid_field: timestamp="),
        ({"workflow_uid": ""}, "invalid_field: workflow_uid is empty"),
        ({"content": 5}, "invalid_field: content must be a string"),
        ({"tool": "shell"}, "invalid_field: tool must be an object"),
        ({"attrs": [1]}, "invalid_field: attrs must be an object"),
        ({"run_id": 7}, "invalid_field: run_id must be a string"),
    ],
)
def test_wrong_values_and_types_are_refused(change: dict[str, Any], expected: str) -> None:
    assert reason(orjson.dumps(body(**change))).startswith(expected)


def test_newer_schema_may_bring_new_kinds_roles_and_fields() -> None:
    row = row_from_body(body(schema=3, kind="thought", role="critic", mood="calm"), arrived_via="backfill")
    assert (row.schema, row.kind, row.role) == (3, "thought", "critic")
    assert row.extra is not None and orjson.loads(row.extra) == {"mood": "calm"}


def test_nul_is_replaced_everywhere_and_counted() -> None:
    raw = orjson.dumps(body(content="a\x00b", tool={"k\x00": ["\x00"]}, attrs={"x": "\x00\x00"}))
    row = row_from_bytes(raw, max_body_bytes=1 << 20, arrived_via="nats", stream_seq=9)
    assert row.content == f"a{NUL_REPLACEMENT}b"
    assert row.tool is not None and "\\u0000" not in row.tool and "\x00" not in row.tool
    assert orjson.loads(row.attrs) == {"x": NUL_REPLACEMENT * 2, "nul_replaced": 5}


def test_timestamp_without_offset_is_utc() -> None:
    row = row_from_body(body(timestamp="2026-01-02T03:04:05"), arrived_via="backfill")
    assert row.timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_record_reads_back_as_the_body() -> None:
    original = body(run_id="r1", tool={"name": "sh"}, attrs={"a": 1}, future={"x": 1})
    row = row_from_body(original, arrived_via="nats", stream_seq=4)
    record = row._asdict() | {
        "tool": orjson.loads(row.tool or "null"),
        "attrs": orjson.loads(row.attrs),
        "extra": orjson.loads(row.extra or "null"),
    }
    assert body_from_record(record) == original


def test_decode_body_returns_the_object() -> None:
    assert decode_body(b'{"a": 1}', max_body_bytes=100) == {"a": 1}


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1)) and versions
