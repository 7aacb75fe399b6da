"""The only `nats.connect()`: servers, name, TLS, credentials, reconnect policy and its logging.

A change to how any component talks to NATS touches this file alone.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Final
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NATS

from agent_comms.settings import NatsSettings

log = logging.getLogger(__name__)

RECONNECT_FOREVER: Final = -1
"""nats-py gives up after 60 attempts (about two minutes) by default; a sidecar must outlive any outage."""

PENDING_BUFFER_BYTES: Final = 1024 * 1024
"""What nats-py may buffer (while reconnecting, and between flushes); beyond it publishes fail
fast and are retried later. 1 MiB rather than 8: the buffer is copied again on flush, and 8 MiB
took the sidecar's peak RSS from 38 to 65 MB in the benchmark with no gain in throughput."""


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """A client TLS context from the CA, cert and key files; None when none is set."""
    if not (settings.tls_ca_file or settings.tls_cert_file):
        return None
    ctx = ssl.create_default_context(cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None)
    if settings.tls_cert_file and settings.tls_key_file:
        ctx.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    return ctx


class Connection:
    """A NATS connection that reconnects forever and tells who waits when it is up.

    `connected` is set while the client is connected and cleared on disconnect, so callers can
    wait for the connection instead of polling it.
    """

    def __init__(self, settings: NatsSettings, *, name: str) -> None:
        self.settings = settings
        self.name = name
        self.nc = NATS()
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.disconnects = 0
        self._closing = False

    async def connect(self) -> NATS:
        """Connect, retrying forever (also when the server is down at start); returns when connected.

        The first connection is retried by this loop, not by nats-py: nats-py's own initial retry
        can swallow a cancellation while it closes a failed socket, and then a sidecar asked to
        stop would hang. Once connected, nats-py reconnects forever on its own.
        """
        attempts = 0
        while True:
            attempts += 1
            nc = NATS()
            try:
                await self._probe()
                await nc.connect(**self._options(initial=True))
            except (OSError, TimeoutError, nats.errors.Error) as exc:
                if attempts == 1:
                    log.warning(
                        "nats_unreachable",
                        extra={"url": self.settings.url, "error": repr(exc), "retry": "forever"},
                    )
                await asyncio.sleep(self.settings.reconnect_wait_s)
                continue
            # From now on a lost connection is nats-py's to re-establish, without a limit.
            nc.options["allow_reconnect"] = True
            self.nc = nc
            break
        self.connected.set()
        log.info(
            "nats_connected",
            extra={"url": self._url(), "max_payload": self.nc.max_payload, "attempts": attempts},
        )
        return self.nc

    async def _probe(self) -> None:
        """Raise OSError unless some server accepts a TCP connection (cancel-safe, unlike nc.connect)."""
        errors: list[str] = []
        for url in self.settings.url.split(","):
            parsed = urlsplit(url.strip() if "://" in url else f"nats://{url.strip()}")
            host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
            try:
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.settings.connect_timeout_s
                )
            except (OSError, TimeoutError) as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            writer.close()
            return
        raise OSError("; ".join(errors))

    def _options(self, *, initial: bool) -> dict[str, Any]:
        s = self.settings
        return {
            "servers": [u.strip() for u in s.url.split(",") if u.strip()],
            "name": self.name,
            "allow_reconnect": not initial,
            "max_reconnect_attempts": RECONNECT_FOREVER,
            "reconnect_time_wait": s.reconnect_wait_s,
            "connect_timeout": s.connect_timeout_s,
            "ping_interval": 5,
            "max_outstanding_pings": 3,
            "pending_size": PENDING_BUFFER_BYTES,
            "tls": tls_context(s),
            "user_credentials": str(s.creds_file) if s.creds_file else None,
            "user": s.user,
            "password": s.password,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }

    def _url(self) -> str:
        url = self.nc.connected_url
        return url.netloc.rsplit("@", 1)[-1] if url else self.settings.url

    async def _on_error(self, exc: Exception) -> None:
        # Called for every failed (re)connect attempt; keep it at debug to avoid a log storm.
        log.debug("nats_error", extra={"error": repr(exc)})

    async def _on_disconnected(self) -> None:
        if self.connected.is_set() and not self._closing:
            self.disconnects += 1
            log.warning("nats_disconnected", extra={"url": self.settings.url})
        self.connected.clear()

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self.connected.set()
        log.info("nats_reconnected", extra={"url": self._url(), "reconnects": self.reconnects})

    async def _on_closed(self) -> None:
        self.connected.clear()
        log.debug("nats_closed")

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close without waiting for a server that is gone: a bounded `close()`."""
        if self.nc.is_closed or (not self.nc.is_connected and not self.nc.is_reconnecting):
            return  # never connected (or already gone): nothing to flush, and close() could wait forever
        self._closing = True
        try:
            await asyncio.wait_for(self.nc.close(), timeout_s)
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("nats_close_incomplete", extra={"error": repr(exc)})
