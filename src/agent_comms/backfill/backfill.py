"""`agent-comms backfill --from DIR`: the run's files, through the same normalization as the
publisher, into Postgres; every missing row inserted, none twice.

What is already stored is decided by Postgres alone (never by the publisher's checkpoints):
the backfill reads the keys of the run's rows, builds every line's rows under the channel policy,
and COPYs the missing ones through the idempotent insert (so a live ingest committing the same
rows at the same time costs nothing but a conflict). Memory stays bounded: files are read in
chunks and rows are written in batches.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent_comms.backfill.timing import TimeEstimator
from agent_comms.core.codex import DEFAULT_GLOBS, Normalizer, file_context, file_identity, identify_source
from agent_comms.core.lines import LineSplitter, RawLine
from agent_comms.core.message import Channel, RunIdentity, body_with_channel, build_body, message_id, rfc3339
from agent_comms.settings import StoreSettings
from agent_comms.store.database import Conn, connect, connect_with_retry, retry_transient
from agent_comms.store.messages import insert_rows
from agent_comms.store.migrate import migrate
from agent_comms.store.present import Present, present_rows
from agent_comms.store.rows import MessageRow, row_from_body

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BackfillSettings:
    source_dir: Path
    identity: RunIdentity
    store: StoreSettings
    general_kinds: frozenset[str]
    globs: tuple[str, ...] = DEFAULT_GLOBS
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    batch_rows: int = 20_000
    db_retry_for_s: float = 120.0


@dataclass
class FileResult:
    source: str
    lines: int = 0
    rows: int = 0
    inserted: int = 0
    present: int = 0


@dataclass
class BackfillSummary:
    """DESIGN.md's summary: `inserted + present == rows`, overall and per file."""

    lines: int = 0
    rows: int = 0
    inserted: int = 0
    present: int = 0
    files: list[FileResult] = field(default_factory=list)
    workflow_uid: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def discover(directory: Path, globs: tuple[str, ...]) -> list[Path]:
    """Matching files at the top level of `directory`, following symlinks (Argo delivers input
    artifacts as symlinks)."""
    if not directory.is_dir():
        return []
    return sorted(
        p for p in directory.iterdir() if p.is_file() and any(fnmatch.fnmatchcase(p.name, g) for g in globs)
    )


class Backfill:
    def __init__(self, settings: BackfillSettings, normalizer: Normalizer) -> None:
        self.s = settings
        self.normalizer = normalizer
        self.conn: Conn | None = None
        self._batch: list[MessageRow] = []
        self._batch_files: list[FileResult] = []

    async def run(self) -> BackfillSummary:
        t0 = time.monotonic()
        s = self.s
        summary = BackfillSummary(workflow_uid=s.identity.workflow_uid)
        files = discover(s.source_dir, s.globs)
        log.info(
            "backfill_started",
            extra={"from": str(s.source_dir), "files": [f.name for f in files], **s.identity.to_json()},
        )
        self.conn = await connect_with_retry(s.store, within_s=s.db_retry_for_s, autocommit=True)
        try:
            await migrate(self.conn)
            present = await self._retry(
                lambda: present_rows(self._conn(), s.identity.workflow_uid, [f.name for f in files]),
                "read present rows",
            )
            for path in files:
                result = await self._file(path, present)
                summary.files.append(result)
            await self._flush()
        finally:
            await self.conn.close()
        for r in summary.files:
            summary.lines += r.lines
            summary.rows += r.rows
            summary.inserted += r.inserted
            summary.present += r.present
        summary.seconds = round(time.monotonic() - t0, 3)
        log.info("backfill_finished", extra={k: v for k, v in summary.to_json().items() if k != "files"})
        return summary

    async def _file(self, path: Path, present: Present) -> FileResult:
        s = self.s
        result = FileResult(path.name)
        kind, _stage = identify_source(path.name)
        ident = file_identity(s.identity, path.name)
        ctx = file_context(path.name)
        uid = s.identity.workflow_uid
        mtime = (await asyncio.to_thread(path.stat)).st_mtime
        estimator = TimeEstimator(present.times.get(path.name, {}), mtime)
        splitter = LineSplitter(s.identity.step_id, max_line_bytes=s.max_line_bytes)
        general_kinds = s.general_kinds
        keys = present.keys

        async def handle(line: RawLine) -> None:
            result.lines += 1
            norm = self.normalizer.normalize(kind, line, ctx)
            mid = message_id(uid, path.name, line.number, line.digest)
            channels: tuple[Channel, ...] = ("run", "general") if norm.kind in general_kinds else ("run",)
            result.rows += len(channels)
            missing = [c for c in channels if (mid, c) not in keys]
            result.present += len(channels) - len(missing)
            if not missing:
                return
            read_at = ""
            if norm.timestamp is None:
                ts, how = estimator.estimate(line.number)
                norm.attrs["timestamp_estimated"] = how
                read_at = rfc3339(ts)
            body = build_body(s.identity, ident, line, norm, read_at)
            # Only a line holding a NUL (raw, or escaped in JSON) can put one in the body; skip the
            # walk that replaces it otherwise, as the consumer does for bytes without one.
            may_hold_nul = b"\x00" in line.data or b"\\u0000" in line.data
            row = row_from_body(
                body_with_channel(body, "run"), arrived_via="backfill", may_hold_nul=may_hold_nul
            )
            for channel in missing:
                self._batch.append(row if channel == "run" else row._replace(channel=channel))
            if not self._batch_files or self._batch_files[-1] is not result:
                self._batch_files.append(result)
            if len(self._batch) >= s.batch_rows:
                await self._flush()

        fh = await asyncio.to_thread(open, path, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, READ_CHUNK_BYTES):
                for line in splitter.feed(chunk):
                    await handle(line)
        finally:
            fh.close()
        last = splitter.finish()
        if last is not None:
            await handle(last)
        log.info(
            "backfill_file_read", extra={"source": path.name, "lines": result.lines, "rows": result.rows}
        )
        return result

    async def _flush(self) -> None:
        """Insert the batch; rows a concurrent writer stored meanwhile count as present."""
        rows, self._batch = self._batch, []
        files, self._batch_files = self._batch_files, []
        if not rows:
            return
        outcome = await self._retry(lambda: insert_rows(self._conn(), rows), "insert rows")
        by_source = {f.source: f for f in files}
        for row in rows:
            f = by_source[row.source]
            if outcome.was_inserted(row.key):
                f.inserted += 1
            else:
                f.present += 1
        log.info("backfill_batch_stored", extra={"rows": len(rows), "inserted": len(outcome.inserted)})

    def _conn(self) -> Conn:
        assert self.conn is not None
        return self.conn

    async def _retry(self, fn: Any, what: str) -> Any:
        """Run a database step, reconnecting and retrying transient failures for db_retry_for_s."""

        async def attempt() -> Any:
            if self.conn is None or self.conn.closed or self.conn.broken:
                self.conn = await connect(self.s.store, autocommit=True)
            return await fn()

        return await retry_transient(attempt, self.s.store, what=what, within_s=self.s.db_retry_for_s)
