"""Binding the durable consumer: wait until NACK (or `agent-comms nats apply`) has created it.

`agent-comms consume` never creates or changes the consumer: its configuration is the
deployment's, reviewed in jangar-consumer/consumer.yaml. Until it exists (and is a pull
consumer with explicit acks), /readyz fails and the log names the fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.js.api import AckPolicy, ConsumerInfo
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from agent_comms.consumer.health import Health
from agent_comms.consumer.metrics import IngestMetrics
from agent_comms.settings import ConsumeSettings

log = logging.getLogger(__name__)


def missing_consumer_fix(settings: ConsumeSettings) -> str:
    return (
        "apply the NACK resources (nats/stream.yaml, jangar-consumer/consumer.yaml), or locally run "
        "`agent-comms nats apply nats/stream.yaml jangar-consumer/consumer.yaml`; "
        f"re-checking every {settings.bind_retry_s:g}s"
    )


def misconfiguration(info: ConsumerInfo, settings: ConsumeSettings) -> str:
    """What makes an existing consumer unusable for ingest, with the fix; "" when it is fine."""
    config = info.config
    where = f"consumer {settings.durable} on stream {settings.stream}"
    if config.deliver_subject:
        return f"{where} is a push consumer; remove deliverSubject from jangar-consumer/consumer.yaml"
    if config.ack_policy != AckPolicy.EXPLICIT:
        return f"{where} has ack policy {config.ack_policy}; set ackPolicy: explicit in consumer.yaml"
    return ""


async def bind_consumer(
    js: JetStreamContext,
    settings: ConsumeSettings,
    health: Health,
    metrics: IngestMetrics,
    stop: asyncio.Event,
    sleep: Callable[[float], Awaitable[None]],
) -> ConsumerInfo | None:
    """The consumer's info once it exists and is usable; None if `stop` came first.

    Re-checks every `bind_retry_s`, logging the problem about once a minute.
    """
    s = settings
    attempts = 0
    every = max(1, round(60 / s.bind_retry_s))
    while not stop.is_set():
        attempts += 1
        try:
            info: ConsumerInfo = await js.consumer_info(s.stream, s.durable, timeout=s.nats.connect_timeout_s)
        except NotFoundError as exc:
            where = f"consumer {s.durable} on stream {s.stream}"
            problem = f"{where} does not exist ({exc.description}): {missing_consumer_fix(s)}"
        except (TimeoutError, nats.errors.Error) as exc:
            problem = f"cannot look up consumer {s.durable} on stream {s.stream}: {exc!r}"
        else:
            problem = misconfiguration(info, s)
            if not problem:
                health.set("consumer_bound", True)
                metrics.lag.set(info.num_pending or 0)
                log.info(
                    "consumer_bound",
                    extra={
                        "stream": s.stream,
                        "consumer": s.durable,
                        "num_pending": info.num_pending,
                        "ack_wait_s": info.config.ack_wait,
                        "max_deliver": info.config.max_deliver,
                        "max_ack_pending": info.config.max_ack_pending,
                    },
                )
                return info
        health.set("consumer_bound", False, problem)
        if attempts == 1 or attempts % every == 0:
            log.error("consumer_not_bound", extra={"problem": problem, "attempts": attempts})
        await sleep(s.bind_retry_s)
    return None
