from __future__ import annotations

import orjson

from agent_comms.core.lines import LineSplitter
from agent_comms.core.message import (
    REQUIRED_FIELDS,
    FileIdentity,
    Normalized,
    RunIdentity,
    build_body,
    encode_copies,
    fit_body,
    message_id,
)

RUN = RunIdentity("uid-1", "wf", "ns", "pod-1", run_id="run-9")
FILE = FileIdentity(".codex-impl-events.jsonl", "impl", "impl")


def body_for(content: str, attrs: dict | None = None) -> dict:  # type: ignore[type-arg]
    (line,) = LineSplitter("pod-1", max_line_bytes=1 << 20).feed(b"raw line\n")
    norm = Normalized(
        "message", "assistant", content, tool={"name": "x", "arguments": "y" * 10}, attrs=attrs or {}
    )
    return build_body(RUN, FILE, line, norm, "2026-01-01T00:00:00Z")


def test_message_id_joins_uid_source_line_digest() -> None:
    assert message_id("u", "f.log", 3, "abcd") == "u:f.log:3:abcd"


def test_copies_differ_only_in_channel_and_carry_every_required_field() -> None:
    enc = encode_copies(body_for("hi"), general=True, max_payload=1 << 20)
    run, general = orjson.loads(enc.run), orjson.loads(enc.general or b"")
    assert run["channel"] == "run" and general["channel"] == "general"
    assert {k: v for k, v in run.items() if k != "channel"} == {
        k: v for k, v in general.items() if k != "channel"
    }
    assert set(REQUIRED_FIELDS) <= set(run)
    assert run["schema"] == 1 and run["run_id"] == "run-9" and run["line"] == 1


def test_general_copy_is_left_out_by_policy() -> None:
    assert encode_copies(body_for("hi"), general=False, max_payload=1 << 20).general is None


def test_body_over_max_payload_sheds_raw_attrs_before_content() -> None:
    body = body_for("keep me", {"raw": {"text": "z" * 50_000}, "format": "exec-jsonl"})
    enc = encode_copies(body, general=True, max_payload=20_000)
    decoded = orjson.loads(enc.run)
    assert len(enc.run) <= 20_000 - 1024 + 20
    assert decoded["content"] == "keep me"
    assert "raw" not in decoded["attrs"] and decoded["attrs"]["format"] == "exec-jsonl"
    assert decoded["attrs"]["payload_fit"] == ["dropped attrs.raw"]


def test_content_is_cut_last_head_and_tail_kept() -> None:
    content = "HEAD" + "m" * 60_000 + "TAIL"
    fitted = fit_body(body_for(content), 16_000)
    assert len(orjson.dumps(fitted)) <= 16_000
    assert fitted["content"].startswith("HEAD") and fitted["content"].endswith("TAIL")
    assert fitted["attrs"]["truncated"] is True
