"""Reading parsed JSON values defensively, and rendering them as markdown for people.

Private to the Codex mapping modules. Nothing here raises for a value of the wrong type.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any, Final

import orjson

from agent_comms.core.message import Kind, Normalized, Role
from agent_comms.core.text import cap_text

if TYPE_CHECKING:
    from agent_comms.core._codex_common import LineWork

ARGUMENTS_MAX_BYTES: Final = 2048
"""`tool.arguments` and `attrs.arguments`: larger values become a cut JSON string."""

MAX_NESTING: Final = 32
"""Containers nested deeper than this in attrs are replaced by a note (orjson refuses ~255 levels)."""


# -- reading JSON values defensively -------------------------------------------------------------


def as_text(value: Any) -> str:
    """A JSON value as text for people: strings as they are, null as "", anything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return dumps(value)


def dumps(value: Any, *, indent: bool = False) -> str:
    """JSON text of any parsed value; never raises.

    orjson refuses to write about 255 levels of nesting (it reads 1024): deeper containers are
    written as a note instead.
    """
    option = orjson.OPT_INDENT_2 if indent else 0
    try:
        return orjson.dumps(value, option=option).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_bounded(value, 0), option=option).decode("utf-8")


def _bounded(value: Any, depth: int) -> Any:
    """A copy of a parsed value with containers below `MAX_NESTING` levels replaced by a note."""
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            return f"…[object nested deeper than {MAX_NESTING} levels]"
        return {str(k): _bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_NESTING:
            return f"…[array nested deeper than {MAX_NESTING} levels]"
        return [_bounded(v, depth + 1) for v in value]
    if isinstance(value, (str, bool, float)) or value is None:
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return value
    return str(value)


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def int_or_none(value: Any) -> int | None:
    """An integer (not a bool, which JSON keeps apart), or a float with an integral value."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def id_text(value: Any) -> str | None:
    """An id as text: strings as they are, integers written out, anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def dict_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def list_or_empty(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


# -- renderers -----------------------------------------------------------------------------------


def fence(body: str, lang: str = "") -> str:
    """A fenced code block, its fence longer than any backtick run inside (CommonMark)."""
    ticks = "```"
    if "`" in body:  # one memchr; most output has no backtick at all
        while ticks in body:
            ticks += "`"
    return f"{ticks}{lang}\n{body}\n{ticks}"


def shell_join(command: Any) -> str:
    """A command as one shell line: argv lists are joined with quoting, strings kept as they are."""
    if type(command) is str:
        return command
    if isinstance(command, list) and all(isinstance(a, str) for a in command):
        return shlex.join(command)
    return as_text(command)


def duration_ms(value: Any) -> int | None:
    """Milliseconds from a Rust `Duration` (`{"secs": N, "nanos": N}`) or a number of seconds."""
    if isinstance(value, dict):
        secs = int_or_none(value.get("secs"))
        nanos = int_or_none(value.get("nanos")) or 0
        return None if secs is None else secs * 1000 + nanos // 1_000_000
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return int(value * 1000)
    return None


def usage_summary(usage: dict[str, Any]) -> str:
    """`input N (cached M), output K[, reasoning R]` from a token usage object."""
    parts = []
    inp = int_or_none(usage.get("input_tokens"))
    cached = int_or_none(usage.get("cached_input_tokens"))
    out = int_or_none(usage.get("output_tokens"))
    reasoning = int_or_none(usage.get("reasoning_output_tokens"))
    if inp is not None:
        parts.append(f"input {inp}" + (f" (cached {cached})" if cached is not None else ""))
    if out is not None:
        parts.append(f"output {out}")
    if reasoning:
        parts.append(f"reasoning {reasoning}")
    return ", ".join(parts) if parts else "not reported"


def checklist(items: list[Any], w: LineWork, *, text_key: str, done: Any) -> list[str]:
    """Markdown checklist lines; `done(item)` gives the mark: "x", "~" or " "."""
    lines = []
    for item in items:
        if isinstance(item, dict):
            lines.append(f"- [{done(item)}] {w.text(item.get(text_key))}")
        else:
            lines.append(f"- [ ] {w.text(item)}")
    return lines


def tool_facts(
    name: str,
    *,
    item_id: str | None = None,
    call_id: str | None = None,
    status: str | None = None,
    exit_code: int | None = None,
    arguments: Any = None,
) -> dict[str, Any]:
    """The body's `tool` field: `{name, call_id, item_id, status, exit_code, arguments}`, no Nones."""
    facts: dict[str, Any] = {"name": name}
    if call_id is not None:
        facts["call_id"] = call_id
    if item_id is not None:
        facts["item_id"] = item_id
    if status is not None:
        facts["status"] = status
    if exit_code is not None:
        facts["exit_code"] = exit_code
    if arguments is not None:
        facts["arguments"] = arguments
    return facts


def cap_arguments(value: Any) -> Any:
    """Arguments as they are if their JSON fits `ARGUMENTS_MAX_BYTES`, else that JSON cut, as text."""
    if isinstance(value, str):
        return cap_text(value, ARGUMENTS_MAX_BYTES)[0]
    encoded = dumps(value)
    if len(encoded) <= ARGUMENTS_MAX_BYTES:
        return value
    return cap_text(encoded, ARGUMENTS_MAX_BYTES)[0]


def result(kind: Kind, role: Role, content: str, attrs: dict[str, Any], tool: Any = None) -> Normalized:
    return Normalized(kind, role, content, tool, attrs)


def unrecognized(reason: str, attrs: dict[str, Any]) -> Normalized:
    """What any shape the mapping does not know becomes: a status line that says why."""
    attrs["unrecognized"] = reason
    return Normalized("status", "system", f"Unrecognized event: {reason}", None, attrs)
