"""Normalization of Codex run files: one test per row of codex-formats.md 5.1-5.3, plus hostile input."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from agent_comms.core._codex_common import LineWork
from agent_comms.core.codex import (
    DEFAULT_GLOBS,
    FileContext,
    Normalizer,
    SourceKind,
    file_context,
    file_identity,
    identify_source,
)
from agent_comms.core.message import RunIdentity
from agent_comms.core.redact import Redactor
from tests.unit.core.codex_support import (
    EVENTS_FILE,
    LOG_FILE,
    item,
    legacy,
    lines_of,
    normalize_event,
    normalize_log,
    one_line,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "codex"
EXAMPLE = ROOT / "examples" / "codex-run"
THREAD = "019b1a2c-4d5e-7f60-8a1b-2c3d4e5f6a7b"


# -- files: kinds, stages, identity, context -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "stage"),
    [
        (".codex-implementation-events.jsonl", SourceKind.EVENTS, "implementation"),
        (".codex-research-agent.log", SourceKind.AGENT_LOG, "research"),
        ("codex-review-events.jsonl", SourceKind.EVENTS, "review"),
        (".codex-plan-review-agent.log", SourceKind.AGENT_LOG, "plan-review"),
        ("implementation-events.jsonl", SourceKind.EVENTS, "implementation"),
        ("notes.txt", SourceKind.TEXT, None),
        (".codex-implementation.log", SourceKind.TEXT, None),
    ],
)
def test_source_kind_and_stage_come_from_the_file_name(
    name: str, kind: SourceKind, stage: str | None
) -> None:
    assert identify_source(name) == (kind, stage)


def test_default_globs_match_the_two_codex_files() -> None:
    assert DEFAULT_GLOBS == (".codex-*-events.jsonl", ".codex-*-agent.log")


def test_file_identity_prefers_the_run_then_the_stage_in_the_name() -> None:
    run = RunIdentity("uid", "wf", "ns", "pod")
    assert file_identity(run, ".codex-research-events.jsonl").agent_id == "research"
    assert file_identity(run, ".codex-research-events.jsonl").stage == "research"
    assert file_identity(run, "notes.txt").agent_id == "agent"
    pinned = RunIdentity("uid", "wf", "ns", "pod", agent_id="planner", stage="plan")
    ident = file_identity(pinned, ".codex-research-events.jsonl")
    assert (ident.source, ident.agent_id, ident.stage) == (".codex-research-events.jsonl", "planner", "plan")


@pytest.mark.parametrize(
    ("name", "artifact"),
    [
        (EVENTS_FILE, "implementation-events"),
        (LOG_FILE, "implementation-agent-log"),
        ("notes.txt", "notes.txt"),
    ],
)
def test_artifact_names_match_labs_backfill(name: str, artifact: str) -> None:
    assert file_context(name).artifact == artifact


def test_context_survives_a_restart_through_its_json() -> None:
    ctx = file_context(EVENTS_FILE)
    normalize_event({"type": "thread.started", "thread_id": THREAD}, ctx=ctx)
    restored = file_context(EVENTS_FILE, saved=orjson.loads(orjson.dumps(ctx.to_json())))
    assert restored == ctx
    norm = normalize_event({"type": "turn.started"}, ctx=restored)
    assert norm.attrs["thread_id"] == THREAD


@pytest.mark.parametrize("saved", [None, [], "x", {"thread_id": 5, "artifact": None}, {"other": 1}])
def test_a_damaged_saved_context_is_ignored(saved: Any) -> None:
    assert FileContext.from_json(saved) == FileContext()


# -- 5.1 line handling ---------------------------------------------------------------------------


def test_agent_log_line_is_a_log_message_with_leading_white_space_kept() -> None:
    norm = normalize_log(b"    - indented `code`   ")
    assert (norm.kind, norm.role, norm.content) == ("log", "assistant", "    - indented `code`")
    assert norm.attrs["format"] == "text"
    assert norm.attrs["artifact"] == "implementation-agent-log"
    assert norm.tool is None


def test_blank_agent_log_line_is_an_empty_log_message() -> None:
    norm = normalize_log(b"")
    assert (norm.kind, norm.role, norm.content) == ("log", "assistant", "")
    assert norm.attrs["blank"] is True


@pytest.mark.parametrize("data", [b"", b"   \t"])
def test_blank_events_line_is_an_empty_status(data: bytes) -> None:
    norm = normalize_event(data)
    assert (norm.kind, norm.role, norm.content) == ("status", "system", "")
    assert norm.attrs["blank"] is True


def test_crlf_lines_are_parsed_and_cleaned_like_lf_lines() -> None:
    ctx = file_context(EVENTS_FILE)
    n = Normalizer(Redactor())
    lines = lines_of(
        b'{"type":"turn.started"}\r\n{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"hi"}}\r\n'
    )
    out = [n.normalize(SourceKind.EVENTS, line, ctx) for line in lines]
    assert [o.content for o in out] == ["Turn started", "hi"]
    assert normalize_log(b"text\r").content == "text"


def test_invalid_utf8_in_a_log_line_is_replaced_and_flagged() -> None:
    norm = normalize_log(b"caf\xc3 ol\xffe")
    assert norm.content == "caf\ufffd ol\ufffde"
    assert norm.attrs["invalid_utf8"] is True


def test_invalid_utf8_inside_an_event_still_maps_the_event() -> None:
    data = b'{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"bad \xff byte"}}'
    norm = normalize_event(data)
    assert (norm.kind, norm.content) == ("message", "bad \ufffd byte")
    assert norm.attrs["invalid_utf8"] is True and norm.attrs["item_id"] == "item_1"


def test_a_line_of_nul_bytes_becomes_a_blank_message_without_nul() -> None:
    norm = normalize_event(b"\x00" * 100)
    assert (norm.kind, norm.content) == ("status", "")
    assert norm.attrs["blank"] is True and norm.attrs["had_controls"] is True
    assert normalize_log(b"ab\x00\x00cd").content == "abcd"


def test_ansi_escapes_are_stripped_from_log_lines_and_from_event_text() -> None:
    norm = normalize_log(b"\x1b[1m\x1b[32mPASS\x1b[0m tests")
    assert norm.content == "PASS tests" and norm.attrs["had_ansi"] is True
    event = item(
        "completed",
        id="item_1",
        type="command_execution",
        command="npm test",
        aggregated_output="\x1b[31mFAIL\x1b[0m src/a.test.ts\n",
        exit_code=1,
        status="failed",
    )
    norm = normalize_event(event)
    assert "\x1b" not in norm.content and "FAIL src/a.test.ts" in norm.content
    assert norm.attrs["had_ansi"] is True


def test_json_wrapped_in_ansi_colour_is_still_parsed() -> None:
    norm = normalize_event(b'\x1b[2m{"type":"turn.started"}\x1b[0m')
    assert norm.content == "Turn started" and norm.attrs["had_ansi"] is True


def test_stray_text_in_the_events_file_is_a_non_json_status() -> None:
    norm = normalize_event(b"2025-10-08T10:00:00Z  INFO codex_core::codex: ToolCall: shell")
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content == "2025-10-08T10:00:00Z  INFO codex_core::codex: ToolCall: shell"
    assert norm.attrs["non_json"] is True


def test_half_a_json_object_is_a_malformed_event_line() -> None:
    norm = normalize_event(b'{"type":"item.comp')
    assert (norm.kind, norm.role) == ("error", "system")
    assert norm.content == 'Malformed event line (18 bytes): {"type":"item.comp'
    assert norm.attrs["parse_error"] is True


def test_unterminated_last_line_published_on_final_flush_is_flagged_partial() -> None:
    lines = lines_of(b'{"type":"turn.started"}\n{"type":"item.comp', final=True)
    norm = Normalizer(Redactor()).normalize(SourceKind.EVENTS, lines[-1], file_context(EVENTS_FILE))
    assert norm.kind == "error" and norm.attrs["partial_line"] is True and norm.attrs["parse_error"] is True


@pytest.mark.parametrize(
    ("data", "json_type"),
    [(b"[1, 2]", "array"), (b"42", "number"), (b'"text"', "string"), (b"null", "null"), (b"true", "boolean")],
)
def test_json_that_is_not_an_object_is_an_unrecognized_event(data: bytes, json_type: str) -> None:
    norm = normalize_event(data)
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content.startswith("Unrecognized event")
    assert norm.attrs["json_type"] == json_type


@pytest.mark.parametrize(
    "event",
    [
        {"type": "item.completed", "item": 5},
        {"type": "item.started", "item": None},
        {"id": "0", "msg": []},
        {"id": "0", "msg": {"no": "type"}},
        {"unknown": "object"},
        {"type": "item.completed", "item": {"id": "item_1"}},
    ],
)
def test_unexpected_shapes_become_a_status_that_says_why(event: dict[str, Any]) -> None:
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content.startswith(("Unrecognized event", "Codex event"))
    assert norm.attrs["raw"] == event


@pytest.mark.parametrize(
    "event",
    [
        item("completed", id=[1], type="command_execution", command={"a": 1}, exit_code="x", status=7),
        item("completed", id="item_1", type="file_change", changes="all", status=None),
        item("completed", id="item_1", type="file_change", changes=[5, {"path": None, "kind": {"x": 1}}]),
        item("completed", id="item_1", type="mcp_tool_call", server=1, tool=[], result={"content": "x"}),
        item("completed", id="item_1", type="todo_list", items=[1, "two", {"text": 3}]),
        item("completed", id="item_1", type="collab_tool_call", agents_states=[1]),
        item("completed", id="item_1", type="agent_message", text={"nested": True}),
        {"type": "turn.completed", "usage": {"input_tokens": "many"}},
        {"type": "turn.failed", "error": "just a string"},
        {"type": "request_user_input", "questions": "what?"},
        legacy("exec_command_end", exit_code=None, duration="long", stdout=5),
        legacy("patch_apply_begin", changes=["not", "a", "map"]),
        legacy("token_count", info=[], rate_limits=7),
        legacy("plan_update", plan={"step": "x"}),
        legacy("exec_command_output_delta", chunk=[300, -1]),
        legacy("mcp_tool_call_end", result={"Ok": "text"}),
    ],
)
def test_wrongly_typed_fields_never_raise(event: dict[str, Any]) -> None:
    norm = normalize_event(event)
    assert norm.kind in ("message", "tool_call", "tool_result", "status", "error", "log")
    assert isinstance(norm.content, str)
    orjson.dumps({"content": norm.content, "tool": norm.tool, "attrs": norm.attrs})  # always encodable


def test_deeply_nested_arrays_are_unrecognized_and_still_encodable() -> None:
    norm = normalize_event(b"[" * 900 + b"]" * 900)
    assert norm.content.startswith("Unrecognized event")
    orjson.dumps(norm.attrs)  # raw is bounded in depth; orjson refuses ~255 levels
    too_deep = normalize_event(b"[" * 5000 + b"]" * 5000)
    assert too_deep.kind == "error" and too_deep.attrs["parse_error"] is True


def test_deeply_nested_arguments_are_bounded_in_tool_and_attrs() -> None:
    nested = b'{"a":' * 1020 + b'"leaf"' + b"}" * 1020  # orjson reads 1024 levels but writes only ~255
    event = b'{"type":"item.started","item":{"id":"item_1","type":"mcp_tool_call","server":"s","tool":"t",'
    norm = normalize_event(event + b'"arguments":' + nested + b',"status":"in_progress"}}')
    assert norm.kind == "tool_call"
    orjson.dumps({"tool": norm.tool, "attrs": norm.attrs})


def test_random_bytes_always_give_exactly_one_message_per_line() -> None:
    rng = random.Random(20251125)
    alphabet = b'{}[]":,\\ abcdefghij0123456789\x00\x1b\r\t\xff\xc3\xa9' + bytes(range(0x20, 0x7F))
    n = Normalizer(Redactor())
    for kind in (SourceKind.EVENTS, SourceKind.AGENT_LOG):
        ctx = file_context(EVENTS_FILE)
        data = b"\n".join(
            bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 200))) for _ in range(400)
        )
        lines = lines_of(data)
        out = [n.normalize(kind, line, ctx) for line in lines]
        assert len(out) == len(lines) == data.count(b"\n") + 1
        for norm in out:
            assert "\x00" not in norm.content
            orjson.dumps({"content": norm.content, "tool": norm.tool, "attrs": norm.attrs})


def test_duplicate_id_keeps_the_first_as_item_id_and_the_second_as_call_id() -> None:
    data = (
        b'{"type":"item.completed","item":{"id":"item_5","type":"web_search","id":"ws_abc123",'
        b'"query":"q","action":{"type":"search","query":"q"}}}'
    )
    norm = normalize_event(data)
    assert norm.attrs["item_id"] == "item_5"
    assert norm.attrs["call_id"] == "ws_abc123"
    assert norm.tool is not None and (norm.tool["item_id"], norm.tool["call_id"]) == ("item_5", "ws_abc123")


def test_an_event_with_its_own_timestamp_carries_it() -> None:
    event = {"type": "thread.started", "thread_id": THREAD, "timestamp": "2026-02-11 09:14:03.512z"}
    assert normalize_event(event).timestamp == "2026-02-11T09:14:03.512Z"
    assert (
        normalize_event({"type": "turn.started", "timestamp": 1770801243512}).timestamp
        == "2026-02-11T09:14:03.512Z"
    )


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-13-45T99:00:00Z", "2026-02-11T09:14:03", 12, True, None]
)
def test_an_invalid_event_timestamp_is_ignored(value: Any) -> None:
    assert normalize_event({"type": "turn.started", "timestamp": value}).timestamp is None


def test_events_without_timestamp_leave_it_to_the_reader() -> None:
    assert normalize_event({"type": "turn.started"}).timestamp is None


# -- sizes ---------------------------------------------------------------------------------------


def test_a_5_mb_event_line_over_the_line_limit_keeps_head_and_tail_without_parsing() -> None:
    output = "START " + "x" * (5 * 1024 * 1024) + " END"
    data = orjson.dumps(
        item(
            "completed",
            id="item_9",
            type="command_execution",
            command="cat big",
            aggregated_output=output,
            exit_code=0,
            status="completed",
        )
    )
    line = one_line(data + b"\n", max_line_bytes=1 << 20)
    assert line.is_oversized
    norm = Normalizer(Redactor()).normalize(SourceKind.EVENTS, line, file_context(EVENTS_FILE))
    assert (norm.kind, norm.role) == ("error", "system")
    assert norm.content.startswith(
        f"Event line too large to parse ({len(data)} bytes): item.completed/command_execution\n"
    )
    assert "START" in norm.content and norm.content.rstrip().endswith('"status":"completed"}}')
    assert "[truncated" in norm.content
    assert len(norm.content.encode()) <= 64 * 1024
    assert norm.attrs["oversized"] is True and norm.attrs["line_bytes"] == len(data)
    assert norm.attrs["item_id"] == "item_9" and "raw" not in norm.attrs


def test_an_oversized_log_line_is_a_log_message_with_head_and_tail() -> None:
    data = b"head " + "é".encode() * (700 * 1024) + b" tail"
    line = one_line(data + b"\n", max_line_bytes=1 << 20)
    norm = Normalizer(Redactor()).normalize(SourceKind.AGENT_LOG, line, file_context(LOG_FILE))
    assert norm.kind == "log"
    assert norm.content.startswith("head éé") and norm.content.endswith("éé tail")
    assert len(norm.content.encode()) <= 64 * 1024
    assert "invalid_utf8" not in norm.attrs  # the cut never splits a character
    assert norm.attrs["oversized"] is True


def test_a_3_mb_event_under_the_limit_is_parsed_with_content_capped_and_attrs_small() -> None:
    output = "".join(f"line {i}: " + "z" * 60 + "\n" for i in range(45_000))
    data = orjson.dumps(
        item(
            "completed",
            id="item_3",
            type="command_execution",
            command="make test",
            aggregated_output=output,
            exit_code=2,
            status="failed",
        )
    )
    assert len(data) > 3 * 1024 * 1024
    line = one_line(data + b"\n", max_line_bytes=8 << 20)
    norm = Normalizer(Redactor()).normalize(SourceKind.EVENTS, line, file_context(EVENTS_FILE))
    assert norm.kind == "tool_result" and norm.content.startswith("Exit code 2 (failed)")
    assert len(norm.content.encode()) <= 64 * 1024
    assert norm.content.rstrip("`\n").endswith("line 44999: " + "z" * 60)
    assert norm.attrs["truncated"] is True and norm.attrs["content_bytes"] > 3 * 1024 * 1024
    assert len(orjson.dumps(norm.attrs)) < 8 * 1024
    assert len(norm.attrs["raw"]["item"]["aggregated_output"].encode()) <= 2048


def test_max_json_bytes_skips_parsing_of_larger_lines() -> None:
    data = orjson.dumps(item("completed", id="item_1", type="agent_message", text="a" * 200_000))
    n = Normalizer(Redactor(), max_json_bytes=100_000)
    norm = n.normalize(SourceKind.EVENTS, one_line(data + b"\n"), file_context(EVENTS_FILE))
    assert norm.kind == "error" and norm.content.startswith("Event line too large to parse")
    assert norm.attrs["oversized"] is True and len(norm.content.encode()) <= 64 * 1024


def test_a_70_kib_message_is_capped_keeping_head_and_tail() -> None:
    text = "BEGIN " + "word " * (70 * 1024 // 5) + "FINAL"
    norm = normalize_event(item("completed", id="item_1", type="agent_message", text=text))
    assert len(norm.content.encode()) <= 64 * 1024
    assert norm.content.startswith("BEGIN word") and norm.content.endswith("FINAL")
    assert norm.attrs["truncated"] is True and norm.attrs["content_bytes"] == len(text)


def test_raw_keeps_the_event_and_cuts_only_long_strings() -> None:
    event = item(
        "completed",
        id="item_1",
        type="command_execution",
        command="ls",
        aggregated_output="o" * 10_000,
        exit_code=0,
        status="completed",
    )
    raw = normalize_event(event).attrs["raw"]
    assert raw["item"]["command"] == "ls" and raw["item"]["exit_code"] == 0
    assert 1024 < len(raw["item"]["aggregated_output"]) <= 2048
    small = item("completed", id="item_2", type="agent_message", text="short")
    assert normalize_event(small).attrs["raw"] == small


# -- 5.2 current and transitional format ---------------------------------------------------------


def test_thread_started_announces_the_thread_and_makes_it_sticky() -> None:
    ctx = file_context(EVENTS_FILE)
    norm = normalize_event({"type": "thread.started", "thread_id": THREAD}, ctx=ctx)
    assert (norm.kind, norm.role, norm.content) == ("status", "system", f"Codex thread started ({THREAD})")
    assert norm.attrs["event_type"] == "thread.started" and norm.attrs["format"] == "exec-jsonl"
    later = normalize_event({"type": "turn.started"}, ctx=ctx)
    assert later.attrs["thread_id"] == THREAD


def test_session_created_is_the_transitional_thread_start() -> None:
    ctx = file_context(EVENTS_FILE)
    norm = normalize_event({"type": "session.created", "session_id": "0199a7c4"}, ctx=ctx)
    assert (norm.kind, norm.content) == ("status", "Codex thread started (0199a7c4)")
    assert norm.attrs["format"] == "exec-transitional" and ctx.thread_id == "0199a7c4"


def test_turn_started() -> None:
    norm = normalize_event({"type": "turn.started"})
    assert (norm.kind, norm.role, norm.content) == ("status", "system", "Turn started")


def test_turn_completed_reports_token_usage() -> None:
    usage = {
        "input_tokens": 118230,
        "cached_input_tokens": 101376,
        "cache_write_input_tokens": 9216,
        "output_tokens": 2411,
        "reasoning_output_tokens": 1536,
    }
    norm = normalize_event({"type": "turn.completed", "usage": usage})
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content == "Turn completed. Tokens: input 118230 (cached 101376), output 2411, reasoning 1536"
    assert norm.attrs["usage"] == usage
    plain = normalize_event(
        {"type": "turn.completed", "usage": {"input_tokens": 5, "cached_input_tokens": 0, "output_tokens": 7}}
    )
    assert plain.content == "Turn completed. Tokens: input 5 (cached 0), output 7"


@pytest.mark.parametrize(
    ("etype", "label"), [("turn.failed", "Turn"), ("thread.failed", "Thread"), ("item.failed", "Item")]
)
def test_any_failed_event_is_a_fatal_error(etype: str, label: str) -> None:
    norm = normalize_event({"type": etype, "error": {"message": "401 Unauthorized"}})
    assert (norm.kind, norm.role, norm.content) == ("error", "system", f"{label} failed: 401 Unauthorized")
    assert norm.attrs["fatal"] is True


@pytest.mark.parametrize(
    ("event", "transient"),
    [
        (
            {
                "type": "error",
                "message": "Reconnecting... 2/5 (stream disconnected before completion: timeout)",
            },
            True,
        ),
        ({"type": "error", "message": "unexpected status 401 Unauthorized"}, False),
        ({"type": "stream_error", "message": "stream disconnected; retrying"}, True),
    ],
)
def test_top_level_errors_say_whether_they_are_transient(event: dict[str, Any], transient: bool) -> None:
    norm = normalize_event(event)
    assert (norm.kind, norm.role, norm.content) == ("error", "system", event["message"])
    assert norm.attrs["transient"] is transient and norm.attrs["fatal"] is (not transient)


@pytest.mark.parametrize(
    ("fields", "fmt"),
    [
        ({"type": "agent_message"}, "exec-jsonl"),
        ({"item_type": "assistant_message"}, "exec-transitional"),
        ({"type": "assistant_message"}, "exec-transitional"),
        ({"item_type": "agent_message"}, "exec-transitional"),
    ],
)
def test_agent_messages_are_assistant_messages_with_their_markdown(fields: dict[str, str], fmt: str) -> None:
    text = "## Summary\n\n- fixed `x`\n- added tests"
    norm = normalize_event(item("completed", id="item_3", text=text, **fields))
    assert (norm.kind, norm.role, norm.content) == ("message", "assistant", text)
    assert (
        norm.attrs["item_id"] == "item_3"
        and norm.attrs["phase"] == "completed"
        and norm.attrs["format"] == fmt
    )


@pytest.mark.parametrize("item_type", ["reasoning", "plan"])
def test_reasoning_and_plan_items_are_assistant_messages_tagged_with_their_type(item_type: str) -> None:
    norm = normalize_event(item("completed", id="item_1", type=item_type, text="**Title**\n\nbody"))
    assert (norm.kind, norm.role, norm.content) == ("message", "assistant", "**Title**\n\nbody")
    assert norm.attrs["item_type"] == item_type


@pytest.mark.parametrize("phase", ["started", "updated", "completed"])
def test_todo_list_is_a_checklist_status(phase: str) -> None:
    items = [{"text": "Read code", "completed": True}, {"text": "Write tests", "completed": False}]
    norm = normalize_event(item(phase, id="item_2", type="todo_list", items=items))
    assert (norm.kind, norm.role) == ("status", "assistant")
    assert norm.content == f"Plan ({phase}):\n- [x] Read code\n- [ ] Write tests"
    assert norm.attrs["todo"] == items


def test_error_item_is_a_non_fatal_error() -> None:
    norm = normalize_event(item("completed", id="item_0", type="error", message="model rerouted: a -> b"))
    assert (norm.kind, norm.role, norm.content) == ("error", "system", "model rerouted: a -> b")
    assert norm.attrs["fatal"] is False


def test_command_started_is_a_tool_call_with_the_command_fenced() -> None:
    event = item(
        "started",
        id="item_4",
        type="command_execution",
        command="/bin/bash -lc 'rg -n foo'",
        aggregated_output="",
        exit_code=None,
        status="in_progress",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("tool_call", "assistant")
    assert norm.content == "```sh\n$ /bin/bash -lc 'rg -n foo'\n```"
    assert norm.tool == {
        "name": "command_execution",
        "item_id": "item_4",
        "status": "in_progress",
        "arguments": {"command": "/bin/bash -lc 'rg -n foo'"},
    }
    assert norm.attrs["command"] == "/bin/bash -lc 'rg -n foo'" and "exit_code" not in norm.attrs


def test_transitional_zero_exit_code_placeholder_is_not_an_exit_code() -> None:
    event = item(
        "started",
        id="itm_1",
        item_type="command_execution",
        command="bash -lc ls",
        aggregated_output="",
        exit_code=0,
        status="in_progress",
    )
    norm = normalize_event(event)
    assert norm.kind == "tool_call" and norm.tool is not None and "exit_code" not in norm.tool


def test_command_completed_is_a_tool_result_with_exit_code_and_output() -> None:
    event = item(
        "completed",
        id="item_5",
        type="command_execution",
        command="bun test",
        aggregated_output="1 fail\n3 pass\n",
        exit_code=1,
        status="failed",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("tool_result", "tool")
    assert norm.content == "Exit code 1 (failed)\n\n```\n1 fail\n3 pass\n```"
    assert norm.tool is not None and norm.tool["exit_code"] == 1 and norm.tool["status"] == "failed"
    assert norm.attrs["exit_code"] == 1 and norm.attrs["item_status"] == "failed"


def test_command_output_with_backticks_gets_a_longer_fence() -> None:
    event = item(
        "completed",
        id="item_5",
        type="command_execution",
        command="cat README.md",
        aggregated_output="```py\nprint(1)\n```\n",
        exit_code=0,
        status="completed",
    )
    assert normalize_event(event).content == "Exit code 0 (completed)\n\n````\n```py\nprint(1)\n```\n````"


def test_command_without_exit_code_says_so() -> None:
    event = item(
        "completed",
        id="item_6",
        type="command_execution",
        command="rm -rf /",
        aggregated_output="",
        exit_code=None,
        status="declined",
    )
    assert normalize_event(event).content == "Command ended without an exit code (declined)"


def test_command_updated_is_a_short_progress_status() -> None:
    event = item(
        "updated",
        id="item_4",
        type="command_execution",
        command="npm test",
        aggregated_output="...",
        exit_code=None,
        status="in_progress",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role, norm.content) == ("status", "tool", "Command running: `npm test`")


CHANGES = [
    {"path": "src/a.ts", "kind": "update", "diff": "@@ -1 +1 @@\n-old\n+new\n"},
    {"path": "src/b.ts", "kind": "add", "diff": "@@ -0,0 +1 @@\n+b\n"},
]


def test_file_change_started_is_a_tool_call_listing_the_files() -> None:
    norm = normalize_event(
        item("started", id="item_7", type="file_change", changes=CHANGES, status="in_progress")
    )
    assert (norm.kind, norm.role, norm.content) == (
        "tool_call",
        "assistant",
        "Applying patch: update src/a.ts, add src/b.ts",
    )
    assert norm.tool == {"name": "file_change", "item_id": "item_7", "status": "in_progress"}


def test_file_change_updated_is_a_patch_updated_status() -> None:
    norm = normalize_event(
        item("updated", id="item_7", type="file_change", changes=CHANGES[:1], status="in_progress")
    )
    assert (norm.kind, norm.role, norm.content) == ("status", "tool", "Patch updated: update src/a.ts")


def test_file_change_completed_lists_files_with_diffs_and_keeps_changes_without_diffs() -> None:
    norm = normalize_event(
        item("completed", id="item_7", type="file_change", changes=CHANGES, status="completed")
    )
    assert (norm.kind, norm.role) == ("tool_result", "tool")
    assert norm.content.startswith(
        "Files changed (completed): update src/a.ts, add src/b.ts\n\n```diff\n@@ -1 +1 @@"
    )
    assert norm.attrs["changes"] == [
        {"path": "src/a.ts", "kind": "update"},
        {"path": "src/b.ts", "kind": "add"},
    ]


def test_mcp_call_started_names_the_tool_and_shows_its_arguments() -> None:
    event = item(
        "started",
        id="item_8",
        type="mcp_tool_call",
        server="github",
        tool="get_issue",
        arguments={"issue_number": 42},
        result=None,
        error=None,
        status="in_progress",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("tool_call", "assistant")
    assert norm.content == '`github.get_issue`\n\n```json\n{\n  "issue_number": 42\n}\n```'
    assert norm.tool == {
        "name": "github.get_issue",
        "item_id": "item_8",
        "status": "in_progress",
        "arguments": {"issue_number": 42},
    }
    assert (norm.attrs["server"], norm.attrs["tool"], norm.attrs["arguments"]) == (
        "github",
        "get_issue",
        {"issue_number": 42},
    )


def test_mcp_call_arguments_are_capped() -> None:
    event = item(
        "started",
        id="item_8",
        type="mcp_tool_call",
        server="fs",
        tool="write",
        arguments={"content": "x" * 50_000},
        status="in_progress",
    )
    norm = normalize_event(event)
    assert norm.tool is not None and len(orjson.dumps(norm.tool["arguments"])) <= 2100
    assert len(orjson.dumps(norm.attrs["arguments"])) <= 2100


def test_mcp_call_completed_joins_its_text_blocks() -> None:
    result = {
        "content": [
            {"type": "text", "text": "first"},
            {"type": "image", "data": "..."},
            {"type": "text", "text": "second"},
        ],
        "structured_content": None,
    }
    event = item(
        "completed",
        id="item_8",
        type="mcp_tool_call",
        server="docs",
        tool="search",
        arguments=None,
        result=result,
        error=None,
        status="completed",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role, norm.content) == ("tool_result", "tool", "first\n\n[image]\n\nsecond")
    assert norm.tool == {"name": "docs.search", "item_id": "item_8", "status": "completed"}


def test_mcp_call_failed_shows_the_error() -> None:
    event = item(
        "completed",
        id="item_9",
        type="mcp_tool_call",
        server="github",
        tool="create_pr",
        arguments=None,
        result=None,
        error={"message": "403 Forbidden"},
        status="failed",
    )
    assert normalize_event(event).content == "Error: 403 Forbidden"


@pytest.mark.parametrize("phase", ["started", "completed"])
def test_web_search_shows_its_query(phase: str) -> None:
    norm = normalize_event(item(phase, id="item_11", type="web_search", query="bun mock random"))
    assert norm.content == "Web search: bun mock random"
    assert (norm.kind, norm.role) == (
        ("tool_call", "assistant") if phase == "started" else ("tool_result", "tool")
    )
    assert norm.tool is not None and norm.tool["arguments"] == {"query": "bun mock random"}


def test_web_search_without_query_describes_its_action() -> None:
    event = item(
        "completed",
        id="item_10",
        type="web_search",
        query="",
        action={"type": "open_page", "url": "https://x.test/a"},
    )
    assert normalize_event(event).content == "Web search: open https://x.test/a"
    started = item("started", id="item_10", type="web_search", query="", action={"type": "other"})
    assert normalize_event(started).content == "Web search"


def test_collab_tool_call_started_shows_the_tool_and_prompt() -> None:
    event = item(
        "started",
        id="item_12",
        type="collab_tool_call",
        tool="spawn_agent",
        prompt="Review retry.ts",
        sender_thread_id=THREAD,
        receiver_thread_ids=[],
        agents_states={},
        status="in_progress",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role, norm.content) == ("tool_call", "assistant", "spawn_agent: Review retry.ts")
    assert norm.tool is not None and norm.tool["name"] == "spawn_agent"


def test_collab_tool_call_completed_lists_agent_states() -> None:
    event = item(
        "completed",
        id="item_12",
        type="collab_tool_call",
        tool="wait",
        prompt=None,
        agents_states={"t-1": {"status": "completed", "message": "done"}, "t-2": {"status": "running"}},
        status="completed",
    )
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("tool_result", "tool")
    assert norm.content == "wait (completed)\n- `t-1`: completed: done\n- `t-2`: running"


def test_plan_delta_is_a_delta_status() -> None:
    norm = normalize_event({"type": "item.plan.delta", "item_id": "item_2", "delta": "1. Read the code\n"})
    assert (norm.kind, norm.role, norm.content) == ("status", "system", "Plan delta: 1. Read the code")
    assert norm.attrs["delta"] is True and norm.attrs["item_id"] == "item_2"


def test_request_user_input_lists_the_questions() -> None:
    event = {
        "type": "request_user_input",
        "id": "req_1",
        "call_id": "call_9",
        "questions": [
            {
                "id": "q1",
                "header": "Jitter",
                "question": "Which strategy?",
                "isOther": False,
                "isSecret": False,
                "options": [{"label": "full", "description": "random(0, d)"}, {"label": "equal"}],
            }
        ],
    }
    norm = normalize_event(event)
    assert (norm.kind, norm.role) == ("message", "assistant")
    assert norm.content == "Codex asks:\n- **Jitter**: Which strategy?\n  - full: random(0, d)\n  - equal"
    assert norm.attrs["call_id"] == "call_9"


def test_unknown_type_and_unknown_item_type_are_named() -> None:
    assert normalize_event({"type": "thread.compacted"}).content == "Codex event thread.compacted"
    norm = normalize_event(item("completed", id="item_14", type="image_generation"))
    assert (norm.kind, norm.role, norm.content) == (
        "status",
        "system",
        "Codex event item.completed/image_generation",
    )


# -- 5.2 legacy format ---------------------------------------------------------------------------


def test_legacy_config_summary_line() -> None:
    line = {
        "sandbox": "danger-full-access",
        "reasoning summaries": "auto",
        "approval": "never",
        "provider": "openai",
        "reasoning effort": "medium",
        "workdir": "/code",
        "model": "gpt-5",
    }
    norm = normalize_event(line)
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content.startswith(
        "Codex config: model=gpt-5, sandbox=danger-full-access, approval=never, workdir=/code"
    )
    assert norm.attrs["format"] == "legacy-msg"


def test_legacy_prompt_and_user_message_are_user_messages() -> None:
    assert (normalize_event({"prompt": "Fix it"}).kind, normalize_event({"prompt": "Fix it"}).role) == (
        "message",
        "user",
    )
    norm = normalize_event(legacy("user_message", message="Fix it", kind="plain"))
    assert (norm.kind, norm.role, norm.content) == ("message", "user", "Fix it")


def test_legacy_agent_message() -> None:
    norm = normalize_event(legacy("agent_message", message="Done."))
    assert (norm.kind, norm.role, norm.content) == ("message", "assistant", "Done.")
    assert norm.attrs["submission_id"] == "0" and norm.attrs["event_type"] == "agent_message"


@pytest.mark.parametrize("msg_type", ["agent_reasoning", "agent_reasoning_raw_content"])
def test_legacy_reasoning_is_an_assistant_message_tagged_reasoning(msg_type: str) -> None:
    norm = normalize_event(legacy(msg_type, text="**Plan**"))
    assert (norm.kind, norm.role, norm.content) == ("message", "assistant", "**Plan**")
    assert norm.attrs["item_type"] == "reasoning"


def test_legacy_exec_begin_shell_joins_the_argv() -> None:
    norm = normalize_event(
        legacy("exec_command_begin", call_id="c1", command=["bash", "-lc", "ls -1"], cwd="/code")
    )
    assert (norm.kind, norm.role, norm.content) == (
        "tool_call",
        "assistant",
        "```sh\n$ bash -lc 'ls -1'\n```",
    )
    assert (
        norm.attrs["call_id"] == "c1"
        and norm.attrs["cwd"] == "/code"
        and norm.attrs["command"] == "bash -lc 'ls -1'"
    )
    assert norm.tool is not None and norm.tool["call_id"] == "c1"


def test_legacy_exec_end_prefers_aggregated_output() -> None:
    norm = normalize_event(
        legacy(
            "exec_command_end",
            call_id="c1",
            stdout="a\n",
            stderr="b\n",
            aggregated_output="a\nb\n",
            exit_code=0,
            duration={"secs": 1, "nanos": 250_000_000},
        )
    )
    assert (norm.kind, norm.role, norm.content) == ("tool_result", "tool", "Exit code 0\n\n```\na\nb\n```")
    assert norm.attrs["duration_ms"] == 1250 and norm.attrs["exit_code"] == 0


def test_legacy_exec_end_falls_back_to_stdout_and_stderr() -> None:
    norm = normalize_event(
        legacy(
            "exec_command_end",
            call_id="c1",
            stdout="out\n",
            stderr="err\n",
            exit_code=1,
            duration={"secs": 0, "nanos": 0},
        )
    )
    assert norm.content == "Exit code 1\n\n```\nout\nerr\n```"
    assert norm.tool is not None and (norm.tool["status"], norm.tool["exit_code"]) == ("failed", 1)


@pytest.mark.parametrize(
    "changes",
    [
        {
            "src/a.ts": {"update": {"unified_diff": "@@\n-a\n+b\n", "move_path": None}},
            "src/b.ts": {"add": {"content": "b"}},
        },
        {
            "src/a.ts": {"type": "update", "unified_diff": "@@\n-a\n+b\n", "move_path": None},
            "src/b.ts": {"type": "add", "content": "b"},
        },
    ],
    ids=["externally-tagged", "internally-tagged"],
)
def test_legacy_patch_begin_reads_both_file_change_encodings(changes: dict[str, Any]) -> None:
    norm = normalize_event(legacy("patch_apply_begin", call_id="p1", auto_approved=True, changes=changes))
    assert (norm.kind, norm.role) == ("tool_call", "assistant")
    assert norm.content.startswith("Applying patch: update src/a.ts, add src/b.ts")
    assert norm.attrs["changes"] == [
        {"path": "src/a.ts", "kind": "update"},
        {"path": "src/b.ts", "kind": "add"},
    ]


@pytest.mark.parametrize(("success", "header"), [(True, "Patch applied"), (False, "Patch failed")])
def test_legacy_patch_end(success: bool, header: str) -> None:
    norm = normalize_event(
        legacy("patch_apply_end", call_id="p1", stdout="M a\n", stderr="", success=success)
    )
    assert (norm.kind, norm.role, norm.content) == ("tool_result", "tool", f"{header}\n\n```\nM a\n```")


def test_legacy_mcp_begin_and_end() -> None:
    invocation = {"server": "docs", "tool": "lookup", "arguments": {"symbol": "x"}}
    begin = normalize_event(legacy("mcp_tool_call_begin", call_id="m1", invocation=invocation))
    assert (begin.kind, begin.role) == ("tool_call", "assistant")
    assert begin.content.startswith("`docs.lookup`")
    ok = {"Ok": {"content": [{"type": "text", "text": "found"}], "isError": False}}
    end = normalize_event(
        legacy(
            "mcp_tool_call_end",
            call_id="m1",
            invocation=invocation,
            duration={"secs": 0, "nanos": 5_000_000},
            result=ok,
        )
    )
    assert (end.kind, end.role, end.content) == ("tool_result", "tool", "found")
    assert end.attrs["duration_ms"] == 5
    err = normalize_event(
        legacy("mcp_tool_call_end", call_id="m1", invocation=invocation, result={"Err": "timed out"})
    )
    assert err.content == "Error: timed out" and err.tool is not None and err.tool["status"] == "failed"


def test_legacy_web_search_begin_and_end() -> None:
    begin = normalize_event(legacy("web_search_begin", call_id="w1"))
    assert (begin.kind, begin.role, begin.content) == ("tool_call", "assistant", "Web search")
    end = normalize_event(legacy("web_search_end", call_id="w1", query="getMonth zero based"))
    assert (end.kind, end.role, end.content) == ("tool_result", "tool", "Web search: getMonth zero based")


def test_legacy_plan_update_is_a_checklist_with_explanation() -> None:
    plan = [
        {"step": "Reproduce", "status": "completed"},
        {"step": "Fix", "status": "in_progress"},
        {"step": "Test", "status": "pending"},
    ]
    norm = normalize_event(legacy("plan_update", explanation="Small fix.", plan=plan))
    assert (norm.kind, norm.role) == ("status", "assistant")
    assert norm.content == "Plan updated:\n- [x] Reproduce\n- [~] Fix\n- [ ] Test\n\nSmall fix."


@pytest.mark.parametrize(
    ("msg", "content", "transient"),
    [
        (legacy("error", message="boom"), "boom", False),
        (legacy("stream_error", message="retrying 1/5"), "retrying 1/5", True),
        (legacy("turn_aborted", reason="interrupted"), "Turn aborted (interrupted)", None),
    ],
)
def test_legacy_errors_and_aborts_are_errors(
    msg: dict[str, Any], content: str, transient: bool | None
) -> None:
    norm = normalize_event(msg)
    assert (norm.kind, norm.role, norm.content) == ("error", "system", content)
    assert norm.attrs.get("transient") is transient


@pytest.mark.parametrize(
    ("msg", "content"),
    [
        (
            legacy(
                "session_configured",
                submission="",
                session_id="5973b6c0",
                model="gpt-5",
                history_log_id=1,
                history_entry_count=2,
            ),
            "Codex session configured (model gpt-5, session 5973b6c0)",
        ),
        (legacy("task_started", model_context_window=272000), "Task started (context window 272000 tokens)"),
        (legacy("task_started"), "Task started"),
        (legacy("task_complete", last_agent_message="All done, long text"), "Task complete"),
        (
            legacy(
                "token_count",
                input_tokens=10,
                cached_input_tokens=4,
                output_tokens=3,
                reasoning_output_tokens=2,
                total_tokens=13,
            ),
            "Tokens: input 10 (cached 4), output 3, reasoning 2",
        ),
        (
            legacy(
                "token_count",
                info={
                    "total_token_usage": {"input_tokens": 20, "cached_input_tokens": 8, "output_tokens": 6},
                    "last_token_usage": {},
                    "model_context_window": 1,
                },
                rate_limits=None,
            ),
            "Tokens: input 20 (cached 8), output 6",
        ),
        (legacy("token_count", info=None, rate_limits=None), "Token count (no usage reported)"),
        (
            legacy("turn_diff", unified_diff="diff --git a/x.ts b/x.ts\n+1\ndiff --git a/y.ts b/y.ts\n"),
            "Turn diff: 2 file(s) changed (x.ts, y.ts)",
        ),
        (legacy("background_event", message="Loaded 2 MCP servers"), "Loaded 2 MCP servers"),
        (
            legacy(
                "exec_approval_request", call_id="a1", command=["git", "push"], cwd="/code", reason="network"
            ),
            "Approval requested: `git push` (network)",
        ),
        (
            legacy("apply_patch_approval_request", call_id="a2", changes={"a.ts": {"type": "delete"}}),
            "Patch approval requested: delete a.ts",
        ),
        (legacy("shutdown_complete"), "Shutdown complete"),
        (legacy("get_history_entry_response", offset=0), "Codex event get_history_entry_response"),
        (
            {
                "type": "session_summary",
                "session_id": "5973b6c0",
                "rollout_path": "/r.jsonl",
                "model": "gpt-5",
            },
            "Session summary (session 5973b6c0, model gpt-5)",
        ),
    ],
)
def test_legacy_lifecycle_events_are_short_status_summaries(msg: dict[str, Any], content: str) -> None:
    norm = normalize_event(msg)
    assert (norm.kind, norm.role, norm.content) == ("status", "system", content)


def test_legacy_task_complete_keeps_the_last_message_in_attrs_only() -> None:
    norm = normalize_event(legacy("task_complete", last_agent_message="The final answer."))
    assert "The final answer" not in norm.content
    assert norm.attrs["last_agent_message"] == "The final answer."


def test_legacy_token_count_keeps_usage_and_rate_limits() -> None:
    info = {
        "total_token_usage": {"input_tokens": 1},
        "last_token_usage": {"input_tokens": 1},
        "model_context_window": 9,
    }
    limits = {
        "primary": {"used_percent": 12.0, "window_minutes": 300, "resets_in_seconds": 60},
        "secondary": None,
    }
    norm = normalize_event(legacy("token_count", info=info, rate_limits=limits))
    assert norm.attrs["usage"] == info and norm.attrs["rate_limits"] == limits


def test_legacy_session_configured_makes_the_session_id_sticky() -> None:
    ctx = file_context(EVENTS_FILE)
    normalize_event(
        legacy("session_configured", submission="", session_id="5973b6c0", model="gpt-5"), ctx=ctx
    )
    assert normalize_event(legacy("task_started"), ctx=ctx).attrs["thread_id"] == "5973b6c0"


@pytest.mark.parametrize(
    ("msg_type", "label"),
    [
        ("agent_message_delta", "Agent message delta"),
        ("agent_reasoning_delta", "Reasoning delta"),
        ("agent_reasoning_raw_content_delta", "Raw reasoning delta"),
    ],
)
def test_legacy_text_deltas_are_delta_statuses(msg_type: str, label: str) -> None:
    norm = normalize_event(legacy(msg_type, delta="Fix"))
    assert (norm.kind, norm.role, norm.content) == ("status", "system", f"{label}: Fix")
    assert norm.attrs["delta"] is True


def test_legacy_reasoning_section_break_is_a_delta_status() -> None:
    norm = normalize_event(legacy("agent_reasoning_section_break"))
    assert (norm.kind, norm.role, norm.attrs["delta"]) == ("status", "system", True)


@pytest.mark.parametrize(
    "chunk",
    [base64.b64encode(b"FAIL a.test.ts\n").decode(), list(b"FAIL a.test.ts\n")],
    ids=["base64", "byte-array"],
)
def test_legacy_output_delta_shows_the_decoded_chunk(chunk: Any) -> None:
    norm = normalize_event(legacy("exec_command_output_delta", call_id="c1", stream="stdout", chunk=chunk))
    assert (norm.kind, norm.role) == ("status", "system")
    assert norm.content == "Output (stdout):\n```\nFAIL a.test.ts\n```"
    assert norm.attrs["delta"] is True and norm.attrs["chunk_bytes"] == 15 and norm.attrs["call_id"] == "c1"


def test_legacy_output_delta_as_byte_array_is_cut_in_raw() -> None:
    norm = normalize_event(
        legacy("exec_command_output_delta", call_id="c1", stream="stdout", chunk=list(b"y" * 5000))
    )
    assert len(norm.attrs["raw"]["msg"]["chunk"]) <= 257


# -- whole files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        FIXTURES / "current-events.jsonl",
        FIXTURES / "transitional-events.jsonl",
        FIXTURES / "legacy-events.jsonl",
        EXAMPLE / ".codex-implementation-events.jsonl",
        EXAMPLE / ".codex-implementation-agent.log",
    ],
    ids=lambda p: p.name,
)
def test_every_physical_line_of_a_fixture_is_exactly_one_message(path: Path) -> None:
    data = path.read_bytes()
    kind, _ = identify_source(path.name)
    kind = SourceKind.EVENTS if path.suffix == ".jsonl" else kind
    ctx = file_context(path.name)
    n = Normalizer(Redactor())
    lines = lines_of(data)
    out = [n.normalize(kind, line, ctx) for line in lines]
    assert len(out) == len(lines) == data.count(b"\n")
    for norm in out:
        assert "normalize_error" not in norm.attrs and "unrecognized" not in norm.attrs
        orjson.dumps({"content": norm.content, "tool": norm.tool, "attrs": norm.attrs})


def test_the_example_run_reads_like_a_run() -> None:
    ctx = file_context(".codex-implementation-events.jsonl")
    n = Normalizer(Redactor())
    out = [
        n.normalize(SourceKind.EVENTS, line, ctx)
        for line in lines_of((EXAMPLE / ".codex-implementation-events.jsonl").read_bytes())
    ]
    kinds = {o.kind for o in out}
    assert kinds == {"status", "message", "tool_call", "tool_result"}
    assert out[0].content.startswith("Codex thread started") and out[-1].content.startswith("Turn completed")
    assert any(o.kind == "tool_result" and o.content.startswith("Exit code 1 (failed)") for o in out)
    assert all(o.attrs["thread_id"] == "019a4f3e-7c2b-7d31-9f0a-5b8e2c4d6a17" for o in out)
    messages = [o.content for o in out if o.kind == "message" and o.attrs.get("item_type") == "agent_message"]
    log_lines = (EXAMPLE / ".codex-implementation-agent.log").read_text().split("\n")[:-1]
    assert "\n".join(messages).split("\n") == log_lines


def test_a_line_over_max_json_bytes_that_fits_the_content_cap_is_shown_whole_and_not_marked_cut() -> None:
    data = orjson.dumps(item("completed", id="item_1", type="agent_message", text="b" * 2000))
    n = Normalizer(Redactor(), max_json_bytes=1000)
    norm = n.normalize(SourceKind.EVENTS, one_line(data + b"\n"), file_context(EVENTS_FILE))
    assert (
        norm.content
        == f"Event line too large to parse ({len(data)} bytes): item.completed/agent_message\n"
        + (data.decode())
    )
    assert norm.attrs["oversized"] is True and "truncated" not in norm.attrs


def test_a_secret_shared_by_content_and_raw_is_counted_once() -> None:
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0" * 2
    norm = normalize_event(item("completed", id="item_2", type="agent_message", text=f"use {token}"))
    assert norm.content == "use [REDACTED:github-token]"
    assert norm.attrs["raw"]["item"]["text"] == "use [REDACTED:github-token]"
    assert norm.attrs["redacted"] == 1


def test_text_made_for_one_piece_of_content_never_gets_the_redaction_of_another() -> None:
    # The memo is keyed by string identity: a string made for `text()` and freed could hand its id,
    # and with it its redaction, to the next one (this returned "token [REDACTED...]" twice).
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
    for _ in range(20):
        w = LineWork(Redactor())
        assert w.text("".join(["token ", token])) == "token [REDACTED:github-token]"
        assert w.text("".join(["plain ", "x" * len(token)])) == "plain " + "x" * len(token)
