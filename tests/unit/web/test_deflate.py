"""Compressed SSE streams: shared segments make valid zlib streams whatever came before them."""

from __future__ import annotations

import random
import zlib

import pytest

from agent_comms.web.deflate import (
    Deflated,
    Plain,
    accepts_deflate,
    adler32_combine,
    segment,
)
from agent_comms.web.live import Batch
from agent_comms.web.rows import sse_event


def batch(first_id: int, n: int) -> Batch:
    return Batch.of(
        [
            (i, sse_event(i, b'{"content":"line %d of the agent log","kind":"log"}' % i))
            for i in range(first_id, first_id + n)
        ]
    )


@pytest.mark.parametrize("seed", range(20))
def test_adler32_combine_equals_the_checksum_of_the_joined_bytes(seed: int) -> None:
    rng = random.Random(seed)
    # Lengths past 65521 and bytes of 0xFF exercise every modulo in the sums.
    a = rng.randbytes(rng.choice([0, 1, 17, 5000, 70_000, 300_000]))
    b = rng.randbytes(rng.choice([0, 1, 17, 5000, 70_000, 300_000])) + b"\xff" * rng.randint(0, 3)
    got = adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
    assert got == zlib.adler32(a + b)


def test_streams_sharing_a_batch_segment_each_decompress_to_their_own_text() -> None:
    shared = batch(10, 200)
    plain_parts: dict[str, list[bytes]] = {"early": [], "late": []}
    wires = {"early": Deflated(), "late": Deflated()}
    out: dict[str, list[bytes]] = {"early": [], "late": []}
    for name, wire in wires.items():
        out[name].append(wire.start())
        prefix = b"retry: 2000\n\n" + (batch(1, 9).joined if name == "early" else b": keepalive\n\n")
        out[name].append(wire.text(prefix))
        plain_parts[name].append(prefix)
        out[name].append(wire.batches([shared], cursor=9))
        plain_parts[name].append(shared.joined)
        out[name].append(wire.end())
    # The same compressed bytes in both streams, compressed once.
    assert shared.deflated() is shared.deflated()
    assert out["early"][2] == out["late"][2] == shared.deflated().data
    for name in wires:
        # zlib.decompress checks the final block and the Adler-32 trailer.
        assert zlib.decompress(b"".join(out[name])) == b"".join(plain_parts[name])


def test_each_piece_inflates_at_once_so_compression_adds_no_delay() -> None:
    wire = Deflated()
    inflater = zlib.decompressobj()
    assert inflater.decompress(wire.start()) == b""
    for piece in (b"retry: 2000\n\n", batch(1, 3).joined, b": keepalive\n\n"):
        assert inflater.decompress(wire.text(piece)) == piece
    live = batch(4, 2)
    assert inflater.decompress(wire.batches([live], cursor=3)) == live.joined
    assert inflater.decompress(wire.end()) == b"" and inflater.eof and not inflater.unused_data


def test_a_batch_seen_in_part_sends_only_the_rest_in_both_encodings() -> None:
    b = batch(1, 6)
    rest = b"".join(event for row_id, event in b.items if row_id > 4)
    assert Plain().batches([b], cursor=4) == rest
    wire = Deflated()
    body = wire.start() + wire.batches([b, batch(7, 2)], cursor=4) + wire.end()
    assert zlib.decompress(body) == rest + batch(7, 2).joined


def test_a_segment_stands_alone_in_a_raw_deflate_stream() -> None:
    text = b"x" * 100_000 + b"tail"
    seg = segment(text)
    assert seg.size == len(text) and seg.adler == zlib.adler32(text)
    assert len(seg.data) < len(text) // 50
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(seg.data) == text


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip, deflate, br, zstd", True),
        ("deflate", True),
        ("DEFLATE;q=0.5", True),
        ("*", True),
        (None, False),
        ("", False),
        ("gzip", False),
        ("identity", False),
        ("deflate;q=0", False),
        ("gzip, deflate;q=0.0, br", False),
        ("deflate;q=0, *", False),
        ("*;q=0", False),
        ("deflate;q=nonsense", False),
        (" gzip ,  deflate ; q=1 ", True),
    ],
)
def test_accept_encoding_is_read_with_its_weights(header: str | None, accepted: bool) -> None:
    assert accepts_deflate(header) is accepted
