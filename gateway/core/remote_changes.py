"""Changes made by other replicas, heard through the store's change feed, told to the callers
and pages waiting in this process (through its `Notifier`)."""

from __future__ import annotations

import asyncio

from gateway.core.notifier import Notifier
from gateway.store import StoreClosed
from gateway.store.protocol import Store


class RemoteChanges:
    """Fetches each decision another replica announced and publishes it here."""

    def __init__(self, store: Store, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier
        self._fetches: set[asyncio.Task[None]] = set()
        self._stopped = False

    def changed(self, decision_id: str) -> None:
        """Another replica changed a decision: wake the callers and pages waiting here.

        Most changes made elsewhere concern nobody here (a replica's own automatic decisions):
        those are not fetched. One listened to is fetched, and published if anyone still
        listens once it arrives."""
        if self._stopped or not self._notifier.listening(decision_id):
            return
        task = asyncio.create_task(self._publish(decision_id))
        self._fetches.add(task)
        task.add_done_callback(self._fetches.discard)

    def resync(self) -> None:
        """Changes made elsewhere may have gone unheard: re-read each decision waited on here,
        and have live queue pages fetch again."""
        for decision_id in self._notifier.waited_on():
            self.changed(decision_id)
        self._notifier.refresh_all()

    def close(self) -> None:
        """Take no more announcements (shutting down)."""
        self._stopped = True

    async def drained(self) -> None:
        """Wait for the fetches under way (after `close`)."""
        if self._fetches:
            await asyncio.wait(self._fetches)

    async def _publish(self, decision_id: str) -> None:
        try:
            decision = await self._store.get_decision(decision_id)
        except StoreClosed:  # shutting down; waiters are answered by notifier.close()
            return
        if decision is not None and not self._stopped:
            self._notifier.publish(decision)
