"""Reading a growing file line by line, and noticing when it was truncated, replaced or rewritten.

`TailedFile.read()` returns the complete lines that arrived since the last call (one chunk at a
time, so memory stays bounded) and `finish()` the unterminated last line once the file is final.
Detection, checked on every read:

- truncated: the file is now shorter than the read position;
- replaced: the path names another inode (the old file is read to its end first);
- rewritten in place: the bytes just before the read position changed (a guard of a few bytes
  is re-read with every chunk, so this costs no extra system call).

Each of these is reported as `Reset` and reading starts again at byte 0 of the file now at the path.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent_comms.core.lines import LineSplitter, RawLine
from agent_comms.publisher.checkpoint import Checkpoint, resume_position

log = logging.getLogger(__name__)

GUARD_BYTES: Final = 32
"""Bytes before the read position re-read with each chunk to notice a rewrite in place."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The file was truncated, replaced or rewritten: start again from its first byte."""

    reason: str


class TailedFile:
    """One watched file, read from a resume point, chunk by chunk."""

    def __init__(self, path: Path, step_id: str, *, max_line_bytes: int, chunk_bytes: int) -> None:
        self.path = path
        self.source = path.name
        self._step_id = step_id
        self._max_line_bytes = max_line_bytes
        self._chunk = chunk_bytes
        self.fd = -1
        self.inode = 0
        self.splitter = LineSplitter(step_id, max_line_bytes=max_line_bytes)
        self._guard = b""

    def open(self, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """Open the file and resume from `checkpoint` if it still describes it; returns it if used."""
        self.fd = os.open(self.path, os.O_RDONLY)
        self.inode = os.fstat(self.fd).st_ino
        resumed = resume_position(checkpoint, self.fd)
        if resumed is not None:
            self._start_at(resumed.offset, resumed.line)
        else:
            self._start_at(0, 0)
        return resumed

    def _start_at(self, offset: int, line: int) -> None:
        self.splitter = LineSplitter(
            self._step_id, max_line_bytes=self._max_line_bytes, start_offset=offset, start_line=line
        )
        start = max(0, offset - GUARD_BYTES)
        self._guard = os.pread(self.fd, offset - start, start)

    @property
    def position(self) -> int:
        """Where the next read starts: after the complete lines and any unterminated rest."""
        return self.splitter.offset + self.splitter.pending_bytes

    def read(self) -> list[RawLine] | Reset | None:
        """The complete lines of the next chunk; [] while a line is still growing; None at EOF."""
        pos = self.position
        guard_len = len(self._guard)
        try:
            data = os.pread(self.fd, self._chunk + guard_len, pos - guard_len)
        except OSError as exc:  # pragma: no cover - e.g. EIO on a network volume
            log.warning("file_read_failed", extra={"source": self.source, "error": str(exc)})
            return None
        if data[:guard_len] != self._guard:
            return self._reset("truncated" if len(data) < guard_len else "rewritten in place")
        chunk = data[guard_len:]
        if not chunk:
            return self._check_identity()
        tail = data[-GUARD_BYTES:]
        self._guard = tail
        return self.splitter.feed(chunk)

    def _check_identity(self) -> Reset | None:
        """At end of data: was the file truncated, or is another file at the path now?"""
        st = os.fstat(self.fd)
        if st.st_size < self.position:
            return self._reset(f"truncated to {st.st_size} bytes")
        try:
            now = os.stat(self.path).st_ino
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None  # deleted: keep what we have; a new file will be noticed by its name
            raise
        if now != self.inode:
            return self._reset("replaced by a new file")
        return None

    def _reset(self, reason: str) -> Reset:
        """Re-open the path and read again from byte 0."""
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDONLY)
        self.inode = os.fstat(self.fd).st_ino
        self._start_at(0, 0)
        return Reset(reason)

    def finish(self) -> RawLine | None:
        """The unterminated last line, once the writer is known to have stopped."""
        return self.splitter.finish()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
