"""TailedFile and checkpoints on real files under tmp_path: resume, truncate, replace, rewrite."""

from __future__ import annotations

import os
from pathlib import Path

from agent_comms.publisher.checkpoint import Checkpoint, CheckpointStore, fingerprint
from agent_comms.publisher.tailer import Reset, TailedFile

STEP = "pod-1"


def tail(path: Path, cp: Checkpoint | None = None) -> TailedFile:
    t = TailedFile(path, STEP, max_line_bytes=1 << 20, chunk_bytes=8)
    t.open(cp)
    return t


def drain(t: TailedFile) -> list[bytes]:
    out: list[bytes] = []
    while (got := t.read()) is not None:
        assert not isinstance(got, Reset), got
        out += [ln.data for ln in got]
    return out


def checkpoint_of(t: TailedFile) -> Checkpoint:
    off = t.splitter.offset
    return Checkpoint(t.source, off, t.splitter.line, t.inode, fingerprint(t.fd, off), STEP)


def test_reads_complete_lines_and_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"one\ntwo\nthr")
    t = tail(f)
    assert drain(t) == [b"one", b"two"]
    cp = checkpoint_of(t)
    t.close()
    with open(f, "ab") as fh:
        fh.write(b"ee\nfour\n")
    t2 = TailedFile(f, STEP, max_line_bytes=1 << 20, chunk_bytes=8)
    assert t2.open(cp) is cp
    lines = []
    while (got := t2.read()) is not None:
        assert not isinstance(got, Reset)
        lines += [(ln.number, ln.data) for ln in got]
    assert lines == [(3, b"three"), (4, b"four")]


def test_checkpoint_of_a_rewritten_file_is_not_used(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"alpha\nbeta\n")
    t = tail(f)
    drain(t)
    cp = checkpoint_of(t)
    t.close()
    with open(f, "r+b") as fh:  # same inode, same length, other bytes
        fh.write(b"ALPHA\nBETA\n")
    assert TailedFile(f, STEP, max_line_bytes=1 << 20, chunk_bytes=8).open(cp) is None


def test_checkpoint_of_a_replaced_or_shorter_file_is_not_used(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"alpha\nbeta\n")
    t = tail(f)
    drain(t)
    cp = checkpoint_of(t)
    t.close()
    f.write_bytes(b"x\n")
    assert TailedFile(f, STEP, max_line_bytes=1 << 20, chunk_bytes=8).open(cp) is None
    other = tmp_path / "b.log"
    other.write_bytes(b"alpha\nbeta\n")
    os.replace(other, f)
    assert TailedFile(f, STEP, max_line_bytes=1 << 20, chunk_bytes=8).open(cp) is None


def test_truncation_while_tailing_restarts_from_the_first_byte(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"first run line 1\nfirst run line 2\n")
    t = tail(f)
    drain(t)
    f.write_bytes(b"new\n")
    got = t.read()
    assert isinstance(got, Reset) and "truncated" in got.reason
    assert drain(t) == [b"new"]


def test_rewrite_in_place_to_a_longer_file_is_noticed(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"old content\n")
    t = tail(f)
    drain(t)
    f.write_bytes(b"completely different and longer\nsecond\n")
    got = t.read()
    assert isinstance(got, Reset) and got.reason == "rewritten in place"
    assert drain(t) == [b"completely different and longer", b"second"]


def test_replaced_file_is_read_to_its_end_before_switching(tmp_path: Path) -> None:
    f = tmp_path / "a.log"
    f.write_bytes(b"one\n")
    t = tail(f)
    assert drain(t) == [b"one"]
    new = tmp_path / "new.log"
    new.write_bytes(b"fresh file\n")
    with open(f, "ab") as fh:
        fh.write(b"two\n")
    os.replace(new, f)
    got = t.read()
    assert not isinstance(got, Reset) and [ln.data for ln in got or []] == [b"two"]
    while (got := t.read()) == []:
        pass
    assert isinstance(got, Reset) and "replaced" in got.reason
    assert drain(t) == [b"fresh file"]


def test_checkpoint_store_round_trips_and_ignores_garbage(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp")
    cp = Checkpoint("a.log", 10, 2, 99, "abc", STEP, {"thread_id": "t"})
    store.save(cp)
    assert store.load("a.log") == cp
    store.path("b.log").write_text("{not json")
    assert store.load("b.log") is None
    assert store.load("missing.log") is None
