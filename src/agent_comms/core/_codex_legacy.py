"""Legacy `codex exec --json` (<= 0.41): preamble lines and `{"id", "msg"}` events.

See codex-formats.md sections 3 and 5.2.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, Final

from agent_comms.core._codex_common import SUMMARY_MAX_CHARS, FileContext, LineWork
from agent_comms.core._codex_current import content_blocks
from agent_comms.core._codex_render import (
    ARGUMENTS_MAX_BYTES,
    as_text,
    checklist,
    dict_or_none,
    dumps,
    duration_ms,
    fence,
    id_text,
    int_or_none,
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

CONFIG_KEYS: Final = (
    "workdir",
    "model",
    "provider",
    "approval",
    "sandbox",
    "reasoning effort",
    "reasoning summaries",
)
"""Keys of the config summary line (a HashMap: any order, some optional)."""

_CONFIG_FIRST: Final = ("model", "sandbox", "approval", "workdir")

OUTPUT_CHUNK_MAX_BYTES: Final = 2048
"""An `exec_command_output_delta` shows at most this much of its decoded chunk."""

_DIFF_FILE: Final = re.compile(r"^diff --git a/(\S+) b/", re.MULTILINE)
_FILE_CHANGE_KINDS: Final = ("add", "delete", "update")
_DELTA_LABELS: Final = {
    "agent_message_delta": "Agent message delta",
    "agent_reasoning_delta": "Reasoning delta",
    "agent_reasoning_raw_content_delta": "Raw reasoning delta",
}

Attrs = dict[str, Any]


def map_config(obj: dict[str, Any], w: LineWork) -> Normalized:
    """The first legacy line: a flat object of config strings."""
    attrs: Attrs = {"format": "legacy-msg", "event_type": "config_summary"}
    keys = [k for k in _CONFIG_FIRST if k in obj] + sorted(k for k in obj if k not in _CONFIG_FIRST)
    pairs = ", ".join(f"{w.text(k)}={w.text(obj[k])}" for k in keys)
    return result("status", "system", f"Codex config: {pairs}", attrs)


def map_prompt(obj: dict[str, Any], w: LineWork) -> Normalized:
    attrs: Attrs = {"format": "legacy-msg", "event_type": "prompt"}
    return result("message", "user", w.text(obj.get("prompt")), attrs)


def map_session_summary(obj: dict[str, Any], ctx: FileContext, w: LineWork) -> Normalized:
    """`{"type": "session_summary", ...}`, appended at shutdown by the last legacy versions."""
    attrs: Attrs = {"format": "legacy-msg", "event_type": "session_summary"}
    session_id = id_text(obj.get("session_id"))
    if session_id is not None and ctx.thread_id is None:
        ctx.thread_id = session_id
    details = [f"session {w.text(session_id)}"] if session_id else []
    if isinstance(obj.get("model"), str):
        details.append(f"model {w.text(obj['model'])}")
    return result(
        "status", "system", "Session summary" + (f" ({', '.join(details)})" if details else ""), attrs
    )


def map_msg(obj: dict[str, Any], msg: dict[str, Any], ctx: FileContext, w: LineWork) -> Normalized:
    """One `{"id": <submission id>, "msg": {"type": ...}}` event."""
    attrs: Attrs = {"format": "legacy-msg"}
    submission_id = id_text(obj.get("id"))
    if submission_id is not None:
        attrs["submission_id"] = submission_id
    mtype = msg.get("type")
    if not isinstance(mtype, str):
        return unrecognized("msg without a string type", attrs)
    attrs["event_type"] = mtype
    if mtype in _DELTA_LABELS:
        attrs["delta"] = True
        return result("status", "system", f"{_DELTA_LABELS[mtype]}: {w.summary(msg.get('delta'))}", attrs)
    handler = _MSG.get(mtype)
    if handler is None:
        return result("status", "system", f"Codex event {w.text(mtype)}", attrs)
    return handler(msg, ctx, attrs, w)


# -- session and task lifecycle ------------------------------------------------------------------


def _session_configured(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    session_id = id_text(msg.get("session_id"))
    details = []
    if isinstance(msg.get("model"), str):
        details.append(f"model {w.text(msg['model'])}")
    if session_id is not None:
        ctx.thread_id = session_id
        details.append(f"session {w.text(session_id)}")
    text = "Codex session configured" + (f" ({', '.join(details)})" if details else "")
    return result("status", "system", text, attrs)


def _task_started(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    window = int_or_none(msg.get("model_context_window"))
    text = "Task started" + (f" (context window {window} tokens)" if window else "")
    return result("status", "system", text, attrs)


def _task_complete(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    # The last agent message was published already, as its own agent_message line.
    last = msg.get("last_agent_message")
    if last is not None:
        attrs["last_agent_message"] = last
    return result("status", "system", "Task complete", attrs)


def _token_count(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    info = dict_or_none(msg.get("info"))
    if info is not None:
        attrs["usage"] = info
        total = dict_or_none(info.get("total_token_usage")) or {}
    elif "input_tokens" in msg or "output_tokens" in msg:  # flat, until Aug 2025
        total = {k: v for k, v in msg.items() if k != "type"}
        attrs["usage"] = total
    else:
        total = {}
    rate_limits = msg.get("rate_limits")
    if rate_limits is not None:
        attrs["rate_limits"] = rate_limits
    text = f"Tokens: {usage_summary(total)}" if total else "Token count (no usage reported)"
    return result("status", "system", text, attrs)


def _message(role: str) -> Callable[[dict[str, Any], FileContext, Attrs, LineWork], Normalized]:
    def handler(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
        return result("message", "user" if role == "user" else "assistant", w.text(msg.get("message")), attrs)

    return handler


def _reasoning(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    attrs["item_type"] = "reasoning"
    return result("message", "assistant", w.text(msg.get("text")), attrs)


def _section_break(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    attrs["delta"] = True
    return result("status", "system", "Reasoning section break", attrs)


def _simple(text: str) -> Callable[[dict[str, Any], FileContext, Attrs, LineWork], Normalized]:
    def handler(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
        return result("status", "system", text, attrs)

    return handler


def _background(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    return result("status", "system", w.text(msg.get("message")) or "Background event", attrs)


def _error(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    transient = attrs["event_type"] == "stream_error"
    attrs["transient"] = transient
    attrs["fatal"] = not transient
    return result("error", "system", w.text(msg.get("message")) or "Error", attrs)


def _turn_aborted(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    reason = w.text(msg.get("reason"))
    return result("error", "system", f"Turn aborted ({reason})" if reason else "Turn aborted", attrs)


# -- commands ------------------------------------------------------------------------------------


def _call(msg: dict[str, Any], attrs: Attrs) -> str | None:
    call_id = id_text(msg.get("call_id"))
    if call_id is not None:
        attrs["call_id"] = call_id
    return call_id


def _exec_begin(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    command = shell_join(msg.get("command"))
    attrs["command"] = command
    cwd = text_or_none(msg.get("cwd"))
    arguments: dict[str, Any] = {"command": command}
    if cwd is not None:
        attrs["cwd"] = arguments["cwd"] = cwd
    tool = tool_facts("command_execution", call_id=call_id, status="in_progress", arguments=arguments)
    return result("tool_call", "assistant", fence(f"$ {w.text(command)}", "sh"), attrs, tool)


def _decode_chunk(chunk: Any) -> bytes | None:
    """An output chunk: base64 text (newer builds) or an array of byte values (older ones)."""
    if isinstance(chunk, str):
        try:
            return base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            return None
    if isinstance(chunk, list) and all(isinstance(b, int) and 0 <= b < 256 for b in chunk):
        return bytes(chunk)
    return None


def _exec_output_delta(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    attrs["delta"] = True
    _call(msg, attrs)
    stream = text_or_none(msg.get("stream"))
    if stream is not None:
        attrs["stream"] = stream
    chunk = msg.get("chunk")
    data = _decode_chunk(chunk)
    if data is None:
        text = as_text(chunk)
    else:
        attrs["chunk_bytes"] = len(data)
        text = data.decode("utf-8", "replace")
        w.leave_quiet()  # the decoded bytes are not in the line: clean and redact them
    shown = cap_text(w.text(text), OUTPUT_CHUNK_MAX_BYTES)[0]
    header = f"Output ({w.text(stream)})" if stream else "Output"
    return result("status", "system", f"{header}:\n{fence(shown)}" if shown else f"{header}: empty", attrs)


def _exec_end(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    exit_code = int_or_none(msg.get("exit_code"))
    if exit_code is not None:
        attrs["exit_code"] = exit_code
    duration = duration_ms(msg.get("duration"))
    if duration is not None:
        attrs["duration_ms"] = duration
    status = None if exit_code is None else "completed" if exit_code == 0 else "failed"
    tool = tool_facts("command_execution", call_id=call_id, status=status, exit_code=exit_code)
    output = w.text(msg.get("aggregated_output"))
    if not output:
        parts = [w.text(msg.get("stdout")), w.text(msg.get("stderr"))]
        output = "\n".join(p for p in parts if p)
    header = f"Exit code {exit_code}" if exit_code is not None else "Command ended without an exit code"
    return result("tool_result", "tool", f"{header}\n\n{fence(output)}" if output else header, attrs, tool)


def _exec_approval(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    _call(msg, attrs)
    command = shell_join(msg.get("command"))
    attrs["command"] = command
    cwd = text_or_none(msg.get("cwd"))
    if cwd is not None:
        attrs["cwd"] = cwd
    reason = w.text(msg.get("reason"))
    text = f"Approval requested: `{w.text(command)}`" + (f" ({reason})" if reason else "")
    return result("status", "system", text, attrs)


# -- patches -------------------------------------------------------------------------------------


def _patch_changes(changes: Any, w: LineWork) -> tuple[str, list[dict[str, Any]], list[str]]:
    """`add a, update b`, `[{path, kind}]`, and the unified diffs of updates.

    A FileChange is externally tagged in old builds (`{"update": {"unified_diff": ...}}`) and
    internally tagged later (`{"type": "update", "unified_diff": ...}`).
    """
    listed: list[dict[str, Any]] = []
    diffs: list[str] = []
    for path, change in changes.items() if isinstance(changes, dict) else ():
        kind: str | None = None
        body: Any = change
        if isinstance(change, dict):
            if isinstance(change.get("type"), str):
                kind = change["type"]
            else:
                tag = next((k for k in change if k in _FILE_CHANGE_KINDS), None)
                if tag is not None:
                    kind, body = tag, change[tag]
        listed.append({"path": path, "kind": kind or "change"})
        diff = body.get("unified_diff") if isinstance(body, dict) else None
        if isinstance(diff, str) and diff:
            diffs.append(diff)
    words = [f"{w.text(c['kind'])} {w.text(c['path'])}" for c in listed[:20]]
    summary = ", ".join(words) or "no files"
    if len(listed) > len(words):
        summary += f" and {len(listed) - len(words)} more"
    return summary, listed, diffs


def _patch_begin(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    summary, listed, diffs = _patch_changes(msg.get("changes"), w)
    attrs["changes"] = listed
    if isinstance(msg.get("auto_approved"), bool):
        attrs["auto_approved"] = msg["auto_approved"]
    tool = tool_facts("file_change", call_id=call_id, status="in_progress")
    content = f"Applying patch: {summary}"
    if diffs:
        content += "\n\n" + fence("\n".join(w.text(d) for d in diffs), "diff")
    return result("tool_call", "assistant", content, attrs, tool)


def _patch_end(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    success = msg.get("success") is True
    tool = tool_facts("file_change", call_id=call_id, status="completed" if success else "failed")
    output = "\n".join(p for p in (w.text(msg.get("stdout")), w.text(msg.get("stderr"))) if p)
    header = "Patch applied" if success else "Patch failed"
    return result("tool_result", "tool", f"{header}\n\n{fence(output)}" if output else header, attrs, tool)


def _patch_approval(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    _call(msg, attrs)
    summary, listed, _ = _patch_changes(msg.get("changes"), w)
    attrs["changes"] = listed
    reason = w.text(msg.get("reason"))
    text = f"Patch approval requested: {summary}" + (f" ({reason})" if reason else "")
    return result("status", "system", text, attrs)


def _turn_diff(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    diff = as_text(msg.get("unified_diff"))
    files = _DIFF_FILE.findall(diff)
    if files:
        attrs["files"] = files
    shown = ", ".join(w.text(f) for f in files[:20]) + (
        f" and {len(files) - 20} more" if len(files) > 20 else ""
    )
    text = f"Turn diff: {len(files)} file(s) changed" + (f" ({shown})" if shown else "")
    return result("status", "system", text, attrs)


# -- MCP and web search --------------------------------------------------------------------------


def _invocation(msg: dict[str, Any], attrs: Attrs) -> tuple[str, Any]:
    invocation = dict_or_none(msg.get("invocation")) or {}
    server = as_text(invocation.get("server"))
    tool = as_text(invocation.get("tool"))
    attrs["server"] = server
    attrs["tool"] = tool
    arguments = invocation.get("arguments")
    if arguments is not None:
        attrs["arguments"] = arguments
    return f"{server}.{tool}", arguments


def _mcp_begin(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    name, arguments = _invocation(msg, attrs)
    tool = tool_facts(name, call_id=call_id, status="in_progress", arguments=arguments)
    content = f"`{w.text(name)}`"
    if arguments is not None:
        shown = cap_text(w.text(dumps(arguments, indent=True)), ARGUMENTS_MAX_BYTES)[0]
        content += "\n\n" + fence(shown, "json")
    return result("tool_call", "assistant", content, attrs, tool)


def _mcp_end(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    name, _ = _invocation(msg, attrs)
    duration = duration_ms(msg.get("duration"))
    if duration is not None:
        attrs["duration_ms"] = duration
    res = dict_or_none(msg.get("result")) or {}
    status = "failed"
    if "Ok" in res:
        ok = dict_or_none(res["Ok"]) or {}
        status = "failed" if ok.get("isError") is True else "completed"
        blocks = content_blocks(ok.get("content"), w)
        structured = ok.get("structuredContent")
        if blocks:
            content = "\n\n".join(blocks)
        elif structured is not None:
            content = fence(w.text(dumps(structured, indent=True)), "json")
        else:
            content = f"`{w.text(name)}` returned no content"
    elif "Err" in res:
        content = f"Error: {w.text(res['Err'])}"
    else:
        content = f"`{w.text(name)}` ended without a result"
    tool = tool_facts(name, call_id=call_id, status=status)
    return result("tool_result", "tool", content, attrs, tool)


def _web_begin(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    tool = tool_facts("web_search", call_id=call_id, status="in_progress")
    return result("tool_call", "assistant", "Web search", attrs, tool)


def _web_end(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    call_id = _call(msg, attrs)
    query = as_text(msg.get("query"))
    tool = tool_facts("web_search", call_id=call_id, status="completed", arguments={"query": query})
    shown = w.text(query)
    return result("tool_result", "tool", f"Web search: {shown}" if shown else "Web search", attrs, tool)


# -- plans ---------------------------------------------------------------------------------------

_PLAN_MARKS: Final = {"completed": "x", "in_progress": "~"}


def _plan_update(msg: dict[str, Any], ctx: FileContext, attrs: Attrs, w: LineWork) -> Normalized:
    plan = list_or_empty(msg.get("plan"))
    attrs["todo"] = plan
    lines = [
        "Plan updated:",
        *checklist(plan, w, text_key="step", done=lambda s: _PLAN_MARKS.get(s.get("status"), " ")),
    ]
    explanation = w.summary(msg.get("explanation"), SUMMARY_MAX_CHARS * 4)
    if explanation:
        lines += ["", explanation]
    return result("status", "assistant", "\n".join(lines), attrs)


_MSG: Final[dict[str, Callable[[dict[str, Any], FileContext, Attrs, LineWork], Normalized]]] = {
    "session_configured": _session_configured,
    "task_started": _task_started,
    "task_complete": _task_complete,
    "token_count": _token_count,
    "agent_message": _message("assistant"),
    "user_message": _message("user"),
    "agent_reasoning": _reasoning,
    "agent_reasoning_raw_content": _reasoning,
    "agent_reasoning_section_break": _section_break,
    "exec_command_begin": _exec_begin,
    "exec_command_output_delta": _exec_output_delta,
    "exec_command_end": _exec_end,
    "exec_approval_request": _exec_approval,
    "apply_patch_approval_request": _patch_approval,
    "patch_apply_begin": _patch_begin,
    "patch_apply_end": _patch_end,
    "turn_diff": _turn_diff,
    "mcp_tool_call_begin": _mcp_begin,
    "mcp_tool_call_end": _mcp_end,
    "web_search_begin": _web_begin,
    "web_search_end": _web_end,
    "plan_update": _plan_update,
    "background_event": _background,
    "stream_error": _error,
    "error": _error,
    "turn_aborted": _turn_aborted,
    "shutdown_complete": _simple("Shutdown complete"),
}
