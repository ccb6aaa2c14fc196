"""The store's side of maker-checker and of four-eyes on every verdict: the queue and the claim
leave out the requester, the queue tells how many verdicts were given but not which, and an
escalation keeps the stricter review; on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import AnyStore
from store_factories import T0, created_event, decision_task, make_decision

from gateway.errors import PermissionDenied
from gateway.types import AuditDraft, Review, Status, TaskKind, Verdict

NOW = T0 + timedelta(minutes=1)
LEASE = NOW + timedelta(minutes=10)


async def _open(store: AnyStore, **fields: object) -> str:
    d = make_decision(**fields)
    await store.create_decision(d, [created_event(d)], [decision_task(d)])
    return d.id


async def test_queue_leaves_out_items_requested_for_the_viewer(store: AnyStore) -> None:
    """The requester's page and counts lack their own item, whatever the case of the name;
    everyone else's include it."""
    mine = await _open(store, requested_by=" Maria ")
    other = await _open(store)
    for viewer in ("maria", "MARIA"):
        page, _ = await store.queue_page(TaskKind.DECISION, viewer=viewer, now=NOW)
        assert [i.task.decision_id for i in page] == [other]
        assert await store.queue_counts(TaskKind.DECISION, viewer=viewer) == {"credit-limit": 1}
    page, _ = await store.queue_page(TaskKind.DECISION, viewer="bob", now=NOW)
    assert [i.task.decision_id for i in page] == [mine, other]
    assert await store.queue_counts(TaskKind.DECISION, viewer="bob") == {"credit-limit": 2}
    assert await store.queue_counts(TaskKind.DECISION) == {"credit-limit": 2}


async def test_claim_by_the_requester_is_refused_and_leaves_no_lease(store: AnyStore) -> None:
    """A claim by the requester, however it arrives, is refused in the claim's transaction."""
    did = await _open(store, requested_by="maria")
    with pytest.raises(PermissionDenied, match="maker-checker"):
        await store.claim_task(did, TaskKind.DECISION, "Maria", NOW, LEASE)
    task = await store.open_task(did, TaskKind.DECISION)
    assert task is not None and task.claimed_by is None
    await store.claim_task(did, TaskKind.DECISION, "bob", NOW, LEASE)


async def test_queue_counts_verdicts_of_every_kind(store: AnyStore) -> None:
    """A queue item counts the verdicts given, whichever they were (a rejection too)."""
    did = await _open(store, approvals_needed=2)
    review = Review("ann", "reviewer", Verdict.REJECT, "no", NOW)
    event = AuditDraft(did, "decision.reviewed", "user:ann", {"verdict": "reject"})
    await store.record_review(
        did, review, Status.PENDING_REVIEW, None, event, Status.PENDING_REVIEW, 0
    )
    page, _ = await store.queue_page(TaskKind.DECISION, viewer="bob", now=NOW)
    assert [(i.verdicts, i.approvals_needed) for i in page] == [(1, 2)]


@pytest.mark.parametrize(
    ("before", "target", "after"),
    [
        # (approvals, reject approvals (0: as approvals), blind) before, of the tier, after
        ((1, 1, False), (2, 1, True), (2, 1, True)),
        ((2, 0, True), (2, 1, False), (2, 2, True)),
        ((2, 2, False), (3, 0, False), (3, 3, False)),
    ],
)
async def test_escalation_keeps_the_stricter_review(
    store: AnyStore,
    before: tuple[int, int, bool],
    target: tuple[int, int, bool],
    after: tuple[int, int, bool],
) -> None:
    """Escalating takes the stricter of the decision's and the tier's approvals, rejections
    needed and blindness, never lowering any."""
    did = await _open(
        store, approvals_needed=before[0], reject_approvals_needed=before[1], blind=before[2]
    )
    up = await store.escalate_decision(
        did,
        tier="high",
        tier_rank=1,
        groups=("senior",),
        approvals_needed=target[0],
        reject_approvals_needed=target[1],
        blind=target[2],
        deadline=None,
        reason="sla: escalated",
        event=AuditDraft(did, "decision.escalated", "system", {}),
        now=NOW,
    )
    assert (up.approvals_needed, up.reject_approvals_needed, up.blind) == after
