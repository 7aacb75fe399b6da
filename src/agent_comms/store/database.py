"""Reaching Postgres: connections, the pool, and which failures are worth waiting out.

Every component connects through here, so connection behaviour (timeouts, retries, the
application name the DBA sees) changes in one file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias, TypeVar

import psycopg
import psycopg_pool
from psycopg import AsyncConnection
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from agent_comms.core.errors import AgentCommsError
from agent_comms.settings import StoreSettings

log = logging.getLogger(__name__)

Conn: TypeAlias = AsyncConnection[Any]
T = TypeVar("T")

TRANSIENT: Final = (psycopg.OperationalError, psycopg_pool.PoolTimeout, OSError, TimeoutError)
"""Failures of the database or the way to it (down, restarting, network), not of the data."""

# Postgres refusing the data itself: retrying the same rows can never succeed.
DATA_REJECTED: Final = (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.InternalError_)


class DatabaseUnavailable(AgentCommsError):
    """Postgres could not be reached within the allowed time."""


def is_transient(exc: BaseException) -> bool:
    # A connection lost mid-statement surfaces as OperationalError; an admin shutdown as
    # AdminShutdown (a subclass); both are the database's state, not the batch's fault.
    return isinstance(exc, TRANSIENT)


def describe(settings: StoreSettings) -> str:
    """The DATABASE_URL without its password, for logs and errors."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(settings.database_url)
    except psycopg.ProgrammingError:
        return "<unparsable DATABASE_URL>"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


async def connect(settings: StoreSettings, *, autocommit: bool = False, name: str = "agent-comms") -> Conn:
    """One connection (for commands like migrate and prune), failing after the connect timeout;
    `name` is its application_name in pg_stat_activity."""
    try:
        return await AsyncConnection.connect(
            settings.database_url,
            autocommit=autocommit,
            connect_timeout=max(1, round(settings.connect_timeout_s)),
            application_name=name,
        )
    except psycopg.ProgrammingError as exc:
        raise AgentCommsError(f"DATABASE_URL is not a valid connection string: {exc}") from exc


async def connect_with_retry(settings: StoreSettings, *, within_s: float, autocommit: bool = False) -> Conn:
    """`connect`, retrying transient failures for up to `within_s` seconds, then DatabaseUnavailable."""

    async def attempt() -> Conn:
        return await connect(settings, autocommit=autocommit)

    try:
        return await retry_transient(attempt, settings, within_s=within_s, what="connect")
    except TRANSIENT as exc:
        raise DatabaseUnavailable(
            f"Postgres at {describe(settings)} unreachable for {within_s:.0f}s: {exc}; "
            "check DATABASE_URL and that the database is up"
        ) from exc


async def retry_transient(
    fn: Callable[[], Awaitable[T]],
    settings: StoreSettings,
    *,
    what: str,
    within_s: float | None = None,
    should_give_up: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `fn`, retrying transient database failures with exponential backoff and jitter.

    Gives up (re-raising the last failure) after `within_s` seconds, or when `should_give_up()`
    turns true; without either it retries forever. Each sleep is logged.
    """
    give_up = should_give_up or (lambda: False)

    def stop(state: RetryCallState) -> bool:
        return give_up() or (within_s is not None and stop_after_delay(within_s)(state))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "database_retry",
            extra={
                "what": what,
                "attempt": state.attempt_number,
                "retry_in_s": round(wait, 2),
                "error": repr(exc),
            },
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(
            multiplier=settings.retry_initial_wait_s,
            max=settings.retry_max_wait_s,
            jitter=settings.retry_initial_wait_s,
        ),
        stop=stop,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover


def create_pool(settings: StoreSettings, *, name: str) -> psycopg_pool.AsyncConnectionPool[Conn]:
    """A pool for short reads and probes, not yet open: `await pool.open()` in the caller's lifecycle.

    Broken connections (Postgres restarted) are discarded when they come back in a failed state,
    so a retry after an outage gets a fresh one.
    """
    return psycopg_pool.AsyncConnectionPool(
        settings.database_url,
        min_size=1,
        max_size=settings.pool_max_size,
        open=False,
        name=name,
        timeout=settings.connect_timeout_s,
        # Give up a failed background connect soon: the pool grows again on the next request, so
        # after an outage the next probe connects at once instead of after a long backoff.
        reconnect_timeout=max(5.0, settings.retry_max_wait_s),
        kwargs={"application_name": name, "connect_timeout": max(1, round(settings.connect_timeout_s))},
    )


async def ping(pool: psycopg_pool.AsyncConnectionPool[Conn], timeout_s: float) -> bool:
    """True when a pooled connection answers `SELECT 1` within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), pool.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")
    except TRANSIENT as exc:
        log.debug("database_ping_failed", extra={"error": repr(exc)})
        return False
    return True
