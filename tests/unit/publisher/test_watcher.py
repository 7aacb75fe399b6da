"""The directory watcher: a wake-up for every kind of change, in both modes, and a quiet stop."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyFD

from agent_comms.publisher import watcher as watcher_mod
from agent_comms.publisher.watcher import DirectoryWatcher


class Wakes:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def after(self, change: Callable[[], object], timeout_s: float = 5.0) -> bool:
        """Whether `change` is followed by a wake-up."""
        time.sleep(2 * watcher_mod.COALESCE_S)
        self.event.clear()
        change()
        return self.event.wait(timeout_s)


@pytest.fixture(params=["inotify", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[DirectoryWatcher, Wakes, Path]]:
    wakes = Wakes()
    w = DirectoryWatcher(tmp_path, wakes, force_polling=request.param == "polling", poll_interval_s=0.05)
    assert w.start() == request.param
    yield w, wakes, tmp_path
    w.stop()


def test_every_change_at_the_top_level_wakes_the_publisher(
    watched: tuple[DirectoryWatcher, Wakes, Path],
) -> None:
    _, wakes, d = watched
    f = d / ".codex-a-events.jsonl"
    assert wakes.after(lambda: f.write_bytes(b"one\n"))  # created
    with open(f, "ab") as out:
        assert wakes.after(lambda: (out.write(b"two\n"), out.flush()))  # grown, still open
    assert wakes.after(lambda: os.truncate(f, 0))  # truncated
    other = d / "next.tmp"
    other.write_bytes(b"x\n")
    assert wakes.after(lambda: os.replace(other, f))  # replaced by a rename
    assert wakes.after(f.unlink)  # removed


def test_a_burst_of_writes_makes_few_wake_ups_with_inotify(tmp_path: Path) -> None:
    wakes = Wakes()
    w = DirectoryWatcher(tmp_path, wakes, force_polling=False, poll_interval_s=1.0)
    assert w.start() == "inotify"
    try:
        with open(tmp_path / "log", "ab", buffering=0) as out:
            for i in range(2000):
                out.write(b"line %d\n" % i)
        time.sleep(0.2)
    finally:
        w.stop()
    # One wake-up per coalescing interval at most, not one per write (the burst takes a few ms).
    assert 1 <= wakes.count < 200


def test_without_inotify_it_falls_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inotify(*_: object) -> None:
        raise OSError(38, "inotify unavailable")

    monkeypatch.setattr(watcher_mod, "_InotifyWake", no_inotify)
    wakes = Wakes()
    w = DirectoryWatcher(tmp_path, wakes, force_polling=False, poll_interval_s=0.05)
    assert w.start() == "polling"
    try:
        assert wakes.after(lambda: (tmp_path / "f").write_bytes(b"x\n"))
    finally:
        w.stop()


def test_stop_ends_the_reader_thread(tmp_path: Path) -> None:
    w = DirectoryWatcher(tmp_path, Wakes(), force_polling=False, poll_interval_s=1.0)
    w.start()
    started = set(threading.enumerate())
    reader = [t for t in started if isinstance(t, InotifyFD)]
    assert len(reader) == 1 and reader[0].is_alive()
    w.stop()
    assert not reader[0].is_alive()
