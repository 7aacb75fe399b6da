"""Physical lines of a growing file, with their contract identity, in bounded memory.

A line is the bytes up to and including `\n`; a lone `\r` does not end a line, and one `\r`
right before the `\n` is not part of the line (CRLF files). Blank lines are lines. An
unterminated last line is held back until `finish()` declares the file final.

Memory stays bounded whatever the line length: a line longer than `max_line_bytes` keeps only
its head and tail (enough for the 64 KiB content cap), while its digest is still computed over
every byte, incrementally. The reader never re-scans or re-joins what it already saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

DIGEST_HEX_CHARS: Final = 16

OVERSIZED_HEAD_BYTES: Final = 56 * 1024
OVERSIZED_TAIL_BYTES: Final = 8 * 1024
"""What an oversized line keeps: head and tail add up to the 64 KiB content cap."""


@dataclass(slots=True)
class RawLine:
    """One physical line as read from a file (one is made per line: not frozen, which would make
    creating it five times slower).

    `data` is the line without its terminator. For an oversized line (`cut >= 0`) it holds only
    the first `cut` bytes followed by the last bytes of the line; `size` is always the true length.
    """

    number: int
    """1-based line number in the file."""
    offset: int
    """Byte offset of the line's first byte."""
    end: int
    """Byte offset just past the line's terminator (or end of file for a partial line)."""
    data: bytes
    size: int
    digest: str
    """First 16 hex digits of SHA-256 over step id, NUL and the line's bytes (DESIGN.md)."""
    partial: bool = False
    """An unterminated last line, published once the file was declared final."""
    cut: int = -1
    """Where the omitted middle of an oversized line was, as an index into `data`; -1 if whole."""

    @property
    def is_oversized(self) -> bool:
        return self.cut >= 0

    @property
    def omitted_bytes(self) -> int:
        return self.size - len(self.data)


def digest_base(step_id: str) -> hashlib._Hash:
    """A SHA-256 state fed with `step_id` and NUL: copy it and add a line's bytes."""
    return hashlib.sha256(step_id.encode("utf-8") + b"\x00")


def line_digest(step_id: str, data: bytes) -> str:
    """The contract digest of one whole line (without `\\n` and without one `\\r` before it)."""
    h = digest_base(step_id)
    h.update(data)
    return h.hexdigest()[:DIGEST_HEX_CHARS]


class LineSplitter:
    """Splits a byte stream, fed chunk by chunk, into `RawLine`s.

    `feed()` returns the lines completed by a chunk; `finish()` returns the unterminated rest as a
    partial line (or None). `offset` and `line` always describe the end of the last complete line,
    which is where a checkpoint may point.
    """

    def __init__(
        self,
        step_id: str,
        *,
        max_line_bytes: int,
        start_offset: int = 0,
        start_line: int = 0,
    ) -> None:
        if max_line_bytes < OVERSIZED_HEAD_BYTES + OVERSIZED_TAIL_BYTES:
            raise ValueError(
                f"max_line_bytes={max_line_bytes} is below the "
                f"{OVERSIZED_HEAD_BYTES + OVERSIZED_TAIL_BYTES} bytes a line's content may keep"
            )
        self._base = digest_base(step_id)
        self._max = max_line_bytes
        self.offset = start_offset
        self.line = start_line
        # The line in progress (bytes already fed, no newline yet).
        self._parts: list[bytes] = []
        self._pending = 0  # bytes of the line in progress, all of them, including a held '\r'
        self._hash: hashlib._Hash | None = None
        self._held_cr = False
        self._head = b""  # oversized mode only
        self._tail = b""
        self._oversized = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of an unterminated line seen after `offset`."""
        return self._pending

    def feed(self, chunk: bytes) -> list[RawLine]:
        out: list[RawLine] = []
        pos = 0
        n = len(chunk)
        find = chunk.find
        while pos < n:
            nl = find(b"\n", pos)
            if nl < 0:
                self._append(chunk[pos:])
                break
            if self._pending == 0:
                out.append(self._whole_line(chunk[pos:nl], nl + 1 - pos))
            else:
                self._append(chunk[pos:nl])
                out.append(self._complete(terminated=True))
            pos = nl + 1
        return out

    def finish(self) -> RawLine | None:
        """The unterminated last line as a partial line; call only when the file is final."""
        if self._pending == 0:
            return None
        return self._complete(terminated=False)

    # -- internals ---------------------------------------------------------------------------

    def _whole_line(self, piece: bytes, length: int) -> RawLine:
        """Fast path: the whole line lies inside one chunk."""
        if piece.endswith(b"\r"):
            piece = piece[:-1]
        h = self._base.copy()
        h.update(piece)
        size = len(piece)
        cut = -1
        if size > self._max:
            piece = piece[:OVERSIZED_HEAD_BYTES] + piece[-OVERSIZED_TAIL_BYTES:]
            cut = OVERSIZED_HEAD_BYTES
        self.line += 1
        start = self.offset
        self.offset += length
        return RawLine(
            self.line, start, self.offset, piece, size, h.hexdigest()[:DIGEST_HEX_CHARS], False, cut
        )

    def _append(self, piece: bytes) -> None:
        if not piece:
            return
        if self._hash is None:
            self._hash = self._base.copy()
        if self._held_cr:
            self._hash.update(b"\r")
            self._held_cr = False
        if piece.endswith(b"\r"):
            self._hash.update(piece[:-1])
            self._held_cr = True
        else:
            self._hash.update(piece)
        self._pending += len(piece)
        if self._oversized:
            self._tail = (self._tail + piece)[-OVERSIZED_TAIL_BYTES - 1 :]
            return
        self._parts.append(piece)
        if self._pending > self._max:
            joined = b"".join(self._parts)
            self._parts = []
            self._head = joined[:OVERSIZED_HEAD_BYTES]
            self._tail = joined[-OVERSIZED_TAIL_BYTES - 1 :]
            self._oversized = True

    def _complete(self, *, terminated: bool) -> RawLine:
        assert self._hash is not None
        size = self._pending
        strip_cr = terminated and self._held_cr
        if self._held_cr and not terminated:
            self._hash.update(b"\r")
        if strip_cr:
            size -= 1
        cut = -1
        if self._oversized:
            tail = self._tail[:-1] if strip_cr else self._tail
            data = self._head + tail[-OVERSIZED_TAIL_BYTES:]
            cut = len(self._head)
        else:
            data = b"".join(self._parts)
            if strip_cr:
                data = data[:-1]
            if size > self._max:  # only reachable when the held '\r' pushed it over
                data = data[:OVERSIZED_HEAD_BYTES] + data[-OVERSIZED_TAIL_BYTES:]
                cut = OVERSIZED_HEAD_BYTES
        digest = self._hash.hexdigest()[:DIGEST_HEX_CHARS]
        self.line += 1
        start = self.offset
        self.offset += self._pending + (1 if terminated else 0)
        line = RawLine(self.line, start, self.offset, data, size, digest, not terminated, cut)
        self._parts = []
        self._pending = 0
        self._hash = None
        self._held_cr = False
        self._head = self._tail = b""
        self._oversized = False
        return line
