"""LineSplitter: physical lines, identity digests and bounded memory, however the bytes arrive."""

from __future__ import annotations

import hashlib

import pytest

from agent_comms.core.lines import OVERSIZED_HEAD_BYTES, OVERSIZED_TAIL_BYTES, LineSplitter, line_digest

STEP = "pod-7"


def split(data: bytes, *, chunk: int | None = None, max_line_bytes: int = 1 << 20, final: bool = True):  # type: ignore[no-untyped-def]
    s = LineSplitter(STEP, max_line_bytes=max_line_bytes)
    out = []
    chunk = chunk or max(len(data), 1)
    for i in range(0, len(data), chunk):
        out += s.feed(data[i : i + chunk])
    if final:
        last = s.finish()
        if last is not None:
            out.append(last)
    return out, s


def test_digest_is_sha256_over_step_nul_and_line_bytes() -> None:
    want = hashlib.sha256(b"pod-7\x00hello").hexdigest()[:16]
    assert line_digest(STEP, b"hello") == want
    (line,), _ = split(b"hello\n")
    assert line.digest == want


def test_blank_lines_are_lines_and_numbers_are_one_based() -> None:
    lines, s = split(b"a\n\n\nb\n")
    assert [(ln.number, ln.data) for ln in lines] == [(1, b"a"), (2, b""), (3, b""), (4, b"b")]
    assert s.offset == 6 and s.line == 4


def test_crlf_strips_one_cr_and_a_lone_cr_does_not_end_a_line() -> None:
    lines, _ = split(b"one\r\ntwo\rstill two\n\r\r\n")
    assert [ln.data for ln in lines] == [b"one", b"two\rstill two", b"\r"]
    assert lines[0].digest == line_digest(STEP, b"one")


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_lines(chunk: int) -> None:
    data = b"first\r\nsecond line\n\nthird\r\r\nlast without newline"
    whole, _ = split(data)
    pieces, _ = split(data, chunk=chunk)
    assert [(ln.number, ln.offset, ln.end, ln.data, ln.digest, ln.partial) for ln in pieces] == [
        (ln.number, ln.offset, ln.end, ln.data, ln.digest, ln.partial) for ln in whole
    ]


def test_unterminated_line_is_held_until_finish() -> None:
    lines, s = split(b"done\nhalf", final=False)
    assert [ln.data for ln in lines] == [b"done"]
    assert s.pending_bytes == 4 and s.offset == 5
    last = s.finish()
    assert last is not None and last.partial and last.data == b"half" and last.end == 9
    assert s.finish() is None


def test_resume_continues_numbering_and_offsets() -> None:
    s = LineSplitter(STEP, max_line_bytes=1 << 20, start_offset=100, start_line=7)
    (line,) = s.feed(b"next\n")
    assert (line.number, line.offset, line.end) == (8, 100, 105)


@pytest.mark.parametrize("chunk", [None, 4096])
def test_oversized_line_keeps_head_and_tail_and_digests_every_byte(chunk: int | None) -> None:
    body = bytes(b for b in range(256) if b not in b"\r\n") * 20_400  # ~5 MB, no line break
    lines, _ = split(body + b"\r\nafter\n", chunk=chunk, max_line_bytes=1 << 20)
    big, after = lines
    assert big.is_oversized and big.size == len(body)
    assert big.data == body[:OVERSIZED_HEAD_BYTES] + body[-OVERSIZED_TAIL_BYTES:]
    assert big.cut == OVERSIZED_HEAD_BYTES and big.omitted_bytes == len(body) - len(big.data)
    assert big.digest == line_digest(STEP, body)
    assert after.data == b"after" and after.number == 2


def test_memory_stays_bounded_for_a_line_far_longer_than_the_limit() -> None:
    s = LineSplitter(STEP, max_line_bytes=1 << 17)
    block = b"x" * 65536
    for _ in range(300):  # ~20 MB line fed in pieces
        assert s.feed(block) == []
    held = sum(len(p) for p in s._parts) + len(s._head) + len(s._tail)
    assert held <= OVERSIZED_HEAD_BYTES + OVERSIZED_TAIL_BYTES + 1
    (line,) = s.feed(b"\n")
    assert line.size == 300 * 65536 and line.digest == line_digest(STEP, b"x" * (300 * 65536))


def test_limit_below_the_content_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineSplitter(STEP, max_line_bytes=1000)
