"""Deletes delivered outbox messages and spent notice marks once they are ``outbox_keep`` old
(`gateway.store.outbox_retention` says what goes). Every replica may run it: the deletes are
idempotent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog

from gateway.periodic import Periodic

log = structlog.get_logger("gateway.notify")

OUTBOX_PURGE_INTERVAL = 3600.0
"""Seconds between purges."""


class PurgeStore(Protocol):
    async def purge_outbox(self, before: datetime) -> tuple[int, int]: ...


class OutboxPurger:
    """Purges at start and every ``interval`` seconds after."""

    def __init__(
        self,
        store: PurgeStore,
        keep: timedelta,
        *,
        interval: float = OUTBOX_PURGE_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keep = keep
        self._clock = clock
        # A failed purge is logged; the next one deletes what this one left.
        self._loop = Periodic(
            "outbox-purger", self.purge, interval, failure_event="outbox.purge_failed"
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop purging. Idempotent."""
        await self._loop.stop()

    async def purge(self) -> tuple[int, int]:
        """Delete what is older than ``keep`` now; ``(messages, marks)`` deleted."""
        messages, marks = await self._store.purge_outbox(self._clock() - self._keep)
        if messages or marks:
            log.info("outbox.purged", messages=messages, marks=marks)
        return messages, marks
