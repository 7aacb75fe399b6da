"""The JetStream names of the contract (stream `agent-comms`, durable `jangar-agent-comms`) and
reading a stream back.

The resources themselves are defined once, in nats/stream.yaml and jangar-consumer/consumer.yaml:
NACK applies them in Kubernetes, `agent-comms nats apply` (nats_apply.py) locally and in tests.
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
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

STREAM_NAME: Final = "agent-comms"
DURABLE_NAME: Final = "jangar-agent-comms"

SEVEN_DAYS_S: Final = 7 * 24 * 3600.0


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
