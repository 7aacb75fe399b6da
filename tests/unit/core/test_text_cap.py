from __future__ import annotations

import pytest

from agent_comms.core.text import TAIL_SHARE, cap_text, cut_marker


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


def _cap_by_bytes(text: str, max_bytes: int) -> tuple[str, int]:
    """The byte-wise definition of `cap_text`, which its ASCII path must reproduce exactly."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text, 0
    budget = max(max_bytes - len(cut_marker(len(raw)).encode("utf-8")), 0)
    tail_n = int(budget * TAIL_SHARE)
    head = raw[: budget - tail_n].decode("utf-8", "ignore")
    tail = raw[len(raw) - tail_n :].decode("utf-8", "ignore") if tail_n else ""
    omitted = len(raw) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return head + cut_marker(omitted) + tail, omitted


@pytest.mark.parametrize("length", [0, 1, 511, 512, 513, 2047, 2048, 2049, 5000, 70_000])
@pytest.mark.parametrize("max_bytes", [0, 1, 30, 40, 100, 2048, 64 * 1024])
def test_ascii_text_is_cut_as_its_bytes_would_be(length: int, max_bytes: int) -> None:
    text = "".join(chr(32 + (i * 7) % 95) for i in range(length))
    assert text.isascii()
    assert cap_text(text, max_bytes) == _cap_by_bytes(text, max_bytes)
