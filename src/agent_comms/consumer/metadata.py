"""What a JetStream message's reply subject says about it (stream sequence, deliveries, pending).

    $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp ns>.<pending>
    $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>
        .<timestamp ns>.<pending>[.<random>]

Parsed by hand: nats-py's `Msg.metadata` builds several objects per message, and the consumer
needs two numbers from it.
"""

from __future__ import annotations

from typing import NamedTuple


class AckMetadata(NamedTuple):
    stream: str
    consumer: str
    delivered: int
    stream_seq: int
    consumer_seq: int
    timestamp_ns: int
    pending: int


def parse_ack_subject(reply: str) -> AckMetadata | None:
    """The metadata in a `$JS.ACK...` reply subject; None for anything else (not from a consumer)."""
    tokens = reply.split(".")
    if len(tokens) < 9 or tokens[0] != "$JS" or tokens[1] != "ACK":
        return None
    # v1 has 9 tokens; v2 (2.9+ servers) inserts domain and account hash and may append a token.
    start = 2 if len(tokens) == 9 else 4
    if len(tokens) not in (9, 11, 12):
        return None
    try:
        return AckMetadata(
            tokens[start],
            tokens[start + 1],
            int(tokens[start + 2]),
            int(tokens[start + 3]),
            int(tokens[start + 4]),
            int(tokens[start + 5]),
            int(tokens[start + 6]),
        )
    except ValueError:
        return None
