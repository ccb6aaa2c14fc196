"""The outbox forgets what it no longer needs after outbox_keep, on both stores: delivered
messages and the notice marks of final decisions go; dead letters and open items stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.notify.retention import OutboxPurger
from gateway.store.outbox_retention import FINAL_STATUSES
from gateway.store.protocol import ReviewStore
from gateway.types import Status
from tests.unit.notify.test_outbox_store import T0, _approve, _held

MINUTE = timedelta(minutes=1)


def test_the_purge_names_every_final_status() -> None:
    assert set(FINAL_STATUSES) == {s.value for s in Status if s.is_final}


async def test_delivered_messages_go_after_keep_dead_and_undelivered_stay(
    store: ReviewStore,
) -> None:
    for _ in range(4):
        await _approve(store, await _held(store))
    now = datetime.now(UTC)
    old, recent, dead, waiting = sorted(
        await store.claim_outbox("a", now, now + MINUTE, 10), key=lambda m: m.id
    )
    long_ago = now - timedelta(days=8)
    assert await store.outbox_delivered(old.id, "a", long_ago)
    assert await store.outbox_delivered(recent.id, "a", now - timedelta(days=1))
    assert await store.outbox_failed(
        dead.id, "a", "HTTP 410", now=now, retry_at=now, max_age=timedelta(0)
    )
    # Left leased and undelivered: `waiting` is still to deliver.

    purger = OutboxPurger(store, timedelta(days=7), clock=lambda: now)
    assert await purger.purge() == (1, 0)
    assert await store.outbox_message(old.id) is None
    for kept in (recent, dead, waiting):
        assert await store.outbox_message(kept.id) is not None, kept.id
    assert [m.id for m in await store.outbox_list(dead=True, limit=10)] == [dead.id]
    assert await purger.purge() == (0, 0)  # idempotent: every replica may run it


async def test_notice_marks_of_final_decisions_go_open_items_stay_told(
    store: ReviewStore,
) -> None:
    """The mark of a decision since approved is deleted; the open one keeps its mark, so the
    next scan does not announce it again."""
    closed, still_open = await _held(store), await _held(store)
    interval = MINUTE
    scan_at = T0 + timedelta(minutes=10)
    assert await store.queue_reviewer_notices(scan_at, interval=interval, sla_share=0.8) == (2, 0)
    await _approve(store, closed)
    found = await store.get_decision(still_open.id)
    assert found is not None and found.status is Status.PENDING_REVIEW

    # Marks are stamped when written (the commit's time): nothing is that old a day ago.
    assert await store.purge_outbox(datetime.now(UTC) - timedelta(days=1)) == (0, 0)
    _, marks = await store.purge_outbox(datetime.now(UTC) + timedelta(seconds=1))
    assert marks == 1
    later = scan_at + 2 * interval
    assert await store.queue_reviewer_notices(later, interval=interval, sla_share=0.8) == (0, 0)
