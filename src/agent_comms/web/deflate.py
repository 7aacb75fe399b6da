"""Compressed SSE: each batch of live rows is compressed once, and every client gets those bytes.

`Content-Encoding: deflate` is a zlib stream (RFC 1950): a 2-byte header, deflate blocks
(RFC 1951), then the Adler-32 of all the uncompressed bytes. A stream here is a sequence of
*segments*, each compressed by a fresh compressor and ended with a sync flush: a segment refers to
nothing before it and ends on a byte boundary, so any sequence of segments is valid deflate. A
batch of live rows is compressed once and the same bytes go to every client wanting it, whatever
each client received before (history, heartbeats, other batches). A client's checksum is combined
from its segments' checksums (Adler-32 sums combine in constant time): nothing is hashed per client.

Why deflate and not gzip: gzip's trailer is a CRC-32, which has no cheap combination in the
standard library. Every browser, curl and httpx read deflate; clients that do not ask for it get
plain text.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

LEVEL: Final = 1
"""zlib's fastest level: SSE rows (repetitive JSON) still shrink 10-16x, at over 400 MB/s."""
ZLIB_HEADER: Final = b"\x78\x01"
"""CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (fastest level; 0x7801 % 31 == 0)."""
FINAL_BLOCK: Final = b"\x03\x00"
"""An empty final block (fixed Huffman codes): closes the deflate data before the checksum."""
ADLER_MOD: Final = 65521


@dataclass(frozen=True, slots=True)
class Segment:
    """Compressed bytes that stand alone in any deflate stream, with what a checksum needs."""

    data: bytes
    adler: int
    """Adler-32 of the uncompressed bytes."""
    size: int
    """Length of the uncompressed bytes."""


def segment(plain: bytes) -> Segment:
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return Segment(data, zlib.adler32(plain), len(plain))


def adler32_combine(first: int, second: int, second_size: int) -> int:
    """Adler-32 of A+B from Adler-32(A), Adler-32(B) and len(B).

    Adler-32 is two sums mod 65521: a = 1 + the bytes, b = the sum of every running a. Appending
    B adds B's bytes to a (its own a counts the 1 again), and to b it adds B's own b plus, for
    each of B's bytes, the part of the running a that A contributed (a(A) - 1).
    """
    a1, b1 = first & 0xFFFF, first >> 16
    a2, b2 = second & 0xFFFF, second >> 16
    a = (a1 + a2 - 1) % ADLER_MOD
    b = (b1 + b2 + second_size * (a1 - 1)) % ADLER_MOD
    return (b << 16) | a


def accepts_deflate(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header (RFC 9110 12.5.3) allows `deflate`."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        weight = 1.0
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.lower()] = weight
    return weights.get("deflate", weights.get("*", 0.0)) > 0


class Shared(Protocol):
    """A batch of live rows that several clients get: its events joined, and compressed once."""

    @property
    def first_id(self) -> int: ...

    def after(self, cursor: int) -> bytes: ...

    def deflated(self) -> Segment: ...


class Plain:
    """An uncompressed event stream."""

    name: Final = "identity"
    headers: Final[dict[str, str]] = {}

    def start(self) -> bytes:
        return b""

    def text(self, data: bytes) -> bytes:
        return data

    def batches(self, batches: Iterable[Shared], cursor: int) -> bytes:
        return b"".join(b.after(cursor) for b in batches)

    def end(self) -> bytes:
        return b""


class Deflated:
    """One client's zlib stream: `start()` first, then segments, `end()` when the stream ends."""

    name: Final = "deflate"
    headers: Final[dict[str, str]] = {"Content-Encoding": "deflate"}

    def __init__(self) -> None:
        self.adler = 1

    def start(self) -> bytes:
        return ZLIB_HEADER

    def text(self, data: bytes) -> bytes:
        return self._add(segment(data))

    def batches(self, batches: Iterable[Shared], cursor: int) -> bytes:
        # A batch the client has partly seen (rare: it joined during the read) is its own segment.
        return b"".join(
            self._add(b.deflated() if b.first_id > cursor else segment(b.after(cursor))) for b in batches
        )

    def end(self) -> bytes:
        return FINAL_BLOCK + struct.pack(">I", self.adler)

    def _add(self, seg: Segment) -> bytes:
        self.adler = adler32_combine(self.adler, seg.adler, seg.size)
        return seg.data


Wire = Plain | Deflated
