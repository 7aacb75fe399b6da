"""HPUB frames built from pre-encoded parts and handed to nats-py in batches: the hot path.

`nc.publish(subject, payload, reply=..., headers={...})` re-validates the subject, checks every
header key against a regular expression and re-encodes the header block, for every message; it
was a quarter of the sidecar's CPU in the benchmark. Here the frame
(`HPUB <subject> <reply> <header bytes> <total bytes>\\r\\n<headers><payload>\\r\\n`) is built with
one `%` format from bytes the publisher already has, and a whole batch of frames goes to
nats-py's outgoing buffer in one call, after the same state checks `publish()` makes.

That needs five private members of nats-py's `Client` (`_send_command`, `_flush_pending`,
`_flush_queue`, `_pending_data_size`, `_max_pending_size`). `supported()` checks them once per
connection; without them the sender uses `nc.publish()` instead, message by message, with the
same headers (tests/integration/test_wire.py runs both paths against a real server and compares
what is stored). nats-py is pinned in constraints.txt.
"""

from __future__ import annotations

from typing import Final

import nats.errors
from nats.aio.client import Client as NATS

from agent_comms.core.subjects import CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE, MSG_ID_HEADER

_HEADER_START: Final = f"NATS/1.0\r\n{MSG_ID_HEADER}: ".encode()
_HEADER_END: Final = f"\r\n{CONTENT_TYPE_HEADER}: {JSON_CONTENT_TYPE}\r\n\r\n".encode()
_NEWLINES: Final = str.maketrans({"\r": " ", "\n": " "})

_PRIVATE: Final = (
    "_send_command",
    "_flush_pending",
    "_flush_queue",
    "_pending_data_size",
    "_max_pending_size",
)


def supported(nc: NATS) -> bool:
    """Does this nats-py client have the members `write()` relies on?"""
    return all(hasattr(nc, name) for name in _PRIVATE)


def header_block(msg_id: str) -> bytes:
    """The header block `nc.publish(headers={Nats-Msg-Id: msg_id, Content-Type: json})` sends:
    the value stripped, CR and LF turned into spaces."""
    if "\r" in msg_id or "\n" in msg_id:
        msg_id = msg_id.translate(_NEWLINES)
    return _HEADER_START + msg_id.strip().encode() + _HEADER_END


def frame_head(subject: bytes, reply: bytes, header_len: int, payload_len: int) -> bytes:
    """The `HPUB` line of a frame; the header block, the payload and CRLF follow it."""
    return b"HPUB %b %b %d %d\r\n" % (subject, reply, header_len, header_len + payload_len)


CRLF: Final = b"\r\n"


async def write(nc: NATS, data: bytes, frames: int) -> None:
    """Queue `data` (`frames` complete frames) for sending, as `nc.publish()` queues one.

    Raises what `publish()` raises in the same states: ConnectionClosedError, ConnectionDrainingError,
    and OutboundBufferLimitError while reconnecting with the pending buffer full.
    """
    if nc.is_closed:
        raise nats.errors.ConnectionClosedError
    if nc.is_draining_pubs:
        raise nats.errors.ConnectionDrainingError
    size = len(data)
    if not nc.is_connected and (
        nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size
    ):
        raise nats.errors.OutboundBufferLimitError
    nc.stats["out_msgs"] += frames
    nc.stats["out_bytes"] += size
    # Past the pending limit this flushes and waits for the socket: the sender's backpressure.
    await nc._send_command(data)
    if nc._flush_queue is not None and nc._flush_queue.empty():
        await nc._flush_pending()
