"""Wake the publisher when something changes at the top level of the watched directory.

inotify (through watchdog) where the volume supports it, else watchdog's polling observer. The
publisher also re-scans on a timer, so a lost event costs latency, never a line. watchdog calls
back on its own thread: the callback only hands a wake-up to the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._wake()


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
        self.mode = "none"

    def start(self) -> str:
        """Start watching; returns the mode in use: `inotify` or `polling`."""
        if not self._force_polling:
            try:
                self._observer = self._schedule(Observer())
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
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
