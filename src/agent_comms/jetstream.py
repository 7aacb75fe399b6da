"""The JetStream resources of the contract: stream `agent-comms` and durable `jangar-agent-comms`.

In Kubernetes NACK owns both (nats/stream.yaml, jangar-consumer/consumer.yaml); locally and in
tests they are created from the same values here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import nats.errors
import orjson
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from agent_comms.core.subjects import DEFAULT_PREFIX, stream_subjects

STREAM_NAME: Final = "agent-comms"
DURABLE_NAME: Final = "jangar-agent-comms"

SEVEN_DAYS_S: Final = 7 * 24 * 3600.0


def stream_config(
    *,
    prefix: str = DEFAULT_PREFIX,
    duplicate_window_s: float = 120.0,
    replicas: int = 1,
    max_bytes: int = 8 * 1024**3,
    max_msg_size: int | None = None,
) -> StreamConfig:
    """The contract's stream: limits retention, file storage, 7 days, bounded bytes, a duplicate window."""
    return StreamConfig(
        name=STREAM_NAME,
        subjects=[stream_subjects(prefix)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=SEVEN_DAYS_S,
        max_bytes=max_bytes,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=duplicate_window_s,
        max_msg_size=max_msg_size,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it to `config` if it exists."""
    try:
        await js.stream_info(config.name or STREAM_NAME)
    except NotFoundError:
        await js.add_stream(config)
        return
    await js.update_stream(config)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as the stream stores it (for inspection: the demo and the tests)."""

    seq: int
    subject: str
    msg_id: str
    body: dict[str, Any]


async def read_all(
    js: JetStreamContext, stream: str = STREAM_NAME, *, batch: int = 1000
) -> list[StoredMessage]:
    """Every message in the stream, in stream order, through an ephemeral pull consumer (no acks)."""
    info = await js.stream_info(stream)
    total = info.state.messages
    out: list[StoredMessage] = []
    if total == 0:
        return out
    sub = await js.pull_subscribe(
        "",
        durable=None,
        stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    try:
        while len(out) < total:
            try:
                msgs = await sub.fetch(batch, timeout=2)
            except nats.errors.TimeoutError:
                break
            for m in msgs:
                body = orjson.loads(m.data)
                msg_id = (m.headers or {}).get("Nats-Msg-Id", "")
                out.append(StoredMessage(m.metadata.sequence.stream, m.subject, msg_id, body))
    finally:
        await sub.unsubscribe()
    return out
