"""Deletes reviewer UI sessions nobody came back to.

A session seen after its expiry, or signed out, is deleted at once by the request that finds it.
One that is simply abandoned would stay in the store for good; this task deletes those rows once
a minute. Every replica may run it: the delete is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.periodic import Periodic
from gateway.store.protocol import SessionStore

__all__ = ["SESSION_PURGE_INTERVAL", "SessionPurger"]

SESSION_PURGE_INTERVAL = 60.0
"""Seconds between purges of expired reviewer UI sessions."""


class SessionPurger:
    """Purges expired sessions from ``store`` at start and every ``interval`` seconds after."""

    def __init__(
        self,
        store: SessionStore,
        *,
        interval: float = SESSION_PURGE_INTERVAL,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._clock = clock
        # A failed purge is logged; the next one deletes what this one left.
        self._loop = Periodic(
            "session-purger", self.purge, interval, failure_event="sessions.purge_failed"
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop purging. Idempotent."""
        await self._loop.stop()

    async def purge(self) -> int:
        """Delete every session past its expiry now; returns how many."""
        return await self._store.purge_sessions(self._clock())
