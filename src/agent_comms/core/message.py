"""The message model: one body per physical line, its id, and its encoding (DESIGN.md).

Publisher, backfill and consumer all build and read bodies through this module, so the id of a
line, its field names and its size limits exist exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

from agent_comms.core.lines import RawLine
from agent_comms.core.text import cap_text

SCHEMA_VERSION: Final = 1

Kind = Literal["message", "tool_call", "tool_result", "status", "error", "log"]
Role = Literal["system", "user", "assistant", "tool"]
Channel = Literal["run", "general"]

KINDS: Final[tuple[Kind, ...]] = ("message", "tool_call", "tool_result", "status", "error", "log")
ROLES: Final[tuple[Role, ...]] = ("system", "user", "assistant", "tool")
CHANNELS: Final[tuple[Channel, ...]] = ("run", "general")

REQUIRED_FIELDS: Final = (
    "message_id",
    "workflow_uid",
    "workflow_name",
    "workflow_namespace",
    "agent_id",
    "kind",
    "role",
    "timestamp",
    "channel",
    "content",
    "source",
    "line",
    "step_id",
    "schema",
)

PAYLOAD_HEADROOM_BYTES: Final = 1024
"""Room left under the server's max_payload for headers and the channel field (both small)."""


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """Who wrote the files: the workflow, the pod (step) and, optionally, agent and stage.

    `agent_id` and `stage` may be None; then each file's name supplies them.
    """

    workflow_uid: str
    workflow_name: str
    workflow_namespace: str
    step_id: str
    agent_id: str | None = None
    run_id: str | None = None
    stage: str | None = None
    runtime: str | None = "argo"

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_uid": self.workflow_uid,
            "workflow_name": self.workflow_name,
            "workflow_namespace": self.workflow_namespace,
            "step_id": self.step_id,
            "agent_id": self.agent_id,
            "run_id": self.run_id,
            "stage": self.stage,
            "runtime": self.runtime,
        }


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """The identity of one watched file: base name plus the agent and stage its lines carry."""

    source: str
    agent_id: str
    stage: str | None


@dataclass(slots=True)
class Normalized:
    """What a line means, before identity is attached: the output of normalization."""

    kind: Kind
    role: Role
    content: str
    tool: dict[str, Any] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    timestamp: str | None = None
    """The event's own RFC 3339 time, if the line carries one."""


def message_id(workflow_uid: str, source: str, line: int, digest: str) -> str:
    """`<workflow_uid>:<source>:<line>:<digest>`, identical for publisher, restart and backfill."""
    return f"{workflow_uid}:{source}:{line}:{digest}"


def rfc3339(ts: datetime) -> str:
    """An aware time in UTC, RFC 3339 with microseconds and a `Z`: how every body writes time."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def rfc3339_now() -> str:
    return rfc3339(datetime.now(UTC))


def build_body(
    run: RunIdentity, file: FileIdentity, line: RawLine, norm: Normalized, read_at: str
) -> dict[str, Any]:
    """The JSON body of a line, without `channel` (the only field in which the two copies differ)."""
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "message_id": message_id(run.workflow_uid, file.source, line.number, line.digest),
        "workflow_uid": run.workflow_uid,
        "workflow_name": run.workflow_name,
        "workflow_namespace": run.workflow_namespace,
        "agent_id": file.agent_id,
        "kind": norm.kind,
        "role": norm.role,
        "timestamp": norm.timestamp or read_at,
        "content": norm.content,
        "source": file.source,
        "line": line.number,
        "step_id": run.step_id,
    }
    if run.run_id:
        body["run_id"] = run.run_id
    if file.stage:
        body["stage"] = file.stage
    if run.runtime:
        body["runtime"] = run.runtime
    if norm.tool is not None:
        body["tool"] = norm.tool
    body["attrs"] = norm.attrs
    return body


@dataclass(slots=True)
class EncodedCopies:
    """The two encoded copies of one body; `general` is None when the policy keeps it off (one is
    made per line: not frozen, which would make creating it several times slower)."""

    message_id: str
    kind: str
    run: bytes
    general: bytes | None


_RUN_PREFIX: Final = b'{"channel":"run",'
_GENERAL_PREFIX: Final = b'{"channel":"general",'


def encode_copies(body: dict[str, Any], *, general: bool, max_payload: int) -> EncodedCopies:
    """Encode the run copy and (by policy) the general copy of a body.

    The body is serialized once; the copies differ only in their leading `channel` field. A body
    that would not fit under `max_payload` is shrunk by `fit_body` first (attrs before content).
    """
    encoded = orjson.dumps(body)
    limit = max_payload - PAYLOAD_HEADROOM_BYTES
    if len(encoded) > limit:
        encoded = orjson.dumps(fit_body(body, limit))
    rest = encoded[1:]
    return EncodedCopies(
        body["message_id"],
        body["kind"],
        _RUN_PREFIX + rest,
        _GENERAL_PREFIX + rest if general else None,
    )


def body_with_channel(body: dict[str, Any], channel: Channel) -> dict[str, Any]:
    """A complete body (as stored and as decoded from the wire) for one channel."""
    return {"channel": channel, **body}


# Attrs that stay when the rest must go: they explain how the content was changed.
_ESSENTIAL_ATTRS: Final = (
    "format",
    "event_type",
    "item_type",
    "item_id",
    "truncated",
    "content_bytes",
    "oversized",
    "line_bytes",
    "invalid_utf8",
    "had_ansi",
    "parse_error",
    "non_json",
    "partial_line",
    "blank",
    "redacted",
    "thread_id",
    "had_controls",
    "unrecognized",
    "normalize_error",
    "transient",
    "fatal",
    "delta",
)


def fit_body(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """Shrink a body until its encoding fits `limit` bytes: attrs first, then tool, then content.

    Each step records itself in `attrs.payload_fit`. Content is the last thing cut, head and tail
    kept, so a person still sees what the line was.
    """
    attrs = dict(body.get("attrs") or {})
    fitted = dict(body)
    steps: list[str] = []

    def size() -> int:
        fitted["attrs"] = {**attrs, "payload_fit": steps} if steps else attrs
        return len(orjson.dumps(fitted))

    if "raw" in attrs and size() > limit:
        attrs.pop("raw")
        steps.append("dropped attrs.raw")
    if size() > limit:
        attrs = {k: attrs[k] for k in _ESSENTIAL_ATTRS if k in attrs}
        steps.append("kept essential attrs only")
    tool = fitted.get("tool")
    if isinstance(tool, dict) and "arguments" in tool and size() > limit:
        fitted["tool"] = {k: v for k, v in tool.items() if k != "arguments"}
        steps.append("dropped tool.arguments")
    over = size() - limit
    if over > 0:
        attrs["truncated"] = True
        content = str(fitted.get("content", ""))
        budget = len(content.encode("utf-8"))
        steps.append("content cut to fit max_payload")
        while over > 0 and budget > 0:  # escaping makes the encoded size a little unpredictable
            budget = max(budget - over - 64, 0)
            fitted["content"], omitted = cap_text(content, budget)
            steps[-1] = f"content cut by {omitted} bytes to fit max_payload"
            over = size() - limit
    return fitted
