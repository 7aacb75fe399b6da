"""The sidecar's life: start, tail and publish, then drain within a deadline and report.

start    write identity.json, connect (in the background, forever), watch the directory
run      read complete lines as they arrive, publish both copies, checkpoint behind the acks
drain    on stop: read every file to its end (the unterminated last line too), publish,
         wait for acks until --drain-timeout, save checkpoints, report what is pending
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
from typing import Any

from agent_comms.bus import Connection
from agent_comms.core.codex import (
    DEFAULT_GLOBS,
    Normalizer,
    file_context,
    file_identity,
    identify_source,
)
from agent_comms.core.lines import RawLine, line_digest
from agent_comms.core.message import (
    EncodedCopies,
    FileIdentity,
    Normalized,
    build_body,
    encode_copies,
    rfc3339_now,
)
from agent_comms.core.runfiles import RunManifest, checkpoint_dir, write_manifest
from agent_comms.core.subjects import GENERAL_ID_SUFFIX, general_subject, run_subject
from agent_comms.publisher.checkpoint import Checkpoint, CheckpointStore, fingerprint
from agent_comms.publisher.progress import FileProgress
from agent_comms.publisher.sender import Copy, Outcome, Sender
from agent_comms.publisher.tailer import Reset, TailedFile
from agent_comms.publisher.watched import Summary, WatchedFile
from agent_comms.publisher.watcher import DirectoryWatcher
from agent_comms.settings import PublishSettings, format_general_kinds

log = logging.getLogger(__name__)

WAKE_COALESCE_S = 0.005

PUBLISHER_SOURCE = "agent-comms"
"""`source` of the publisher's own notices: not a file, so its line 1 clashes with no file line."""


class _Notice(Outcome):
    """Outcome of a publisher notice: nothing to checkpoint."""

    __slots__ = ()

    def acked(self, duplicate: bool = False) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass


