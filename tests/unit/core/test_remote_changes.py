"""Changes another replica or worker made are fetched only when someone here listens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.notifier import Notifier
from gateway.core.remote_changes import RemoteChanges
from gateway.core.waiting import follow
from gateway.store import SQLiteStore
from gateway.types import Decision
from tests.unit.store.store_factories import created_event, make_decision


class CountingStore(SQLiteStore):
    """The real SQLite store, counting the decision reads made through it."""

    reads = 0

    async def get_decision(self, decision_id: str) -> Decision | None:
        self.reads += 1
        return await super().get_decision(decision_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    s = CountingStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


async def stored(store: SQLiteStore) -> Decision:
    d = make_decision()
    await store.create_decision(d, [created_event(d)], [])
    return d


async def test_a_change_nobody_listens_to_is_not_fetched(store: CountingStore) -> None:
    notifier = Notifier()
    remote = RemoteChanges(store, notifier)
    d = await stored(store)
    with notifier.subscribe("some-other-decision") as other:
        remote.changed(d.id)
        await remote.drained()
    assert store.reads == 0
    assert other.empty()


async def test_a_waiter_here_gets_the_stored_decision(store: CountingStore) -> None:
    notifier = Notifier()
    remote = RemoteChanges(store, notifier)
    d = await stored(store)
    with notifier.subscribe(d.id) as changes:
        remote.changed(d.id)
        got = await asyncio.wait_for(changes.get(), 5)
    assert got == d
    assert store.reads == 1


async def test_a_live_page_gets_every_change(store: CountingStore) -> None:
    notifier = Notifier()
    remote = RemoteChanges(store, notifier)
    d = await stored(store)
    with notifier.subscribe_all() as page:
        remote.changed(d.id)
        got = await asyncio.wait_for(page.get(), 5)
    assert got == d


async def test_a_watch_started_after_an_unfetched_change_reads_it(store: CountingStore) -> None:
    """The change was not fetched (nobody listened); a watch begun afterwards reads the
    decision itself after subscribing, so it misses nothing."""
    notifier = Notifier()
    remote = RemoteChanges(store, notifier)
    d = await stored(store)
    remote.changed(d.id)
    await remote.drained()
    assert store.reads == 0

    async def read() -> Decision:
        found = await store.get_decision(d.id)
        assert found is not None
        return found

    watch = follow(notifier, d.id, read, lambda x: x)
    assert await anext(watch) == d
    await watch.aclose()
