"""Test controls for the PostgreSQL change listener: hold its reconnection, end its session."""

from __future__ import annotations

import asyncio

import asyncpg

from gateway.store.postgres.store import PostgresStore


class Gate:
    """A `Backoff.sleep` that holds every reconnection attempt until the test opens it."""

    def __init__(self) -> None:
        self.holding = asyncio.Event()
        self.opened = asyncio.Event()

    async def sleep(self, _delay: float) -> None:
        self.holding.set()
        await self.opened.wait()


async def terminate_listener(dsn: str, store: PostgresStore) -> None:
    """End the listener's server process from another connection, as an administrator would."""
    pid = store.listener.backend_pid
    assert pid is not None
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid) is True
    finally:
        await conn.close()
