"""One PostgreSQL ``LISTEN`` connection that comes back after it drops.

PostgreSQL delivers a ``NOTIFY`` only to sessions listening when it commits, so a dropped
connection (a server restart, a failover, an idle-connection killer, ``pg_terminate_backend``)
silently ends the feed. The listener notices the loss, from asyncpg's termination callback or,
for a connection that vanished without a word, from a periodic ``SELECT 1``; it reconnects with
capped exponential backoff until stopped and listens again, then calls ``on_resync``: what was
announced meanwhile is gone for good
(https://www.postgresql.org/docs/current/sql-notify.html), so whoever waits must re-read.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger("gateway.store.postgres.listen")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How the listener waits between reconnection attempts, and how often it probes."""

    first: float = 0.1
    """Seconds before the first attempt after a loss."""
    cap: float = 10.0
    """Longest wait between attempts; the wait doubles up to this."""
    probe_every: float = 15.0
    """Seconds between ``SELECT 1`` probes of a quiet connection (also the probe's timeout)."""
    connect_timeout: float = 10.0
    """Seconds one connection attempt may take."""
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    """The wait itself; a test passes one it controls to hold the listener down."""

    def __post_init__(self) -> None:
        for name in ("first", "cap", "probe_every", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Backoff.{name} must be positive")

    def delays(self) -> Iterator[float]:
        """Endless waits: each between half and all of a doubling delay, capped.

        The random part keeps replicas that lost the server together from all knocking at once.
        """
        delay = self.first
        while True:
            yield random.uniform(delay / 2, delay)
            delay = min(delay * 2, self.cap)


class ChangeListener:
    """Listens on ``channel`` (and ``more`` channels) and keeps listening across lost
    connections.

    Args:
        dsn: The database to connect to.
        channel: The ``NOTIFY`` channel.
        on_payload: Called with each notification's payload.
        on_resync: Called after every reconnection, once listening again: anything may have
            changed while the connection was down.
        backoff: Waits between attempts and the probe interval.
        more: Further channels on the same connection, each with its own payload callback
            (one connection, one loss, one ``on_resync`` for all).
    """

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_payload: Callable[[str], None],
        on_resync: Callable[[], None],
        backoff: Backoff | None = None,
        *,
        more: Mapping[str, Callable[[str], None]] | None = None,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self._handlers = {**(more or {}), channel: on_payload}
        self.backoff = backoff or Backoff()
        self.reconnections = 0
        """How many times the connection was lost and listening resumed."""
        self._on_resync = on_resync
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while a connection is listening (False while reconnecting or stopped)."""
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The server process id of the listening connection, when there is one."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(self) -> None:
        """Connect and listen; a failure here is a start-up failure and raises."""
        if self._task is not None:
            raise RuntimeError("ChangeListener.start() called twice")
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._run(), name="postgres-listener")

    async def stop(self) -> None:
        """Stop reconnecting and close the connection. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("store.listener_failed", exc_info=task.exception())
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                await conn.close(timeout=self.backoff.connect_timeout)
            except Exception:  # already dead or unresponsive: drop it without the goodbye
                conn.terminate()

    async def _connect(self) -> asyncpg.Connection:
        self._wake.clear()  # a loss from here on is this connection's, and wakes the watch
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=self.backoff.connect_timeout
        )
        try:
            conn.add_termination_listener(self._on_terminated)
            for channel in self._handlers:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _on_terminated(self, _conn: object) -> None:
        self._wake.set()

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        self._handlers[channel](str(payload))

    async def _run(self) -> None:
        while True:
            await self._watch()
            log.warning("store.listener_lost", channel=self.channel)
            lost = self._conn
            self._conn = None
            if lost is not None:
                lost.remove_termination_listener(self._on_terminated)
                lost.terminate()
            attempts = await self._reconnect()
            self.reconnections += 1
            log.info("store.listener_recovered", channel=self.channel, attempts=attempts)
            try:
                self._on_resync()
            except Exception:  # the next loss must still be noticed
                log.exception("store.listener_resync_failed", channel=self.channel)

    async def _watch(self) -> None:
        """Return once the connection is lost."""
        while True:
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                async with asyncio.timeout(self.backoff.probe_every):
                    await self._wake.wait()
            except TimeoutError:
                if not await self._alive(conn):
                    return
            self._wake.clear()

    async def _alive(self, conn: asyncpg.Connection) -> bool:
        try:
            async with asyncio.timeout(self.backoff.probe_every):
                await conn.execute("SELECT 1")
        except Exception:  # any failure to answer means this connection can no longer be trusted
            return False
        return True

    async def _reconnect(self) -> int:
        """Connect and listen again, waiting longer after each failure. Returns the attempts."""
        for attempt, delay in enumerate(self.backoff.delays(), start=1):
            await self.backoff.sleep(delay)
            try:
                self._conn = await self._connect()
            except Exception as exc:  # refused, timed out, starting up, bad password: retry all
                # every attempt at debug; every tenth at warning, so a lasting outage shows
                level = log.warning if attempt % 10 == 0 else log.debug
                level("store.listener_retry", attempt=attempt, error=repr(exc))
                continue
            return attempt
        raise AssertionError("Backoff.delays() is endless")
