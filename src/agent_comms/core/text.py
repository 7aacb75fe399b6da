"""Text helpers shared by normalization and payload fitting."""

from __future__ import annotations

from typing import Final

CONTENT_MAX_BYTES: Final = 64 * 1024
"""The contract's cap on `content` (DESIGN.md): 64 KiB of UTF-8."""

TAIL_SHARE: Final = 0.125
"""Share of a cut text's budget kept from its end (the end of a command's output matters)."""


def cut_marker(omitted: int) -> str:
    return f"\n…[truncated {omitted} bytes]…\n"


def cap_text(text: str, max_bytes: int = CONTENT_MAX_BYTES) -> tuple[str, int]:
    """Cut `text` to at most `max_bytes` of UTF-8, keeping its head and a short tail.

    Returns the text and the number of bytes omitted (0 when it already fit). The marker that
    joins head and tail counts toward `max_bytes`; cuts never split a UTF-8 sequence.
    """
    if len(text) * 4 <= max_bytes:  # cheap: no string of this length can exceed the cap
        return text, 0
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text, 0
    marker_room = len(cut_marker(len(raw)).encode("utf-8"))
    budget = max(max_bytes - marker_room, 0)
    tail_n = int(budget * TAIL_SHARE)
    head_n = budget - tail_n
    head = raw[:head_n].decode("utf-8", "ignore")
    tail = raw[len(raw) - tail_n :].decode("utf-8", "ignore") if tail_n else ""
    omitted = len(raw) - len(head.encode("utf-8")) - len(tail.encode("utf-8"))
    return head + cut_marker(omitted) + tail, omitted
