"""Reading back what the stream stores, for assertions."""

from __future__ import annotations

import asyncio
from typing import Any

import nats

from agent_comms.jetstream import StoredMessage, read_all

Stored = StoredMessage


async def read_stream(url: str, **kw: Any) -> list[StoredMessage]:
    nc = await nats.connect(url, max_reconnect_attempts=1)
    try:
        return await read_all(nc.jetstream(), **kw)
    finally:
        await nc.close()


def read_stream_sync(url: str, **kw: Any) -> list[StoredMessage]:
    return asyncio.run(read_stream(url, **kw))


async def _message_count(url: str) -> int:
    nc = await nats.connect(url, max_reconnect_attempts=1)
    try:
        info = await nc.jetstream().stream_info("agent-comms")
        return int(info.state.messages)
    finally:
        await nc.close()


def message_count(url: str) -> int:
    """How many messages the stream holds (one cheap API call, for polling)."""
    return asyncio.run(_message_count(url))
