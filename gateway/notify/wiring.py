"""The notification tasks of a gateway, built from its settings (part of the composition root)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from gateway.config import Settings
from gateway.notify.delivery import OutboxDelivery, OutboxSettings, ReviewerScan
from gateway.notify.reviewers import reviewer_channels
from gateway.notify.webhook import WebhookSender
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.types import Decision


def start_notifications(
    store: ReviewStore,
    s: Settings,
    policies: Callable[[], PolicySet],
    decision_for: Callable[[str, str], Awaitable[Decision]],
) -> tuple[OutboxDelivery, ReviewerScan]:
    """Start delivering the outbox (webhooks, email, chat) and scanning for what reviewers are
    told; ``decision_for(application, id)`` gives a decision as that application reads it."""
    outbox = OutboxSettings(
        interval=s.outbox_interval,
        timeout=s.outbox_timeout,
        backoff_base=s.outbox_backoff_base,
        backoff_max=s.outbox_backoff_max,
        max_age=timedelta(seconds=s.outbox_max_age),
        warn_after=s.outbox_warn_after,
    )
    sender = WebhookSender(decision_for, timeout=s.outbox_timeout)
    delivery = OutboxDelivery(store, policies, sender, outbox, reviewer_channels(s))
    delivery.start()
    scan = ReviewerScan(
        store,
        interval=s.notify_interval,
        sla_share=s.notify_sla_share,
        breach_groups=tuple(g.strip() for g in s.notify_breach_groups.split(",") if g.strip()),
    )
    scan.start()
    return delivery, scan
