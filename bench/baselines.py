"""The ceiling: the bench's own messages stored by plain nats-py, every PubAck checked.

`precompute` turns a file into exactly the messages `agent-comms publish` sends, with the
project's own code (splitter, normalizer, body, subjects, headers); the two baselines then only
publish them. Also the stream helpers every measurement uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from agent_comms.jetstream import STREAM_NAME, ensure_stream
from agent_comms.nats_apply import Overrides, stream_from_file

IDENTITY = {
    "WORKFLOW_UID": "3f0c7c1e-5d2a-4d47-9a55-bench0000001",
    "WORKFLOW_NAME": "codex-implementation-bench",
    "WORKFLOW_NAMESPACE": "agents",
    "STEP_ID": "codex-implementation-bench-step-1234567890",
}
"""The run's identity, for the baselines' bodies and the publisher's environment alike."""


@dataclass(frozen=True, slots=True)
class Out:
    subject: str
    payload: bytes
    headers: dict[str, str]


def precompute(path: Path, max_payload: int) -> tuple[list[Out], float]:
    """What `agent-comms publish` sends for a file; bodies differ only in `timestamp` (read time).

    Returns the messages and the seconds spent splitting, normalizing and encoding.
    """
    from agent_comms.core import codex
    from agent_comms.core.codex import FileContext, Normalizer, file_identity, identify_source
    from agent_comms.core.lines import LineSplitter
    from agent_comms.core.message import build_body, encode_copies, rfc3339_now
    from agent_comms.core.redact import Redactor
    from agent_comms.core.subjects import (
        CONTENT_TYPE_HEADER,
        DEFAULT_PREFIX,
        GENERAL_ID_SUFFIX,
        JSON_CONTENT_TYPE,
        MSG_ID_HEADER,
        general_subject,
        run_subject,
    )
    from agent_comms.settings import PublishSettings, identity_from_values

    ident = identity_from_values(
        workflow_uid=IDENTITY["WORKFLOW_UID"],
        workflow_name=IDENTITY["WORKFLOW_NAME"],
        workflow_namespace=IDENTITY["WORKFLOW_NAMESPACE"],
        step_id=IDENTITY["STEP_ID"],
        agent_id=None,
        run_id=None,
        stage=None,
    )
    max_line_bytes = PublishSettings.__dataclass_fields__["max_line_bytes"].default
    read_chunk_bytes = PublishSettings.__dataclass_fields__["read_chunk_bytes"].default
    t0 = time.perf_counter()
    normalizer = Normalizer(Redactor(), max_json_bytes=max_line_bytes)
    kind, _stage = identify_source(path.name)
    file = file_identity(ident, path.name)
    # The file's context as the normalizer defines it (its artifact name), where it can.
    ctx = codex.file_context(path.name) if hasattr(codex, "file_context") else FileContext()
    splitter = LineSplitter(ident.step_id, max_line_bytes=max_line_bytes)
    out: list[Out] = []
    subjects: dict[str, tuple[str, str]] = {}
    with open(path, "rb") as f:
        while chunk := f.read(read_chunk_bytes):
            read_at = rfc3339_now()
            for line in splitter.feed(chunk):
                norm = normalizer.normalize(kind, line, ctx)
                body = build_body(ident, file, line, norm, read_at)
                enc = encode_copies(body, general=True, max_payload=max_payload)
                assert enc.general is not None
                subs = subjects.get(norm.kind)
                if subs is None:
                    run = run_subject(
                        DEFAULT_PREFIX,
                        ident.workflow_namespace,
                        ident.workflow_name,
                        ident.workflow_uid,
                        file.agent_id,
                        norm.kind,
                    )
                    subs = subjects[norm.kind] = (run, general_subject(DEFAULT_PREFIX, norm.kind))
                run_id, general_id = enc.message_id, enc.message_id + GENERAL_ID_SUFFIX
                out.append(
                    Out(subs[0], enc.run, {MSG_ID_HEADER: run_id, CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE})
                )
                out.append(
                    Out(
                        subs[1],
                        enc.general,
                        {MSG_ID_HEADER: general_id, CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE},
                    )
                )
    if splitter.finish() is not None:
        raise RuntimeError("the generated file must end with a newline")
    return out, time.perf_counter() - t0


STREAM_YAML = Path(__file__).resolve().parents[1] / "nats" / "stream.yaml"


# -- the stream ----------------------------------------------------------------------------------


