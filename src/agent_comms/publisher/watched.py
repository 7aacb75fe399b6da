"""A watched file's state, and the counts the sidecar reports at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agent_comms.core.codex import SourceKind, file_context
from agent_comms.core.message import FileIdentity
from agent_comms.publisher.progress import FileProgress
from agent_comms.publisher.tailer import TailedFile


@dataclass
class FileSummary:
    source: str
    lines_read: int = 0
    lines_published: int = 0
    lines_duplicate: int = 0
    lines_rejected: int = 0
    lines_pending: int = 0
    resets: int = 0


@dataclass
class Summary:
    lines_read: int = 0
    lines_published: int = 0
    lines_duplicate: int = 0
    lines_rejected: int = 0
    lines_pending: int = 0
    copies_acked: int = 0
    retries: int = 0
    bytes_published: int = 0
    capped: bool = False
    drained: bool = True
    files: list[FileSummary] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class WatchedFile:
    """One file under watch: its reader, identity, normalizer state and acknowledged progress."""

    def __init__(self, tail: TailedFile, kind: SourceKind, ident: FileIdentity) -> None:
        self.tail = tail
        self.kind = kind
        self.ident = ident
        self.ctx = file_context(tail.source)
        self.progress = FileProgress()
        self.earlier: list[FileProgress] = []  # generations before a reset, for the summary
        self.lines_read = 0
        self.resets = 0
        self.run_subjects: dict[str, str] = {}

    def reset(self) -> None:
        self.earlier.append(self.progress)
        self.progress = FileProgress()
        self.ctx = file_context(self.tail.source)
        self.resets += 1

    def summary(self) -> FileSummary:
        s = FileSummary(self.tail.source, lines_read=self.lines_read, resets=self.resets)
        for p in (*self.earlier, self.progress):
            published, rejected, pending = p.counts()
            s.lines_duplicate += p.lines_duplicate
            s.lines_published += published
            s.lines_rejected += rejected
            s.lines_pending += pending
        # Lines read but never handed to the sender (deadline, cap) are pending too.
        s.lines_pending = s.lines_read - s.lines_published - s.lines_rejected
        return s
