"""Two PostgreSQL stores on one database, as two gateway replicas would use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from raw import count, verify_chain
from store_factories import T0, created_event, decision_task, make_decision

from gateway.errors import Conflict
from gateway.store.postgres.store import PostgresStore
from gateway.types import AuditDraft, Review, Status, TaskKind, Verdict


@pytest.fixture
async def replicas(pg_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(pg_dsn), PostgresStore(pg_dsn)
    await asyncio.gather(a.start(), b.start())  # both migrate at once; one does the work
    yield a, b
    await asyncio.gather(a.stop(), b.stop())


async def test_concurrent_writers_append_to_one_chain(
    replicas: tuple[PostgresStore, PostgresStore], pg_dsn: str
) -> None:
    """Creates from two replicas at once make one gapless chain that verifies."""
    a, b = replicas
    calls = []
    for i in range(300):
        d = make_decision()
        store = a if i % 2 else b
        calls.append(store.create_decision(d, [created_event(d)], [decision_task(d)]))
    results = await asyncio.gather(*calls)
    assert all(created for _, created in results)
    result = await verify_chain(pg_dsn)
    assert result.ok, result.reason
    assert result.checked == 300
    assert max(a.chain_head()[0], b.chain_head()[0]) == 300
    assert a.stats.transactions < 150  # group commit still works with the chain lock


async def test_idempotency_key_holds_across_replicas(
    replicas: tuple[PostgresStore, PostgresStore], pg_dsn: str
) -> None:
    """The same key sent to both replicas at once makes one decision."""
    a, b = replicas
    ds = [make_decision(idempotency_key="once") for _ in range(10)]
    results = await asyncio.gather(
        *((a if i % 2 else b).create_decision(d, [created_event(d)], []) for i, d in enumerate(ds))
    )
    assert [created for _, created in results].count(True) == 1
    assert await count(pg_dsn, "decisions") == 1
    assert await count(pg_dsn, "audit_events") == 1


async def test_verdict_on_one_replica_is_announced_to_the_other(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """A review committed through one store reaches the other's change subscribers."""
    a, b = replicas
    seen: asyncio.Queue[str] = asyncio.Queue()
    mine: list[str] = []
    b.subscribe_changes(seen.put_nowait)
    a.subscribe_changes(mine.append)
    d = make_decision()
    await a.create_decision(d, [created_event(d)], [decision_task(d)])
    assert await asyncio.wait_for(seen.get(), 10) == d.id  # a new item for the queues
    review = Review("alice", "reviewer", Verdict.APPROVE, "ok", T0 + timedelta(minutes=1))
    event = AuditDraft(d.id, "decision.reviewed", "user:alice", {})
    await a.record_review(d.id, review, Status.APPROVED, None, event, Status.PENDING_REVIEW)
    assert await asyncio.wait_for(seen.get(), 10) == d.id
    await asyncio.sleep(0.2)
    assert mine == []  # a store never hears its own announcements


async def test_claims_from_two_replicas_never_share_an_item(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    """Reviewers on both replicas claiming the same items: each item has one holder."""
    a, b = replicas
    ids = []
    for _ in range(10):
        d = make_decision()
        await a.create_decision(d, [created_event(d)], [decision_task(d)])
        ids.append(d.id)
    now = T0 + timedelta(minutes=1)

    async def claim(store: PostgresStore, reviewer: str, did: str) -> tuple[str, str] | None:
        try:
            await store.claim_task(did, TaskKind.DECISION, reviewer, now, now + timedelta(hours=1))
        except Conflict:
            return None
        return did, reviewer

    results = await asyncio.gather(
        *(
            claim(store, f"{name}{i}", did)
            for did in ids
            for i in range(4)
            for store, name in ((a, "a"), (b, "b"))
        )
    )
    won = [r for r in results if r is not None]
    assert sorted(did for did, _ in won) == sorted(ids)
    for did, reviewer in won:
        item = await b.open_task(did, TaskKind.DECISION)
        assert item is not None
        assert item.claimed_by == reviewer
