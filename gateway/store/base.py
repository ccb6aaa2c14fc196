"""What both stores do the same way around their connections: start and stop, the writer, the
readiness probe, the chain head, and the shared reads (`gateway.store.reads`).

A dialect supplies `_open` and `_close_connections`, `_unchained` (a write with no audit event),
and its `GroupWriter` (built with the function that runs a batch the way that database needs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self, TypeVar

from gateway.audit.chain import GENESIS
from gateway.audit.drafts import prepare_draft
from gateway.store import codec
from gateway.store.outbox import OutboxMixin
from gateway.store.outbox_notices import NoticesMixin
from gateway.store.outbox_retention import OutboxRetentionMixin
from gateway.store.probe import PROBE, WriteProbe
from gateway.store.reads import StoreReads
from gateway.store.tx import WriteTx
from gateway.store.writer import Create, GroupWriter, StoreStats
from gateway.types import AuditDraft, Decision, ReviewTask

T = TypeVar("T")


class StoreBase(StoreReads, OutboxMixin, NoticesMixin, OutboxRetentionMixin):
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

    async def _unchained(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(tx)`` as a write that records no audit event."""
        raise NotImplementedError

    async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(tx)`` in the writer's next transaction; see `gateway.store.writer.Call`."""
        result: T = await self._writer.call(fn)
        return result

    async def _probe_write(self) -> None:
        async def write(tx: WriteTx) -> None:
            await tx.execute(PROBE, tx.now)

        await self._write(write)

    async def create_decision(
        self,
        decision: Decision,
        events: Sequence[AuditDraft],
        tasks: Sequence[ReviewTask],
    ) -> tuple[Decision, bool]:
        """Persist a decision with its audit events and review tasks in one transaction.

        Returns ``(decision, True)`` once committed, or ``(existing, False)`` when the
        application already has a decision with this non-empty idempotency key (written by
        any replica, or earlier in the same batch); then nothing of this call is written.
        """
        self._check_running()
        job = Create(
            decision=decision,
            row=codec.decision_row(decision),
            drafts=[prepare_draft(e) for e in events],
            tasks=[codec.task_row(t) for t in tasks],
            fut=asyncio.get_running_loop().create_future(),
        )
        result: tuple[Decision, bool] = await self._writer.submit(job)
        return result

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
