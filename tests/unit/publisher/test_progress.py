from __future__ import annotations

from agent_comms.core.lines import LineSplitter
from agent_comms.publisher.progress import FileProgress


def lines(n: int):  # type: ignore[no-untyped-def]
    return LineSplitter("p", max_line_bytes=1 << 20).feed(b"".join(b"l%d\n" % i for i in range(n)))


def test_position_advances_only_over_a_settled_prefix() -> None:
    p = FileProgress()
    t1, t2, t3 = (p.track(ln, 2) for ln in lines(3))
    t2.acked()
    t2.acked()
    assert p.acked_line == 0 and not p.changed  # line 2 settled, line 1 not yet
    t1.acked()
    assert p.acked_line == 0
    t1.acked()
    assert (p.acked_line, p.acked_offset) == (2, 6) and p.changed
    t3.acked()
    assert p.counts() == (2, 0, 1)


def test_rejected_copy_settles_the_line_as_rejected() -> None:
    p = FileProgress()
    (t,) = (p.track(ln, 1) for ln in lines(1))
    t.rejected("too big")
    assert p.acked_line == 1 and p.counts() == (0, 1, 0)
