"""The outbox in the store: queued with the change that causes it, claimed once, retried,
dead-lettered and re-sent; on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.audit.events import EventType, event
from gateway.errors import FailedPrecondition, NotFound
from gateway.modelrisk.record import ModelKey
from gateway.notify.delivery import retry_delay
from gateway.store.protocol import ReviewStore
from gateway.types import (
    AuditDraft,
    Decision,
    ModelRef,
    Review,
    ReviewTask,
    Status,
    TaskKind,
    Validation,
    Verdict,
)

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
_n = iter(range(1, 1_000_000))


async def _held(store: ReviewStore) -> Decision:
    did = f"dec-ob-{next(_n):06d}"
    d = Decision(
        id=did,
        application="credit-limit",
        tier="limited",
        status=Status.PENDING_REVIEW,
        input={"amount": 1200},
        model=ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED),
        model_output={"score": 0.5},
        final_output=None,
        reasons=("grey zone",),
        rule="route[0]",
        created_at=T0,
        updated_at=T0,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        policy_version="sha256:abc",
        approvals_needed=1,
        review_deadline=T0 + timedelta(hours=1),
    )
    task = ReviewTask(
        did, TaskKind.DECISION, d.application, d.tier, ("reviewers",), d.review_deadline, T0
    )
    created = AuditDraft(did, "decision.created", "app:key1", {"status": "PENDING_REVIEW"})
    await store.create_decision(d, [created], [task])
    return d


async def _approve(store: ReviewStore, d: Decision) -> None:
    review = Review("alice", "reviewer", Verdict.APPROVE, "fine", T0)
    event = AuditDraft(d.id, "review.approved", "user:alice", {})
    await store.record_review(
        d.id, review, Status.APPROVED, d.model_output, event, Status.PENDING_REVIEW
    )


async def test_final_verdict_queues_one_message_with_a_stable_id(store: ReviewStore) -> None:
    """Approving a held decision queues one decision.final message, named after the decision."""
    d = await _held(store)
    assert await store.outbox_list(dead=False, limit=10) == []
    await _approve(store, d)
    (message,) = await store.outbox_list(dead=False, limit=10)
    assert message.id == f"msg_{d.id}_final"
    assert (message.topic, message.application, message.decision_id) == (
        "decision.final",
        "credit-limit",
        d.id,
    )
    assert message.body == {"status": "APPROVED"}


async def test_expiry_and_escalation_queue_messages(store: ReviewStore) -> None:
    """An escalation queues decision.escalated (per tier) and tells the new tier's reviewers by
    email and chat, without the input; an expiry queues decision.final."""
    d = await _held(store)
    esc = AuditDraft(d.id, "decision.escalated", "system:sla", {})
    await store.escalate_decision(
        d.id,
        tier="high",
        tier_rank=0,
        groups=("senior",),
        approvals_needed=2,
        deadline=None,
        reason="sla passed",
        event=esc,
        now=T0,
    )
    expired = AuditDraft(d.id, "decision.expired", "system:sla", {})
    await store.expire_decision(d.id, None, "sla: expired", expired, T0)
    messages = {m.id: m for m in await store.outbox_list(dead=False, limit=10)}
    assert sorted(messages) == [
        f"msg_{d.id}_escalated_high",
        f"msg_{d.id}_escalated_high_chat",
        f"msg_{d.id}_escalated_high_email",
        f"msg_{d.id}_final",
    ]
    notice = messages[f"msg_{d.id}_escalated_high_email"]
    assert (notice.channel, notice.topic) == ("email", "review.escalated")
    assert notice.body["groups"] == ["senior"]
    assert notice.body["items"] == [
        {"decision_id": d.id, "application": "credit-limit", "tier": "high"}
    ]


async def test_claims_give_each_message_to_one_owner(store: ReviewStore) -> None:
    """Owners claiming at once get disjoint messages; a leased message is not claimed again."""
    for _ in range(6):
        await _approve(store, await _held(store))
    now = datetime.now(UTC)
    until = now + timedelta(minutes=1)
    claims = await asyncio.gather(*(store.claim_outbox(f"r{i}", now, until, 4) for i in range(3)))
    ids = [m.id for claim in claims for m in claim]
    assert len(ids) == 6 == len(set(ids))
    assert await store.claim_outbox("late", now, until, 10) == []
    # A lease that ran out hands the message to the next claimant.
    later = until + timedelta(seconds=1)
    assert len(await store.claim_outbox("next", later, later + timedelta(minutes=1), 10)) == 6


async def test_failures_retry_then_dead_letter_then_resend(store: ReviewStore) -> None:
    """A failed attempt waits for its retry; past the window the message is dead-lettered,
    listed, and an admin's re-send makes it due again, audited; so does a re-send of a
    delivered message, while one still being delivered is refused."""
    await _approve(store, await _held(store))
    now = datetime.now(UTC)
    (m,) = await store.claim_outbox("a", now, now + timedelta(minutes=1), 10)
    retry = now + timedelta(seconds=30)
    assert await store.outbox_failed(
        m.id, "a", "HTTP 503", now=now, retry_at=retry, max_age=timedelta(hours=1)
    )
    assert await store.claim_outbox("a", now, now + timedelta(minutes=1), 10) == []
    (again,) = await store.claim_outbox("b", retry, retry + timedelta(minutes=1), 10)
    assert (again.id, again.attempts, again.last_error) == (m.id, 1, "HTTP 503")
    assert not await store.outbox_failed(  # another owner's lease: nothing recorded
        m.id, "a", "x", now=retry, retry_at=retry, max_age=timedelta(hours=1)
    )
    late = retry + timedelta(hours=2)
    assert await store.outbox_failed(
        m.id, "b", "timeout", now=late, retry_at=late, max_age=timedelta(hours=1)
    )
    (dead,) = await store.outbox_list(dead=True, limit=10)
    assert (dead.id, dead.attempts, dead.dead_at is not None) == (m.id, 2, True)
    assert await store.claim_outbox("c", late, late + timedelta(minutes=1), 10) == []
    assert await store.outbox_backlog() == (0, None)

    await store.outbox_resend(m.id, late, _resent(m.id))
    assert await store.outbox_list(dead=True, limit=10) == []
    (resent,) = await store.claim_outbox("c", late, late + timedelta(minutes=1), 10)
    assert resent.since == late
    with pytest.raises(FailedPrecondition, match="still being delivered"):
        await store.outbox_resend(m.id, late, _resent(m.id))
    assert await store.outbox_delivered(m.id, "c", late)
    await store.outbox_resend(m.id, late, _resent(m.id))  # delivered, and lost by its receiver
    (again,) = await store.outbox_list(dead=False, limit=10)
    assert (again.id, again.delivered_at) == (m.id, None)
    with pytest.raises(NotFound):
        await store.outbox_resend("msg_missing", late, _resent("msg_missing"))
    events = [e for e in await store.audit_events(limit=100) if e.type == "outbox.resent"]
    assert [e.payload for e in events] == [{"message_id": m.id}] * 2


def _resent(message_id: str) -> AuditDraft:
    return AuditDraft("", "outbox.resent", "cli:ops", {"message_id": message_id})


def test_retry_delay_grows_exponentially_with_jitter_and_a_cap() -> None:
    """Each retry waits twice as long as the one before, half of it random, up to the cap."""
    low = [retry_delay(n, 2.0, 60.0, lambda a, b: a) for n in range(1, 8)]
    high = [retry_delay(n, 2.0, 60.0, lambda a, b: b) for n in range(1, 8)]
    assert low == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert high == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


async def test_scan_announces_new_items_once_per_group_and_warns_near_the_deadline(
    store: ReviewStore,
) -> None:
    """New items go out in one batch per group; a second scan in the same interval, or a later
    one, tells nobody again; an item past the SLA share gets one warning."""
    first, second = await _held(store), await _held(store)
    interval = timedelta(minutes=1)
    before = T0 + timedelta(minutes=10)  # 1/6 of the hour-long SLA
    assert await store.queue_reviewer_notices(before, interval=interval, sla_share=0.8) == (2, 0)
    assert await store.queue_reviewer_notices(before, interval=interval, sla_share=0.8) == (0, 0)
    pending = await store.outbox_list(dead=False, limit=20)
    batches = [m for m in pending if m.topic == "review.queued"]
    assert sorted(m.channel for m in batches) == ["chat", "email"]
    assert [i["decision_id"] for i in batches[0].body["items"]] == [first.id, second.id]
    assert batches[0].body["groups"] == ["reviewers"]

    near = T0 + timedelta(minutes=50)
    assert await store.queue_reviewer_notices(near, interval=interval, sla_share=0.8) == (0, 2)
    assert await store.queue_reviewer_notices(near, interval=interval, sla_share=0.8) == (0, 0)
    warnings = [
        m for m in await store.outbox_list(dead=False, limit=20) if m.topic != "review.queued"
    ]
    assert sorted(m.id for m in warnings) == sorted(
        f"msg_{d.id}_sla_warning_{c}" for d in (first, second) for c in ("chat", "email")
    )


async def test_a_monitoring_breach_is_told_once_per_opening(store: ReviewStore) -> None:
    """An open breach queues one email and one chat message for the breach groups, once."""
    key = ModelKey("credit-scorer", "credit_v3", "3")
    figures = {"backend": key.backend, "name": key.name, "version": key.version}
    breach = event(EventType.MODEL_BREACH, "", "system", {**figures, "metric": "error_rate"})
    assert await store.record_breach(key, "error_rate", breach) == (True, False)
    args = {"interval": timedelta(minutes=1), "sla_share": 0.8, "breach_groups": ("model-risk",)}
    await store.queue_reviewer_notices(T0, **args)
    await store.queue_reviewer_notices(T0, **args)
    told = [m for m in await store.outbox_list(dead=False, limit=20) if m.topic == "model.breach"]
    assert sorted(m.channel for m in told) == ["chat", "email"]
    assert told[0].body["groups"] == ["model-risk"]
    assert told[0].body["model"] == figures
    assert told[0].body["metric"] == "error_rate"
