"""What both stores do the same way around their connections: start and stop, the writer, the
readiness probe, the chain head, and the shared reads (`gateway.store.reads`).

A dialect supplies `_open` and `_close_connections`, the probe's one-row write, and its
`GroupWriter` (built with the function that runs a batch the way that database needs).
"""

from __future__ import annotations

import asyncio
from typing import Self

from gateway.audit.chain import GENESIS
from gateway.store.probe import WriteProbe
from gateway.store.reads import StoreReads
from gateway.store.writer import GroupWriter, StoreStats


class StoreBase(StoreReads):
    """Lifecycle, writer and chain head shared by `SQLiteStore` and `PostgresStore`."""

    def __init__(self, writer: GroupWriter) -> None:
        self._writer = writer
        self._committed_head: tuple[int, str] = (0, GENESIS)
        self._stopping: asyncio.Task[None] | None = None
        self._probe = WriteProbe(self._probe_write)

    @property
    def max_batch(self) -> int:
        return self._writer.max_batch

    @property
    def stats(self) -> StoreStats:
        return self._writer.stats

    async def _open(self) -> None:
        """Connect, apply numbered migrations and load the chain head."""
        raise NotImplementedError

    async def _close_connections(self) -> None:
        """Close whatever `_open` opened, also after it failed half-way."""
        raise NotImplementedError

    async def _probe_write(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        """Connect, apply numbered migrations, load the chain head, start the writer."""
        if self._writer.running or self._stopping is not None:
            raise RuntimeError(f"{type(self).__name__}.start() called twice")
        try:
            await self._open()
        except BaseException:
            await self._close_connections()
            raise
        self._writer.start()

    async def stop(self) -> None:
        """Flush every queued write, then close. Idempotent; later calls raise `StoreClosed`."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        await self._writer.stop()
        await self._close_connections()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _check_running(self) -> None:
        self._writer.check()

    async def probe(self) -> bool:
        """True when a write commits now (at most one probe write a second; see `WriteProbe`)."""
        return await self._probe()

    def _committed(self, head: tuple[int, str]) -> None:
        """A transaction that ended at chain ``head`` committed."""
        if head[0] > self._committed_head[0]:
            self._committed_head = head

    def chain_head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last event this store committed or found at start (another
        replica may have appended since; kept in memory, no I/O)."""
        return self._committed_head