class Publisher:
    """Tails `settings.watch_dir` and publishes every line; see the module docstring."""

    def __init__(self, settings: PublishSettings, normalizer: Normalizer) -> None:
        self.settings = settings
        self.normalizer = normalizer
        self.conn = Connection(settings.nats, name=f"agent-comms-publisher:{settings.identity.step_id}")
        self.sender = Sender(
            self.conn,
            max_in_flight=settings.max_in_flight,
            ack_timeout_s=settings.ack_timeout_s,
            retry_initial_wait_s=settings.retry_initial_wait_s,
            retry_max_wait_s=settings.retry_max_wait_s,
        )
        self.files: dict[str, WatchedFile] = {}
        self.checkpoints = CheckpointStore(checkpoint_dir(settings.watch_dir))
        self.globs = settings.globs or DEFAULT_GLOBS
        self.prefix = settings.nats.subject_prefix
        self.general_subjects: dict[str, str] = {}
        self.bytes_published = 0
        self.capped = False
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._deadline: float | None = None
        self._progress_at = 0.0
        self._tasks: list[asyncio.Task[Any]] = []
        self.finished = False

    # -- control -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin the drain (signal handlers call this); the drain deadline starts now."""
        if not self._stopping.is_set():
            self._deadline = asyncio.get_running_loop().time() + self.settings.drain_timeout_s
            self._stopping.set()
            self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def _expired(self) -> bool:
        """Give up waiting? At the drain deadline, or in --once mode after a stall."""
        now = asyncio.get_running_loop().time()
        if self._deadline is not None and now > self._deadline:
            return True
        if self.settings.once:
            last = max(self._progress_at, self.sender.last_ack_at)
            return now - last > self.settings.drain_timeout_s
        return False

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> Summary:
        s = self.settings
        loop = asyncio.get_running_loop()
        s.watch_dir.mkdir(parents=True, exist_ok=True)
        write_manifest(
            s.watch_dir,
            RunManifest(
                identity=s.identity,
                general_kinds=tuple(sorted(s.general_kinds)),
                subject_prefix=self.prefix,
                max_line_bytes=s.max_line_bytes,
                redact_patterns=s.redact_patterns,
                globs=tuple(self.globs),
            ),
        )
        self._progress_at = loop.time()
        connect = loop.create_task(self.conn.connect())

        def wake_from_thread() -> None:
            # Reading the flag from another thread is a benign race: at worst one extra wake-up.
            if not self._wake.is_set():
                loop.call_soon_threadsafe(self._wake.set)

        watcher = DirectoryWatcher(
            s.watch_dir,
            wake_from_thread,
            force_polling=s.force_polling,
            poll_interval_s=s.poll_interval_s,
        )
        mode = "once" if s.once else watcher.start()
        log.info(
            "publisher_started",
            extra={
                "watch_dir": str(s.watch_dir),
                "globs": list(self.globs),
                "watch_mode": mode,
                "nats_url": s.nats.url,
                "general_kinds": format_general_kinds(s.general_kinds),
                **s.identity.to_json(),
            },
        )
        self._tasks.append(loop.create_task(self._checkpoint_loop()))
        try:
            if await self._until_connected():
                await self.sender.start()
                self._progress_at = loop.time()
                if not s.once:
                    await self._follow()
            await self._drain()
        finally:
            watcher.stop()
            for task in (connect, *self._tasks):
                task.cancel()
            # Bounded: nats-py's connect() may hold on to a cancellation for a moment.
            await asyncio.wait((connect, *self._tasks), timeout=1.0)
            self._save_checkpoints()
            await self.sender.close()
            await self.conn.close(timeout_s=1.0)
            for f in self.files.values():
                f.tail.close()
            self.finished = True
        return self.summary()

    async def _until_connected(self) -> bool:
        """Wait for the first connection; False if the drain deadline (or --once stall) came first."""
        while not self.conn.connected.is_set():
            if self._expired():
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.conn.connected.wait(), 0.25)
        return True

    async def _follow(self) -> None:
        """Until stopped: publish what arrives, waking on file events and on the poll timer."""
        while not self._stopping.is_set():
            # Let a burst of writes land before reading: one read per burst instead of one per
            # line halved the sidecar's CPU at 1,000 lines/s, for a few ms of latency.
            await asyncio.sleep(WAKE_COALESCE_S)
            self._wake.clear()
            self._discover()
            await self._pump(final=False)
            if self._stopping.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)

    async def _drain(self) -> None:
        """Publish every remaining line, wait for the acks until the deadline, count the rest."""
        if not self.settings.once:
            log.info("drain_started", extra={"in_flight": self.sender.in_flight, "files": len(self.files)})
        self._discover()
        if self.sender.started and not self._expired():
            await self._pump(final=True)
            await self.sender.wait_idle(self._expired)
        self._count_unread()

    # -- files -------------------------------------------------------------------------------

    def _discover(self) -> None:
        """Start tailing every matching file at the top level that is not tailed yet."""
        try:
            entries = list(os.scandir(self.settings.watch_dir))
        except OSError as exc:
            log.warning(
                "watch_dir_unreadable", extra={"watch_dir": str(self.settings.watch_dir), "error": str(exc)}
            )
            return
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name in self.files or not entry.is_file(follow_symlinks=True):
                continue
            if not any(fnmatch.fnmatchcase(name, g) for g in self.globs):
                continue
            self._add(name)

    def _add(self, name: str) -> None:
        s = self.settings
        tail = TailedFile(
            s.watch_dir / name,
            s.identity.step_id,
            max_line_bytes=s.max_line_bytes,
            chunk_bytes=s.read_chunk_bytes,
        )
        saved = self.checkpoints.load(name)
        try:
            resumed = tail.open(saved)
        except FileNotFoundError:
            return
        kind, _stage = identify_source(name)
        wf = WatchedFile(tail, kind, file_identity(s.identity, name))
        if resumed is not None:
            wf.progress = FileProgress(resumed.offset, resumed.line)
            wf.ctx = file_context(name, saved=resumed.context)
        self.files[name] = wf
        log.info(
            "file_found",
            extra={
                "source": name,
                "kind": kind.name.lower(),
                "agent_id": wf.ident.agent_id,
                "resume_line": resumed.line if resumed else 0,
                "resume_offset": resumed.offset if resumed else 0,
                "checkpoint": "resumed" if resumed else ("stale" if saved else "none"),
            },
        )

    async def _pump(self, *, final: bool) -> None:
        """Read and publish everything available in every file; with `final`, the partial line too.

        The lines of one read are normalized and encoded first, then their copies are sent as
        one batch; reading goes on only once the batch is handed over (or the deadline passed).
        """
        for wf in list(self.files.values()):
            while not self.capped and not self._expired():
                got = wf.tail.read()
                if got is None:
                    break
                if isinstance(got, Reset):
                    log.warning("file_reset", extra={"source": wf.tail.source, "reason": got.reason})
                    wf.reset()
                    continue
                if got and not await self._publish_lines(wf, got):
                    return
            if final and not self.capped and not self._expired():
                last = wf.tail.finish()
                if last is not None and not await self._publish_lines(wf, [last]):
                    return

    async def _publish_lines(self, wf: WatchedFile, lines: list[RawLine]) -> bool:
        """Normalize, encode and send both copies of each line; False to stop reading."""
        wf.lines_read += len(lines)
        read_at = rfc3339_now()
        identity = self.settings.identity
        general_kinds = self.settings.general_kinds
        max_payload = self.conn.nc.max_payload
        copies: list[Copy] = []
        for line in lines:
            norm = self.normalizer.normalize(wf.kind, line, wf.ctx)
            body = build_body(identity, wf.ident, line, norm, read_at)
            enc = encode_copies(body, general=norm.kind in general_kinds, max_payload=max_payload)
            size = len(enc.run) + (len(enc.general) if enc.general is not None else 0)
            if self.bytes_published + size > self.settings.max_run_bytes:
                await self._send(copies)
                await self._reach_cap()
                return False
            self.bytes_published += size
            ticket = wf.progress.track(line, 2 if enc.general is not None else 1)
            subject = wf.run_subjects.get(norm.kind)
            if subject is None:
                subject = wf.run_subjects[norm.kind] = self._run_subject(wf.ident.agent_id, norm.kind)
            self._add_copies(copies, enc, subject, ticket)
        return await self._send(copies)

    def _add_copies(self, copies: list[Copy], enc: EncodedCopies, subject: str, outcome: Outcome) -> None:
        """The run copy, then the general copy (if the policy sends one)."""
        copies.append(Copy(subject, enc.run, enc.message_id, outcome))
        if enc.general is not None:
            general = self._general_subject(enc.kind)
            copies.append(Copy(general, enc.general, enc.message_id + GENERAL_ID_SUFFIX, outcome))

    async def _send(self, copies: list[Copy]) -> bool:
        """Hand the copies to the sender; False if the deadline came before all were taken (the
        lines of those not taken stay pending)."""
        return await self.sender.send(copies, self._expired) == len(copies)

    def _run_subject(self, agent_id: str, kind: str) -> str:
        ident = self.settings.identity
        return run_subject(
            self.prefix, ident.workflow_namespace, ident.workflow_name, ident.workflow_uid, agent_id, kind
        )

    def _general_subject(self, kind: str) -> str:
        subject = self.general_subjects.get(kind)
        if subject is None:
            subject = self.general_subjects[kind] = general_subject(self.prefix, kind)
        return subject

    async def _reach_cap(self) -> None:
        """Stop publishing this run live and say so once, on the run and general channels."""
        self.capped = True
        s = self.settings
        log.warning(
            "run_cap_reached",
            extra={"max_run_bytes": s.max_run_bytes, "bytes_published": self.bytes_published},
        )
        text = (
            f"Live publishing stopped: this run reached --max-run-bytes={s.max_run_bytes} "
            f"({self.bytes_published} bytes of bodies published). The backfill step stores the rest."
        )
        notice = RawLine(1, 0, 0, b"", 0, line_digest(s.identity.step_id, b"max-run-bytes"))
        ident = FileIdentity(
            PUBLISHER_SOURCE, s.identity.agent_id or s.identity.stage or "agent", s.identity.stage
        )
        norm = Normalized(
            "status", "system", text, attrs={"origin": "publisher", "max_run_bytes": s.max_run_bytes}
        )
        body = build_body(s.identity, ident, notice, norm, rfc3339_now())
        enc = encode_copies(body, general="status" in s.general_kinds, max_payload=self.conn.nc.max_payload)
        copies: list[Copy] = []
        self._add_copies(copies, enc, self._run_subject(ident.agent_id, "status"), _Notice())
        await self._send(copies)

    def _count_unread(self) -> None:
        """Count the lines nobody will publish now, so the summary reports each one as pending."""
        self._discover()
        for wf in self.files.values():
            while True:
                got = wf.tail.read()
                if got is None:
                    break
                if isinstance(got, Reset):
                    wf.reset()
                    continue
                wf.lines_read += len(got)
            if wf.tail.finish() is not None:
                wf.lines_read += 1

    # -- checkpoints -------------------------------------------------------------------------

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.checkpoint_interval_s)
            self._save_checkpoints()

    def _save_checkpoints(self) -> None:
        for wf in self.files.values():
            p = wf.progress
            if not p.changed or wf.tail.fd < 0:
                continue
            p.changed = False
            self.checkpoints.save(
                Checkpoint(
                    source=wf.tail.source,
                    offset=p.acked_offset,
                    line=p.acked_line,
                    inode=wf.tail.inode,
                    fingerprint=fingerprint(wf.tail.fd, p.acked_offset),
                    step_id=self.settings.identity.step_id,
                    context=wf.ctx.to_json(),
                )
            )

    # -- report ------------------------------------------------------------------------------

    def summary(self) -> Summary:
        """Counts so far (final once `run()` has returned)."""
        out = Summary(
            copies_acked=self.sender.acked,
            retries=self.sender.retries,
            bytes_published=self.bytes_published,
            capped=self.capped,
        )
        for wf in self.files.values():
            fs = wf.summary()
            out.files.append(fs)
            out.lines_read += fs.lines_read
            out.lines_published += fs.lines_published
            out.lines_duplicate += fs.lines_duplicate
            out.lines_rejected += fs.lines_rejected
            out.lines_pending += fs.lines_pending
        out.drained = out.lines_pending == 0 and out.lines_rejected == 0
        return out
