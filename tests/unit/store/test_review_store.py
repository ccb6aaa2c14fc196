"""The review queue side of the store protocol (queue, claims, SLA, QA, accounts, switches),
on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from conftest import AnyStore
from raw import verify_chain
from store_factories import T0, created_event, decision_task, make_decision

from gateway.errors import Conflict, NotFound
from gateway.types import Account, AuditDraft, Role, Status, SwitchState, TaskKind

NOW = T0 + timedelta(minutes=1)
LEASE = NOW + timedelta(minutes=10)


def _event(decision_id: str, kind: str = "decision.escalated") -> AuditDraft:
    return AuditDraft(decision_id, kind, "system:sla", {"why": kind})


async def _open(store: AnyStore, n: int, **overrides: object) -> list[str]:
    ids = []
    for i in range(n):
        d = make_decision(review_deadline=T0 + timedelta(hours=i + 1), **overrides)
        await store.create_decision(d, [created_event(d)], [decision_task(d)])
        ids.append(d.id)
    return ids


async def test_queue_pages_in_urgency_order_with_cursor(store: AnyStore) -> None:
    """Pages walk the open tasks deadline first, each item once, ending with no cursor."""
    ids = await _open(store, 5)
    seen: list[str] = []
    cursor = None
    while True:
        items, cursor = await store.queue_page(
            TaskKind.DECISION, viewer="alice", now=NOW, after=cursor, limit=2
        )
        seen += [i.task.decision_id for i in items]
        if cursor is None:
            break
    assert seen == ids
    assert await store.queue_counts(TaskKind.DECISION) == {"credit-limit": 5}
    assert await store.queue_counts(TaskKind.DECISION, groups=("other",)) == {}
    assert await store.queue_counts(TaskKind.DECISION, groups=("reviewers",)) == {"credit-limit": 5}


async def test_claims_hide_items_from_others_until_released(store: AnyStore) -> None:
    """A claimed item leaves other reviewers' pages and refuses their claim until released."""
    (did,) = await _open(store, 1)
    await store.claim_task(did, TaskKind.DECISION, "alice", NOW, LEASE)
    await store.claim_task(did, TaskKind.DECISION, "alice", NOW, LEASE)  # renewing is fine
    with pytest.raises(Conflict, match="alice"):
        await store.claim_task(did, TaskKind.DECISION, "bob", NOW, LEASE)
    bob_page, _ = await store.queue_page(TaskKind.DECISION, viewer="bob", now=NOW)
    assert bob_page == []
    item = await store.open_task(did, TaskKind.DECISION)
    assert item is not None
    assert item.claimed_by == "alice"
    assert item.claimed_until == LEASE
    assert await store.release_task(did, TaskKind.DECISION, "bob") is False
    assert await store.release_task(did, TaskKind.DECISION, "alice") is True
    await store.claim_task(did, TaskKind.DECISION, "bob", NOW, LEASE)
    with pytest.raises(NotFound):
        await store.claim_task("missing", TaskKind.DECISION, "bob", NOW, LEASE)


async def test_concurrent_claims_give_each_item_to_one_reviewer(store: AnyStore) -> None:
    """Many reviewers claiming the same items at once: each item goes to exactly one."""
    ids = await _open(store, 5)

    async def claim(reviewer: str, did: str) -> str | None:
        try:
            await store.claim_task(did, TaskKind.DECISION, reviewer, NOW, LEASE)
        except Conflict:
            return None
        return reviewer

    results = await asyncio.gather(*(claim(f"r{r}", did) for did in ids for r in range(8)))
    for n, did in enumerate(ids):
        winners = [w for w in results[n * 8 : (n + 1) * 8] if w is not None]
        assert len(winners) == 1, winners
        item = await store.open_task(did, TaskKind.DECISION)
        assert item is not None
        assert item.claimed_by == winners[0]


async def test_expire_and_escalate_record_events_and_refuse_final(store: AnyStore) -> None:
    """Escalation moves tier and appends a reason; expiry closes the task; both audit."""
    did, other = await _open(store, 2)
    assert [t.decision_id for t in await store.overdue_tasks(T0 + timedelta(hours=5))] == [
        did,
        other,
    ]
    up = await store.escalate_decision(
        did,
        tier="high",
        tier_rank=2,
        groups=("seniors",),
        approvals_needed=2,
        deadline=T0 + timedelta(days=1),
        reason="sla: escalated",
        event=_event(did),
        now=NOW,
    )
    assert up.tier == "high"
    assert up.approvals_needed == 2
    assert up.reasons[-1] == "sla: escalated"
    assert up.reasons[:-1] == make_decision().reasons
    task = await store.open_task(did, TaskKind.DECISION)
    assert task is not None
    assert task.task.groups == ("seniors",)
    gone = await store.expire_decision(
        did, {"limit": 0}, "sla: expired", _event(did, "decision.expired"), NOW
    )
    assert gone.status is Status.EXPIRED
    assert gone.final_output == {"limit": 0}
    assert await store.open_task(did, TaskKind.DECISION) is None
    with pytest.raises(Conflict):
        await store.expire_decision(did, None, "again", _event(did), NOW)
    types = [e.type for e in await store.audit_events_for(did)]
    assert types == ["decision.created", "decision.escalated", "decision.expired"]


async def test_qa_opinion_once(store: AnyStore, location: str) -> None:
    """A QA opinion is recorded once and closes the QA task; a second one conflicts."""
    d = make_decision(status=Status.APPROVED)
    qa = decision_task(d, kind=TaskKind.QA, deadline=None)
    await store.create_decision(d, [created_event(d)], [qa])
    await store.record_qa(
        d.id,
        reviewer="qa1",
        role="senior",
        agree=False,
        reason="too generous",
        at=NOW,
        event=_event(d.id, "decision.qa"),
    )
    with pytest.raises(Conflict):
        await store.record_qa(
            d.id, reviewer="qa2", role="senior", agree=True, reason="", at=NOW, event=_event(d.id)
        )
    assert await store.qa_reviews_for(d.id) == [("qa1", "senior", False, "too generous", NOW)]
    await store.append_event(_event(d.id, "decision.unmasked"))
    assert (await verify_chain(location)).checked == 3


async def test_accounts_and_switches(store: AnyStore) -> None:
    """Accounts are unique by name; switches upsert; both are read back as stored."""
    acct = Account("alice", Role.SENIOR, ("reviewers", "seniors"), "argon2$x", T0)
    await store.add_account(acct, _event("", "account.created"))
    with pytest.raises(Conflict):
        await store.add_account(acct, _event("", "account.created"))
    assert await store.get_account("alice") == acct
    assert await store.get_account("bob") is None
    assert await store.list_accounts() == [acct]
    on = SwitchState("application", "credit-limit", True, "admin", T0, "incident")
    off = SwitchState("application", "credit-limit", False, "admin", NOW, "fixed")
    await store.set_switch(on, _event("", "switch.paused"))
    await store.set_switch(off, _event("", "switch.resumed"))
    assert await store.list_switches() == [off]


async def test_queue_stats_aggregate_open_tasks_per_tier(store: AnyStore) -> None:
    """Queue gauges come from one aggregate: open tasks and the oldest per tier, closed ones out."""
    assert await store.queue_stats(TaskKind.DECISION) == []
    await _open(store, 3, tier="limited", created_at=T0)
    await _open(store, 2, tier="high", created_at=T0 + timedelta(minutes=5))
    stats = sorted(await store.queue_stats(TaskKind.DECISION))
    assert stats == [("high", 2, T0 + timedelta(minutes=5)), ("limited", 3, T0)]
    assert await store.queue_stats(TaskKind.QA) == []
