"""Real servers for integration tests: each test gets its own nats-server (free port, own store)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from agent_comms.embedded import EmbeddedNats
from agent_comms.jetstream import ensure_stream, stream_config


def create_stream(url: str, *, duplicate_window_s: float = 120.0) -> None:
    async def go() -> None:
        nc = await nats.connect(url)
        try:
            await ensure_stream(nc.jetstream(), stream_config(duplicate_window_s=duplicate_window_s))
        finally:
            await nc.close()

    asyncio.run(go())


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A running nats-server with the contract's stream (2-minute duplicate window)."""
    server = EmbeddedNats(tmp_path / "nats").start()
    create_stream(server.url)
    yield server
    server.kill()


@pytest.fixture
def watch_dir(tmp_path: Path) -> Path:
    d = tmp_path / "workspace"
    d.mkdir()
    return d
