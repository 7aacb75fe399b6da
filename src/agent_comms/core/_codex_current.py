"""Current (`codex exec --json`, >= 0.44) and transitional (0.40-0.43) events: codex-formats.md 2, 3.3, 5.2.

Every function takes the parsed event and returns one `Normalized`; content pieces taken from the
event pass through `LineWork.text` (cleaned, then redacted).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from agent_comms.core._codex_common import FileContext, LineWork
from agent_comms.core._codex_render import (
    ARGUMENTS_MAX_BYTES,
    as_text,
    checklist,
    dict_or_none,
    dumps,
    fence,
    id_text,
    int_or_none,
    json_type,
    list_or_empty,
    result,
    shell_join,
    text_or_none,
    tool_facts,
    unrecognized,
    usage_summary,
)
from agent_comms.core.message import Normalized
from agent_comms.core.text import cap_text

TRANSIENT_ERROR: Final = re.compile(r"^Reconnecting\.\.\. \d+/\d+")
"""Transient stream errors (retries) carry no flag; only their text says so (codex-formats.md 2.1)."""

MAX_LISTED_CHANGES: Final = 20

Attrs = dict[str, Any]

_ITEM_PHASES: Final = {f"item.{phase}": phase for phase in ("started", "updated", "completed")}


def map_event(obj: dict[str, Any], etype: str, ctx: FileContext, w: LineWork) -> Normalized:
    """One event with a string `type`."""
    attrs: Attrs = {"format": "exec-jsonl", "event_type": etype}
    phase = _ITEM_PHASES.get(etype)
    if phase is not None:
        return _item(obj, etype, phase, attrs, w)
    handler = _TOP_LEVEL.get(etype)
    if handler is not None:
        return handler(obj, ctx, attrs, w)
    if etype.endswith(".failed"):
        return _failed(obj, etype, attrs, w)
    return result("status", "system", f"Codex event {w.text(etype)}", attrs)


# -- top-level events ----------------------------------------------------------------------------


def _thread_started(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    key = "thread_id"
    if attrs["event_type"] == "session.created":
        attrs["format"] = "exec-transitional"
        key = "session_id"
    thread_id = id_text(obj.get(key))
    if thread_id is None:
        return result("status", "system", "Codex thread started", attrs)
    ctx.thread_id = thread_id
    return result("status", "system", f"Codex thread started ({w.text(thread_id)})", attrs)


def _turn_started(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    return result("status", "system", "Turn started", attrs)


def _turn_completed(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    usage = dict_or_none(obj.get("usage"))
    if usage is None:
        return result("status", "system", "Turn completed", attrs)
    attrs["usage"] = usage
    return result("status", "system", f"Turn completed. Tokens: {usage_summary(usage)}", attrs)


def _failed(obj: dict[str, Any], etype: str, attrs: Attrs, w: LineWork) -> Normalized:
    """`turn.failed` and any other `*.failed` (0.154 binaries hint at `thread.failed`)."""
    error = obj.get("error")
    message = error.get("message") if isinstance(error, dict) else error
    if message is None:
        message = obj.get("message")
    subject = etype[: -len(".failed")] or "event"
    label = subject[:1].upper() + subject[1:]
    attrs["fatal"] = True
    text = w.text(message)
    return result("error", "system", f"{w.text(label)} failed: {text}" if text else f"{label} failed", attrs)


def _turn_failed(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    return _failed(obj, attrs["event_type"], attrs, w)


def _error(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    """Top-level `error`: fatal errors and transient retries share the type; the text separates them."""
    message = w.text(obj.get("message"))
    transient = attrs["event_type"] == "stream_error" or bool(TRANSIENT_ERROR.match(message))
    attrs["transient"] = transient
    attrs["fatal"] = not transient
    return result("error", "system", message or "Error", attrs)


def _plan_delta(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    attrs["delta"] = True
    item_id = id_text(obj.get("item_id"))
    if item_id is not None:
        attrs["item_id"] = item_id
    return result("status", "system", f"Plan delta: {w.summary(obj.get('delta'))}", attrs)


def _request_user_input(obj: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    request_id = id_text(obj.get("id"))
    call_id = id_text(obj.get("call_id"))
    if request_id is not None:
        attrs["item_id"] = request_id
    if call_id is not None:
        attrs["call_id"] = call_id
    lines = ["Codex asks:"]
    for q in list_or_empty(obj.get("questions")):
        if not isinstance(q, dict):
            lines.append(f"- {w.text(q)}")
            continue
        header = w.text(q.get("header"))
        question = w.text(q.get("question"))
        lines.append(f"- **{header}**: {question}" if header else f"- {question}")
        for option in list_or_empty(q.get("options")):
            if isinstance(option, dict):
                label = w.text(option.get("label"))
                description = w.text(option.get("description"))
                lines.append(f"  - {label}: {description}" if description else f"  - {label}")
    return result("message", "assistant", "\n".join(lines), attrs)


_TOP_LEVEL: Final[dict[str, Callable[[dict[str, Any], FileContext, Attrs, LineWork], Normalized]]] = {
    "thread.started": _thread_started,
    "session.created": _thread_started,
    "turn.started": _turn_started,
    "turn.completed": _turn_completed,
    "turn.failed": _turn_failed,
    "error": _error,
    "stream_error": _error,
    "item.plan.delta": _plan_delta,
    "request_user_input": _request_user_input,
}


# -- items ---------------------------------------------------------------------------------------


class _Item:
    """The facts every item mapping needs, read once."""

    __slots__ = ("attrs", "data", "id", "phase", "status", "type", "w")

    def __init__(self, data: dict[str, Any], item_type: str, phase: str, attrs: Attrs, w: LineWork) -> None:
        self.data = data
        self.type = item_type
        self.phase = phase
        self.attrs = attrs
        self.w = w
        item_id = data.get("id")
        self.id = item_id if type(item_id) is str else id_text(item_id)
        status = data.get("status")
        self.status = status if type(status) is str else text_or_none(status)


def _item(obj: dict[str, Any], etype: str, phase: str, attrs: Attrs, w: LineWork) -> Normalized:
    attrs["phase"] = phase
    data = obj.get("item")
    if not isinstance(data, dict):
        return unrecognized(f"{etype} with an item that is {json_type(data)}, not an object", attrs)
    item_type = data.get("type")
    if not isinstance(item_type, str):
        item_type = data.get("item_type")
        if not isinstance(item_type, str):
            return result("status", "system", f"Codex event {etype} (item without a type)", attrs)
        attrs["format"] = "exec-transitional"
    item = _Item(data, item_type, phase, attrs, w)
    if w.item_ids is not None:
        # The item's own id and the web search call id were flattened into one object.
        item.id = w.item_ids[0]
        attrs["call_id"] = w.item_ids[1]
    if item.id is not None:
        attrs["item_id"] = item.id
    attrs["item_type"] = item_type
    if item.status is not None:
        attrs["item_status"] = item.status
    handler = _ITEMS.get(item_type)
    if handler is None:
        return result("status", "system", f"Codex event {etype}/{w.text(item_type)}", attrs)
    return handler(item)


def _message(item: _Item) -> Normalized:
    """agent_message / assistant_message / reasoning / plan: the text itself."""
    if item.type == "assistant_message":
        item.attrs["format"] = "exec-transitional"
    return result("message", "assistant", item.w.text(item.data.get("text")), item.attrs)


def _todo_list(item: _Item) -> Normalized:
    items = list_or_empty(item.data.get("items"))
    item.attrs["todo"] = items
    lines = checklist(
        items, item.w, text_key="text", done=lambda i: "x" if i.get("completed") is True else " "
    )
    header = f"Plan ({item.phase}):"
    return result("status", "assistant", "\n".join([header, *lines]) if lines else header, item.attrs)


def _error_item(item: _Item) -> Normalized:
    """Non-fatal warnings (config warnings, deprecations, "model rerouted")."""
    item.attrs["fatal"] = False
    return result("error", "system", item.w.text(item.data.get("message")) or "Error", item.attrs)


def _command(item: _Item) -> Normalized:
    w, data, attrs = item.w, item.data, item.attrs
    command = shell_join(data.get("command"))
    attrs["command"] = command
    raw_exit = data.get("exit_code")
    exit_code = int_or_none(raw_exit)
    # `exit_code` is null (current) or a 0 placeholder (transitional) while the command runs.
    if item.phase != "completed" and item.status in (None, "in_progress"):
        exit_code = None
    elif exit_code is not None:
        attrs["exit_code"] = exit_code
    tool = tool_facts(
        "command_execution",
        item_id=item.id,
        status=item.status,
        exit_code=exit_code,
        arguments={"command": command},
    )
    shown = w.text(command)
    if item.phase == "started":
        return result("tool_call", "assistant", fence(f"$ {shown}", "sh"), attrs, tool)
    if item.phase == "updated":
        return result("status", "tool", f"Command running: `{_one_line(shown)}`", attrs, tool)
    status = item.status or ("completed" if exit_code == 0 else "failed" if exit_code is not None else None)
    if exit_code is not None:
        header = f"Exit code {exit_code}"
    elif raw_exit is not None:
        header = f"Exit code {w.text(raw_exit)}"
    else:
        header = "Command ended without an exit code"
    if status:
        header += f" ({w.text(status)})"
    output = w.text(data.get("aggregated_output"))
    content = f"{header}\n\n{fence(output)}" if output else header
    return result("tool_result", "tool", content, attrs, tool)


def _changes(item: _Item) -> tuple[str, list[dict[str, Any]], list[tuple[str, str]]]:
    """`update a, add b`, the `[{path, kind}]` list for attrs, and (path, diff) pairs."""
    w = item.w
    listed: list[dict[str, Any]] = []
    words: list[str] = []
    diffs: list[tuple[str, str]] = []
    changes = list_or_empty(item.data.get("changes"))
    for change in changes:
        if not isinstance(change, dict):
            continue
        path = as_text(change.get("path"))
        kind = change.get("kind")
        if isinstance(kind, dict):  # app-server builds: {"type": "update", "move_path": ...}
            kind = kind.get("type")
        kind_text = as_text(kind)
        listed.append({"path": path, "kind": kind_text})
        if len(words) < MAX_LISTED_CHANGES:
            words.append(f"{w.text(kind_text)} {w.text(path)}".strip())
        diff = change.get("diff")
        if isinstance(diff, str) and diff:
            diffs.append((path, diff))
    summary = ", ".join(words) or "no files"
    if len(listed) > len(words):
        summary += f" and {len(listed) - len(words)} more"
    return summary, listed, diffs


def _file_change(item: _Item) -> Normalized:
    summary, listed, diffs = _changes(item)
    item.attrs["changes"] = listed
    tool = tool_facts("file_change", item_id=item.id, status=item.status)
    if item.phase == "started":
        return result("tool_call", "assistant", f"Applying patch: {summary}", item.attrs, tool)
    if item.phase == "updated":
        return result("status", "tool", f"Patch updated: {summary}", item.attrs, tool)
    content = f"Files changed ({item.w.text(item.status or 'completed')}): {summary}"
    if diffs:
        content += "\n\n" + fence("\n".join(item.w.text(diff) for _, diff in diffs), "diff")
    return result("tool_result", "tool", content, item.attrs, tool)


def _mcp_tool_call(item: _Item) -> Normalized:
    w, data, attrs = item.w, item.data, item.attrs
    server = as_text(data.get("server"))
    tool_name = as_text(data.get("tool"))
    arguments = data.get("arguments")
    attrs["server"] = server
    attrs["tool"] = tool_name
    if arguments is not None:
        attrs["arguments"] = arguments
    name = f"{server}.{tool_name}"
    tool = tool_facts(name, item_id=item.id, status=item.status, arguments=arguments)
    shown = f"`{w.text(name)}`"
    if item.phase == "started":
        content = shown
        if arguments is not None:
            shown_args = cap_text(w.text(dumps(arguments, indent=True)), ARGUMENTS_MAX_BYTES)[0]
            content += "\n\n" + fence(shown_args, "json")
        return result("tool_call", "assistant", content, attrs, tool)
    if item.phase == "updated":
        return result("status", "tool", f"{shown} in progress", attrs, tool)
    return result("tool_result", "tool", _mcp_result(item, shown), attrs, tool)


def _mcp_result(item: _Item, shown: str) -> str:
    w = item.w
    error = item.data.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        return f"Error: {w.text(message)}"
    res = item.data.get("result")
    if not isinstance(res, dict):
        return f"{shown} ({w.text(item.status or 'completed')}), no result"
    blocks = content_blocks(res.get("content"), w)
    if blocks:
        return "\n\n".join(blocks)
    structured = res.get("structured_content")
    if structured is not None:
        return fence(w.text(dumps(structured, indent=True)), "json")
    return f"{shown} ({w.text(item.status or 'completed')}), no content"


def content_blocks(blocks: Any, w: LineWork) -> list[str]:
    """MCP content blocks as text: text blocks as they are, other blocks as a short placeholder."""
    out = []
    for block in list_or_empty(blocks):
        if not isinstance(block, dict):
            out.append(w.text(block))
        elif block.get("type") == "text" or "text" in block:
            out.append(w.text(block.get("text")))
        elif block.get("type") == "resource_link" or "uri" in block:
            out.append(f"[{w.text(block.get('type') or 'resource')}: {w.text(block.get('uri'))}]")
        else:
            out.append(f"[{w.text(block.get('type') or 'content')}]")
    return out


def _web_search(item: _Item) -> Normalized:
    w, data, attrs = item.w, item.data, item.attrs
    query = as_text(data.get("query"))
    action = dict_or_none(data.get("action"))
    arguments: dict[str, Any] = {"query": query}
    if action is not None:
        arguments["action"] = action
    call_id = attrs.get("call_id")
    tool = tool_facts("web_search", item_id=item.id, call_id=call_id, status=item.status, arguments=arguments)
    what = w.text(query) or _describe_action(action, w)
    content = f"Web search: {what}" if what else "Web search"
    if item.phase == "started":
        return result("tool_call", "assistant", content, attrs, tool)
    if item.phase == "updated":
        return result("status", "tool", f"{content} (in progress)", attrs, tool)
    return result("tool_result", "tool", content, attrs, tool)


def _describe_action(action: dict[str, Any] | None, w: LineWork) -> str:
    if action is None:
        return ""
    kind = action.get("type")
    if kind == "search":
        return w.text(action.get("query"))
    if kind == "open_page":
        return f"open {w.text(action.get('url'))}"
    if kind == "find_in_page":
        return f'find "{w.text(action.get("pattern"))}" in {w.text(action.get("url"))}'
    return ""


def _collab_tool_call(item: _Item) -> Normalized:
    w, data, attrs = item.w, item.data, item.attrs
    tool_name = as_text(data.get("tool")) or "collab_tool_call"
    attrs["tool"] = tool_name
    prompt = data.get("prompt")
    arguments = {
        k: data[k] for k in ("prompt", "sender_thread_id", "receiver_thread_ids") if data.get(k) is not None
    }
    tool = tool_facts(tool_name, item_id=item.id, status=item.status, arguments=arguments or None)
    shown = w.text(tool_name)
    if item.phase == "started":
        text = w.text(prompt)
        return result("tool_call", "assistant", f"{shown}: {text}" if text else shown, attrs, tool)
    header = f"{shown} ({w.text(item.status or item.phase)})"
    if item.phase == "updated":
        return result("status", "tool", header, attrs, tool)
    lines = [header]
    states = dict_or_none(data.get("agents_states")) or {}
    for thread_id, state in states.items():
        if isinstance(state, dict):
            status = w.text(state.get("status"))
            message = w.text(state.get("message"))
            lines.append(f"- `{w.text(thread_id)}`: {status}" + (f": {message}" if message else ""))
        else:
            lines.append(f"- `{w.text(thread_id)}`: {w.text(state)}")
    return result("tool_result", "tool", "\n".join(lines), attrs, tool)


def _one_line(text: str, max_chars: int = 200) -> str:
    line = text.split("\n", 1)[0]
    return line if len(line) <= max_chars and line == text else line[:max_chars] + "…"


_ITEMS: Final[dict[str, Callable[[_Item], Normalized]]] = {
    "agent_message": _message,
    "assistant_message": _message,
    "reasoning": _message,
    "plan": _message,
    "todo_list": _todo_list,
    "error": _error_item,
    "command_execution": _command,
    "file_change": _file_change,
    "mcp_tool_call": _mcp_tool_call,
    "web_search": _web_search,
    "collab_tool_call": _collab_tool_call,
}