async def fresh_stream(url: str, max_bytes: int = 8 * 1024**3) -> None:
    """Delete and create the contract's stream: empty, with an empty duplicate window."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(STREAM_NAME)
        overrides = Overrides(replicas=1, max_bytes=max_bytes)
        await ensure_stream(js, stream_from_file(STREAM_YAML, overrides))
    finally:
        await nc.close()


async def server_max_payload(url: str) -> int:
    """The limit `encode_copies` fits bodies under, as the publisher learns it on connect."""
    nc = await nats.connect(url)
    try:
        return int(nc.max_payload)
    finally:
        await nc.close()


async def stream_state(url: str) -> tuple[int, int]:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream(timeout=30).stream_info(STREAM_NAME)
        return info.state.messages, info.state.bytes
    finally:
        await nc.close()


async def stored_ids(url: str, expected: int) -> list[str]:
    """Every stored Nats-Msg-Id, through a headers-only pull consumer (no bodies fetched)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=30)
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, headers_only=True
        )
        sub = await js.pull_subscribe("", durable=None, stream=STREAM_NAME, config=config)
        ids: list[str] = []
        while len(ids) < expected:
            try:
                msgs = await sub.fetch(min(10000, expected - len(ids)), timeout=5)
            except nats.errors.TimeoutError:
                break
            ids.extend((m.headers or {}).get("Nats-Msg-Id", "") for m in msgs)
        await sub.unsubscribe()
        return ids
    finally:
        await nc.close()


def verify(url: str, expected: int, label: str) -> tuple[int, int]:
    messages, nbytes = asyncio.run(stream_state(url))
    if messages != expected:
        raise SystemExit(f"{label}: the stream holds {messages} messages, expected {expected}")
    return messages, nbytes


# -- baselines -----------------------------------------------------------------------------------


async def baseline_publish_async(url: str, msgs: list[Out], window: int) -> dict[str, Any]:
    """nats-py's own pipelining: `js.publish_async` with `publish_async_max_pending=window`."""
    nc = await nats.connect(url, name="bench-publish-async")
    try:
        js = nc.jetstream(publish_async_max_pending=window)
        t0 = time.perf_counter()
        futures = [await js.publish_async(m.subject, m.payload, headers=m.headers) for m in msgs]
        errors = duplicates = 0
        for fut in futures:
            try:
                ack = await fut
            except (nats.errors.Error, nats.js.errors.Error):  # error PubAck, no responders
                errors += 1
                continue
            errors += ack.stream != STREAM_NAME
            duplicates += bool(ack.duplicate)
        took = time.perf_counter() - t0
    finally:
        await nc.close()
    return {"window": window, "seconds": took, "msgs_per_s": len(msgs) / took, "errors": errors,
            "duplicates": duplicates}  # fmt: skip


async def baseline_pipelined(url: str, msgs: list[Out], window: int) -> dict[str, Any]:
    """Core `nc.publish` with a reply subject per message; one `<inbox>.*` subscription gets the acks.

    The sender refills the window in batches (from 7/8 full), not on every ack: waking it per
    ack costs a loop turn per message.
    """
    nc = await nats.connect(url, name="bench-pipelined")
    total = len(msgs)
    seen = bytearray(total)
    state = {"in_flight": 0, "received": 0, "errors": 0, "duplicates": 0, "waiting": False}
    space, done = asyncio.Event(), asyncio.Event()
    low_water = window - max(1, window // 8)
    inbox = nc.new_inbox()
    cut = len(inbox) + 1
    loads = orjson.loads

    async def on_ack(msg: Any) -> None:
        n = int(msg.subject[cut:])
        try:
            resp = loads(msg.data) if msg.data else None
        except orjson.JSONDecodeError:
            resp = None
        good = isinstance(resp, dict) and "error" not in resp and "seq" in resp
        if not good or resp.get("stream") != STREAM_NAME or seen[n]:  # type: ignore[union-attr]
            state["errors"] += 1
        elif resp.get("duplicate"):
            state["duplicates"] += 1
        seen[n] = 1
        state["received"] += 1
        state["in_flight"] -= 1
        if state["waiting"] and state["in_flight"] <= low_water:
            state["waiting"] = False
            space.set()
        if state["received"] == total:
            done.set()

    try:
        sub = await nc.subscribe(inbox + ".*", cb=on_ack)
        publish = nc.publish
        t0 = time.perf_counter()
        for n, m in enumerate(msgs):
            if state["in_flight"] >= window:
                space.clear()
                state["waiting"] = True
                await space.wait()
            state["in_flight"] += 1
            await publish(m.subject, m.payload, reply=f"{inbox}.{n}", headers=m.headers)
        await nc.flush()
        await asyncio.wait_for(done.wait(), 60)
        took = time.perf_counter() - t0
        await sub.unsubscribe()
    finally:
        await nc.close()
    errors = state["errors"] + total - sum(seen)
    return {"window": window, "seconds": took, "msgs_per_s": total / took, "errors": errors,
            "duplicates": state["duplicates"]}  # fmt: skip
