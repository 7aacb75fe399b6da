"""Which lines of a file are acknowledged: the checkpoint only ever moves over settled lines.

Copies are acknowledged out of order (retries), so each line gets a ticket counting its copies
still unacknowledged; the acknowledged position advances over the longest prefix of settled
tickets. A file that is reset gets a new `FileProgress`, and late acks for the old one land in
the old object, where they can no longer move anything.
"""

from __future__ import annotations

from collections import deque

from agent_comms.core.lines import RawLine
from agent_comms.publisher.sender import Outcome


class LineTicket(Outcome):
    __slots__ = ("duplicate", "end", "failed", "number", "progress", "remaining")

    def __init__(self, progress: FileProgress, number: int, end: int, copies: int) -> None:
        self.progress = progress
        self.number = number
        self.end = end
        self.remaining = copies
        self.failed = False
        self.duplicate = False

    def acked(self, duplicate: bool = False) -> None:
        self.duplicate = self.duplicate or duplicate
        self.remaining -= 1
        if self.remaining == 0:
            self.progress.settle()

    def rejected(self, reason: str) -> None:
        self.failed = True
        self.acked()


class FileProgress:
    """The acknowledged position of one file generation."""

    def __init__(self, offset: int = 0, line: int = 0) -> None:
        self.acked_offset = offset
        self.acked_line = line
        self.changed = False
        self.lines_published = 0
        self.lines_duplicate = 0
        self.lines_rejected = 0
        self._open: deque[LineTicket] = deque()

    def track(self, line: RawLine, copies: int) -> LineTicket:
        ticket = LineTicket(self, line.number, line.end, copies)
        self._open.append(ticket)
        return ticket

    @property
    def unsettled(self) -> int:
        return len(self._open)

    def settle(self) -> None:
        q = self._open
        while q and q[0].remaining == 0:
            t = q.popleft()
            self.acked_offset = t.end
            self.acked_line = t.number
            if t.failed:
                self.lines_rejected += 1
            else:
                self.lines_published += 1
                self.lines_duplicate += t.duplicate
            self.changed = True

    def counts(self) -> tuple[int, int, int]:
        """(published, rejected, pending) lines, counting acked lines still behind a pending one."""
        published, rejected, pending = self.lines_published, self.lines_rejected, 0
        for t in self._open:
            if t.remaining > 0:
                pending += 1
            elif t.failed:
                rejected += 1
            else:
                published += 1
        return published, rejected, pending
