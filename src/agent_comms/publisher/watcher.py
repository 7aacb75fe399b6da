"""Wake the publisher when something changes at the top level of the watched directory.

inotify (through watchdog) where the volume supports it, else watchdog's polling observer. The
publisher also re-scans on a timer, so a lost event costs latency, never a line.

With inotify, watchdog's reader thread calls us directly (`InotifyFD` with a callback), not
through its observer: the observer turns every event into an object and hands it across two
more threads, which cost the sidecar about 0.3 of a core at 1,000 writes a second. After a
wake-up the reader thread pauses for `COALESCE_S` (the publisher waits that long before reading
anyway): identical events queued meanwhile are merged by the kernel into one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

COALESCE_S: Final = 0.005
"""How long the inotify reader rests after a wake-up; the publisher's own coalescing interval."""

_MASK: Final = Mask(
    InotifyConstants.IN_CREATE
    | InotifyConstants.IN_MODIFY
    | InotifyConstants.IN_ATTRIB
    | InotifyConstants.IN_CLOSE_WRITE
    | InotifyConstants.IN_MOVED_TO
    | InotifyConstants.IN_MOVED_FROM
    | InotifyConstants.IN_DELETE
    | InotifyConstants.IN_DELETE_SELF
    | InotifyConstants.IN_MOVE_SELF
)
"""Anything that may add, grow, replace or remove a file at the top level."""


class _Handler(FileSystemEventHandler):
    """For watchdog's polling observer."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._wake()


class _InotifyWake:
    """watchdog's inotify reader thread, calling `wake` for any event on the directory."""

    def __init__(self, directory: Path, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._fd = InotifyFD()  # OSError without inotify (or past the instance limit)
        try:
            self._fd.add_callback(os.fsencode(directory), _MASK, self, CallbackId(1))
        except OSError:
            self._fd.close()
            raise
        self._fd.daemon = True
        self._fd.start()

    def on_event(self, event: InotifyEvent) -> None:
        self._wake()
        time.sleep(COALESCE_S)

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        self._wake()

    def on_queue_overflow(self) -> None:
        self._wake()

    def stop(self) -> None:
        self._fd.stop()
        self._fd.join(timeout=2)


class DirectoryWatcher:
    """Calls `wake()` (from another thread) on any change in `directory`, non-recursively."""

    def __init__(
        self, directory: Path, wake: Callable[[], None], *, force_polling: bool, poll_interval_s: float
    ):
        self._directory = directory
        self._wake = wake
        self._force_polling = force_polling
        self._poll_interval_s = poll_interval_s
        self._observer: BaseObserver | None = None
        self._inotify: _InotifyWake | None = None
        self.mode = "none"

    def start(self) -> str:
        """Start watching; returns the mode in use: `inotify` or `polling`."""
        if not self._force_polling:
            try:
                self._inotify = _InotifyWake(self._directory, self._wake)
                self.mode = "inotify"
                return self.mode
            except OSError as exc:
                # No inotify on this volume (or the watch limit is reached): poll instead.
                log.warning("inotify_unavailable", extra={"error": str(exc), "fallback": "polling"})
        self._observer = self._schedule(PollingObserver(timeout=self._poll_interval_s))
        self.mode = "polling"
        return self.mode

    def _schedule(self, observer: BaseObserver) -> BaseObserver:
        observer.schedule(_Handler(self._wake), str(self._directory), recursive=False)
        observer.daemon = True
        observer.start()
        return observer

    def stop(self) -> None:
        if self._inotify is not None:
            self._inotify.stop()
            self._inotify = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
