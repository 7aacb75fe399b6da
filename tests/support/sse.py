"""A small SSE client over a raw socket: what EventSource does, with deadlines for tests.

Raw asyncio streams rather than an HTTP library, so a test can also hold a connection open
without reading it (a stuck client) and control the socket's receive buffer. With `compressed`
it asks for `Content-Encoding: deflate` as browsers do, and inflates what it reads with zlib,
which checks the stream's checksum when it ends (`ended_cleanly`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson


@dataclass
class Event:
    id: int | None
    data: Any
    event: str = "message"


@dataclass
class SseClient:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    comments: int = 0
    _chunked_left: int = 0
    _buffer: bytes = b""
    pending: list[Event] = field(default_factory=list)
    inflater: Any = None
    wire_bytes: int = 0
    plain_bytes: int = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
        timeout_s: float = 10,
        compressed: bool = False,
    ) -> SseClient:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            await loop.sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 24)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
            if compressed:
                lines.append("Accept-Encoding: gzip, deflate, br, zstd")  # what Chromium sends
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            got: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                got[k.strip().lower()] = v.strip()
        client = cls(reader, writer, status, got)
        if got.get("content-encoding") == "deflate":
            client.inflater = zlib.decompressobj()
        return client

    @property
    def ended_cleanly(self) -> bool:
        """A compressed stream ended with its final block and a checksum that matched."""
        return self.inflater is not None and self.inflater.eof and not self.inflater.unused_data

    async def body(self, timeout_s: float = 5) -> bytes:
        """The whole (non-streaming) body, for error responses."""
        async with asyncio.timeout(timeout_s):
            if "content-length" in self.headers:
                return await self.reader.readexactly(int(self.headers["content-length"]))
            out = b""
            while chunk := await self._read_chunk():
                out += chunk
            return out

    async def _read_chunk(self) -> bytes:
        """The next piece of the body, inflated when compressed; b"" at its end."""
        while True:
            raw = await self._read_raw_chunk()
            self.wire_bytes += len(raw)
            plain = raw if self.inflater is None else self.inflater.decompress(raw)
            self.plain_bytes += len(plain)
            if plain or not raw:  # a sync flush ends each compressed piece: nothing is held back
                return plain

    async def _read_raw_chunk(self) -> bytes:
        if self.headers.get("transfer-encoding") != "chunked":
            return await self.reader.read(65536)
        size_line = await self.reader.readline()
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            return b""
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def next_event(self, timeout_s: float = 5) -> Event:
        async with asyncio.timeout(timeout_s):
            while True:
                if self.pending:
                    return self.pending.pop(0)
                chunk = await self._read_chunk()
                if not chunk:
                    raise EOFError("stream ended")
                self._buffer += chunk
                self._parse()

    async def events(self, n: int, timeout_s: float = 10) -> list[Event]:
        out: list[Event] = []
        async with asyncio.timeout(timeout_s):
            while len(out) < n:
                out.append(await self.next_event(timeout_s))
        return out

    async def drain_for(self, seconds: float) -> list[Event]:
        """Every event arriving within `seconds`."""
        out: list[Event] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                out.append(await self.next_event(left))
            except TimeoutError:
                break
        return out

    def _parse(self) -> None:
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            event_id: int | None = None
            data: list[bytes] = []
            name = "message"
            only_comments = True
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    self.comments += 1
                    continue
                only_comments = False
                key, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if key == b"id":
                    event_id = int(value)
                elif key == b"data":
                    data.append(value)
                elif key == b"event":
                    name = value.decode()
            if only_comments or not data:
                continue
            self.pending.append(Event(event_id, orjson.loads(b"\n".join(data)), name))

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)
