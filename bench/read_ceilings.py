"""The read ceilings: the fastest raw Python read-and-ack of the stream, measured two ways.

Each reads the whole stream through a durable of its own, configured exactly like the real one
(jangar-consumer/consumer.yaml; only the name differs), acks every message, and stops the clock
when the server counts every message acknowledged, the finish line the consumer is held to.
Neither decodes a body: they are what Python can do with the stream and nothing else.

- `read_fetch`: nats-py's `pull_subscribe` + `fetch(batch)`, `await msg.ack()` per message.
- `read_pull`: a hand-rolled pull on the core connection: pull requests published to
  `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` with a reply inbox, messages handled in the
  subscription callback, each acked by publishing `+ACK` to its reply subject (not waiting for
  a confirmation, like the consumer), credit topped up as it is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Final

import nats
import orjson
from nats.js.api import ConsumerConfig, ConsumerInfo
from nats.js.client import JetStreamContext

from agent_comms.jetstream import STREAM_NAME
from agent_comms.nats_apply import Overrides, consumer_config, load_resources

ROOT: Final = Path(__file__).resolve().parent.parent
CONSUMER_YAML: Final = ROOT / "jangar-consumer" / "consumer.yaml"
POLL_S: Final = 0.01
"""How often the server is asked whether everything is acknowledged (the clock's resolution)."""


def durable_config(name: str) -> ConsumerConfig:
    """The real durable's configuration from consumer.yaml, under another name."""
    (resource,) = [r for r in load_resources([CONSUMER_YAML]) if r.kind == "Consumer"]
    _stream, config = consumer_config(resource, Overrides(replicas=1))
    return dataclasses.replace(config, durable_name=name, name=name)


async def recreate_durable(js: JetStreamContext, config: ConsumerConfig) -> None:
    """Delete the durable if it exists and create it again: it starts from the stream's first message."""
    assert config.durable_name is not None
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.delete_consumer(STREAM_NAME, config.durable_name)
    await js.add_consumer(STREAM_NAME, config)


async def all_acked(js: JetStreamContext, durable: str, last_seq: int) -> ConsumerInfo | None:
    """The consumer's info once it has delivered up to `last_seq` and nothing awaits an ack."""
    info: ConsumerInfo = await js.consumer_info(STREAM_NAME, durable)
    delivered = info.delivered.stream_seq if info.delivered else 0
    if delivered >= last_seq and not info.num_ack_pending and not info.num_pending:
        return info
    return None


async def wait_all_acked(js: JetStreamContext, durable: str, last_seq: int, timeout_s: float) -> ConsumerInfo:
    deadline = time.monotonic() + timeout_s
    while (info := await all_acked(js, durable, last_seq)) is None:
        if time.monotonic() > deadline:
            now = await js.consumer_info(STREAM_NAME, durable)
            raise SystemExit(
                f"durable {durable}: not everything acknowledged after {timeout_s:.0f}s "
                f"(delivered {now.delivered}, ack pending {now.num_ack_pending}, pending {now.num_pending})"
            )
        await asyncio.sleep(POLL_S)
    return info


async def read_fetch(url: str, total: int, last_seq: int, batch: int) -> dict[str, Any]:
    """nats-py `fetch(batch)` on a fresh durable, `await msg.ack()` for each message."""
    name = "bench-read-fetch"
    nc = await nats.connect(url, name="bench-read-fetch")
    try:
        js = nc.jetstream(timeout=30)
        await recreate_durable(js, durable_config(name))
        sub = await js.pull_subscribe_bind(durable=name, stream=STREAM_NAME)
        received = 0
        t0 = time.perf_counter()
        while received < total:
            try:
                msgs = await sub.fetch(min(batch, total - received), timeout=5)
            except (nats.errors.TimeoutError, TimeoutError):  # fetch() raises either
                break
            for msg in msgs:
                await msg.ack()
            received += len(msgs)
        await nc.flush()
        await wait_all_acked(js, name, last_seq, 30)
        took = time.perf_counter() - t0
        await sub.unsubscribe()
        await js.delete_consumer(STREAM_NAME, name)
    finally:
        await nc.close()
    if received != total:
        raise SystemExit(f"read_fetch: received {received} of {total} messages")
    return {"batch": batch, "seconds": took, "msgs_per_s": total / took, "received": received}


async def read_pull(url: str, total: int, last_seq: int, batch: int, requests: int) -> dict[str, Any]:
    """A hand-rolled pull: `requests` requests of `batch` messages outstanding, acked in the callback.

    A new request goes out whenever a request's worth of credit has been used, so the server
    never runs dry; a status message (408 expired, 409 ...) ends a request and frees its credit.
    """
    name = "bench-read-pull"
    nc = await nats.connect(url, name="bench-read-pull")
    js = nc.jetstream(timeout=30)
    api_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM_NAME}.{name}"
    request = orjson.dumps({"batch": batch, "expires": 5_000_000_000})
    inbox = nc.new_inbox()
    publish = nc.publish
    ack = b"+ACK"
    state = {"received": 0, "asked": 0, "statuses": 0}
    done = asyncio.Event()

    async def ask() -> None:
        state["asked"] += batch
        await publish(api_subject, request, reply=inbox)

    async def on_message(msg: Any) -> None:
        if not msg.data and msg.headers and "Status" in msg.headers:
            # The request ended (expired, or completed with fewer messages): take its credit back.
            state["statuses"] += 1
            state["asked"] = state["received"]
            if state["received"] < total:
                for _ in range(requests):
                    await ask()
            return
        await publish(msg.reply, ack)
        state["received"] += 1
        if state["received"] == total:
            done.set()
        elif state["asked"] - state["received"] <= (requests - 1) * batch:
            await ask()

    try:
        await recreate_durable(js, durable_config(name))
        sub = await nc.subscribe(inbox, cb=on_message, pending_msgs_limit=4 * batch * requests)
        t0 = time.perf_counter()
        for _ in range(requests):
            await ask()
        await asyncio.wait_for(done.wait(), 120)
        await nc.flush()
        await wait_all_acked(js, name, last_seq, 30)
        took = time.perf_counter() - t0
        await sub.unsubscribe()
        await js.delete_consumer(STREAM_NAME, name)
    finally:
        await nc.close()
    return {"batch": batch, "requests": requests, "seconds": took, "msgs_per_s": total / took,
            "received": state["received"], "statuses": state["statuses"]}  # fmt: skip
