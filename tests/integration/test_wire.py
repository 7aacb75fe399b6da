"""The sender's two write paths against a real nats-server: frames built by `wire`, and the
`nc.publish()` fallback. Both must store the same messages with the same headers, and a batch
that cannot be queued (server down, pending buffer full) must end up stored exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from agent_comms.bus import Connection
from agent_comms.embedded import EmbeddedNats
from agent_comms.jetstream import STREAM_NAME
from agent_comms.publisher import sender as sender_mod
from agent_comms.publisher import wire
from agent_comms.publisher.sender import Copy, Outcome, Sender
from agent_comms.settings import NatsSettings
from tests.support.stream import message_count

SUBJECT = "argo.workflow.ns.wf.uid-1.agent.a1.events.message"


class Count(Outcome):
    __slots__ = ("acked_n", "duplicates", "rejections")

    def __init__(self) -> None:
        self.acked_n = 0
        self.duplicates = 0
        self.rejections: list[str] = []

    def acked(self, duplicate: bool = False) -> None:
        self.acked_n += 1
        self.duplicates += duplicate

    def rejected(self, reason: str) -> None:
        self.rejections.append(reason)


def copies(n: int, outcome: Outcome, *, size: int = 2000, prefix: str = "id") -> list[Copy]:
    return [
        Copy(SUBJECT, b'{"n":%d,"pad":"%s"}' % (i, b"x" * size), f"{prefix}-{i}", outcome) for i in range(n)
    ]


async def send_all(url: str, batch: Sequence[Copy], *, raw: bool, ack_timeout_s: float = 5.0) -> Sender:
    conn = Connection(NatsSettings(url=url, reconnect_wait_s=0.1), name="test-wire")
    await conn.connect()
    sender = Sender(
        conn, max_in_flight=512, ack_timeout_s=ack_timeout_s, retry_initial_wait_s=0.05, retry_max_wait_s=0.2
    )
    await sender.start()
    sender._raw = raw
    try:
        assert await sender.send(batch) == len(batch)
        assert await sender.wait_idle(_after(30.0))
    finally:
        await sender.close()
        await conn.close()
    return sender


def _after(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


async def stored(url: str) -> list[tuple[str | None, dict[str, str], bytes | None]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(STREAM_NAME)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(STREAM_NAME, seq)
            out.append((msg.subject, dict(msg.headers or {}), msg.data))
        return out
    finally:
        await nc.close()


def test_the_frame_is_what_nats_py_would_send() -> None:
    header = wire.header_block(" a:b:1:\r\nff ")
    assert header == b"NATS/1.0\r\nNats-Msg-Id: a:b:1:  ff\r\nContent-Type: application/json\r\n\r\n"
    assert wire.frame_head(b"s.t", b"_INBOX.x.7", len(header), 10) == b"HPUB s.t _INBOX.x.7 %d %d\r\n" % (
        len(header),
        len(header) + 10,
    )


def test_the_installed_nats_py_supports_the_frame_path() -> None:
    # If this fails after a nats-py upgrade, the sidecar falls back to nc.publish() (slower, correct).
    assert wire.supported(NATS())


@pytest.mark.parametrize("raw", [True, False], ids=["frames", "nc.publish"])
def test_both_paths_store_the_same_messages_with_the_same_headers(
    nats_server: EmbeddedNats, raw: bool
) -> None:
    outcome = Count()
    # Enough bytes for several writes of WRITE_BYTES, ids with characters headers must not carry.
    batch = [*copies(400, outcome), Copy(SUBJECT, b'{"odd":1}', " odd\nid\r\n ", outcome)]
    sender = asyncio.run(send_all(nats_server.url, batch, raw=raw))
    assert sender.acked == outcome.acked_n == len(batch) and outcome.duplicates == 0
    got = asyncio.run(stored(nats_server.url))
    assert [data for _, _, data in got] == [c.payload for c in batch]
    assert {subject for subject, _, _ in got} == {SUBJECT}
    ids = [headers["Nats-Msg-Id"] for _, headers, _ in got]
    assert ids[:400] == [f"id-{i}" for i in range(400)]
    assert ids[400] == "odd id"  # stripped, CR/LF made spaces: what nc.publish() sends
    assert all(headers["Content-Type"] == "application/json" for _, headers, _ in got)


def test_sending_the_same_ids_again_is_absorbed_as_duplicates(nats_server: EmbeddedNats) -> None:
    first, again = Count(), Count()
    asyncio.run(send_all(nats_server.url, copies(300, first), raw=True))
    asyncio.run(send_all(nats_server.url, copies(300, again), raw=True))
    assert first.duplicates == 0 and again.duplicates == again.acked_n == 300
    assert message_count(nats_server.url) == 300


def test_a_batch_queued_while_the_server_is_down_is_stored_once_when_it_returns(
    nats_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3,000 copies of 2 KB: far more than nats-py's 1 MiB pending buffer, so most of the batch
    # is refused while reconnecting and goes through the retry path.
    monkeypatch.setattr(sender_mod, "SWEEP_INTERVAL_MAX_S", 0.05)
    outcome = Count()

    async def go() -> dict[str, Any]:
        conn = Connection(NatsSettings(url=nats_server.url, reconnect_wait_s=0.1), name="test-wire")
        await conn.connect()
        sender = Sender(
            conn, max_in_flight=4096, ack_timeout_s=1.0, retry_initial_wait_s=0.05, retry_max_wait_s=0.2
        )
        await sender.start()
        try:
            nats_server.stop()
            await asyncio.sleep(0.3)
            assert not conn.connected.is_set()
            assert await sender.send(copies(3000, outcome)) == 3000
            await asyncio.to_thread(nats_server.start)
            assert await sender.wait_idle(_after(60.0))
            return {"acked": sender.acked, "retries": sender.retries}
        finally:
            await sender.close()
            await conn.close()

    result = asyncio.run(go())
    assert outcome.acked_n == result["acked"] == 3000 and not outcome.rejections
    assert result["retries"] > 0
    got = asyncio.run(stored(nats_server.url))
    assert sorted(h["Nats-Msg-Id"] for _, h, _ in got) == sorted(f"id-{i}" for i in range(3000))
