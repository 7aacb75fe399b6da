from __future__ import annotations

from agent_comms.core.text import cap_text


def test_short_text_is_untouched() -> None:
    assert cap_text("hello", 100) == ("hello", 0)


def test_cut_keeps_head_and_tail_within_the_cap_and_never_splits_utf8() -> None:
    text = "é" * 50_000 + "END"
    out, omitted = cap_text(text, 64 * 1024)
    assert len(out.encode("utf-8")) <= 64 * 1024
    assert out.startswith("éé") and out.endswith("END")
    assert "[truncated" in out and omitted > 0
    head, rest = out.split("\n…[truncated ", 1)
    tail = rest.split("]…\n", 1)[1]
    assert len(head.encode()) + len(tail.encode()) + omitted == len(text.encode())
