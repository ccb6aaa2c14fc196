"""The outbox's delivery task: claims due messages, sends them, records the outcome.

Runs on every replica. Each run claims a few due messages with a lease (`gateway.store.outbox`:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the one writer on SQLite), so each message is sent by
one replica at a time; a replica that dies holding a lease only delays its messages until the
lease ends. A failed attempt is retried after an exponential backoff with jitter (so receivers
coming back are not hit by every replica at once) until the message's delivery window
(``max_age``, 24 h by default) has passed; then it is dead-lettered, listed and re-sent by an
admin (``hitl-gateway outbox``). Delivery is at least once: a crash after the receiver answered
but before the outcome is recorded sends the message again, with the same ``webhook-id``.

A message with nowhere to go when its turn comes (its application names no webhook endpoint;
no SMTP server or no address for the group; no chat URL) is recorded as done without being
sent: the store queues every final and escalated decision, the configuration in force decides
who hears of it. Reviewer messages (`gateway.notify.reviewers`) are queued by the store's
transactions (escalations) and by `ReviewerScan` (new items, SLA warnings).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gateway.notify import metrics
from gateway.notify.reviewers import ReviewerChannels
from gateway.notify.webhook import DeliveryFailed, WebhookSender
from gateway.periodic import Periodic
from gateway.policy import PolicySet
from gateway.store.outbox import WEBHOOK, OutboxMessage, OutboxStore

__all__ = ["OutboxDelivery", "OutboxSettings", "ReviewerScan", "retry_delay"]

log = structlog.get_logger("gateway.notify")


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """How the outbox is delivered (from `gateway.config.Settings`, ``outbox_*``)."""

    interval: float = 1.0
    """Seconds between looks for due messages."""
    batch: int = 20
    """Most messages one replica claims (and sends at once) per look."""
    timeout: float = 10.0
    """Seconds one attempt may take."""
    backoff_base: float = 2.0
    """Seconds before the first retry; each further retry waits twice as long."""
    backoff_max: float = 900.0
    """Longest wait between two attempts."""
    max_age: timedelta = timedelta(hours=24)
    """How long a message is retried before it is dead-lettered."""
    warn_after: float = 300.0
    """A message waiting longer than this many seconds is logged as a warning. Not a failed
    readiness check: a receiver that is down must not take the gateway's replicas out of
    service (which would stop decisions); the gauge ``hitl_outbox_oldest_pending_seconds``
    is there to alert on."""

    @property
    def lease(self) -> timedelta:
        """How long a claim keeps other replicas away: longer than an attempt can take."""
        return timedelta(seconds=self.timeout * 3 + self.interval)


def retry_delay(
    attempts: int, base: float, cap: float, rng: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped,
    with "equal jitter" (half fixed, half random) so retries of many messages spread out."""
    delay = min(cap, base * 2.0 ** max(attempts - 1, 0))
    return delay / 2 + rng(0.0, delay / 2)


class OutboxDelivery:
    """Sends the outbox's messages until stopped (see the module docstring).

    Args:
        store: The outbox.
        policies: The policy set in force (read at each send: endpoints may change live).
        sender: Sends one message to its application's endpoint.
        settings: Timing and limits.
        reviewers: Sends reviewer messages (email, chat); None: they are recorded as done.
    """

    def __init__(
        self,
        store: OutboxStore,
        policies: Callable[[], PolicySet],
        sender: WebhookSender,
        settings: OutboxSettings,
        reviewers: ReviewerChannels | None = None,
    ) -> None:
        self._store = store
        self._policies = policies
        self._sender = sender
        self._reviewers = reviewers
        self._settings = settings
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This replica's name on the leases it takes."""
        self._loop = Periodic(
            "outbox-delivery", self.run_once, settings.interval, failure_event="outbox_run_failed"
        )
        self._last_backlog = 0.0
        self._backlog: tuple[int, float] = (0, 0.0)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop looking for messages (an attempt in flight is cancelled; its lease runs out
        and another run sends it again). Idempotent."""
        await self._loop.stop()
        await self._sender.aclose()
        if self._reviewers is not None:
            await self._reviewers.aclose()

    async def run_once(self) -> int:
        """Claim due messages and attempt each once, concurrently; how many were delivered."""
        s = self._settings
        now = datetime.now(UTC)
        claimed = await self._store.claim_outbox(self.owner, now, now + s.lease, s.batch)
        # return_exceptions: a message whose outcome could not be recorded (the store away for
        # a moment) must not leave the others' attempts running unawaited; its lease runs out
        # and the next run sends it again.
        done = await asyncio.gather(*(self._attempt(m) for m in claimed), return_exceptions=True)
        for message, outcome in zip(claimed, done, strict=True):
            if isinstance(outcome, BaseException):
                log.error("outbox_attempt_failed", message_id=message.id, error=repr(outcome))
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_backlog >= min(10.0, s.warn_after):
            self._last_backlog = loop_now
            await self._watch_backlog()
        return sum(outcome is True for outcome in done)

    async def _attempt(self, message: OutboxMessage) -> bool:
        send = self._sending(message)
        if send is None:  # nobody to tell (see the module docstring)
            await self._store.outbox_delivered(message.id, self.owner, datetime.now(UTC))
            return False
        try:
            await send
        except Exception as exc:
            await self._failed(message, exc)
            return False
        at = datetime.now(UTC)
        await self._store.outbox_delivered(message.id, self.owner, at)
        metrics.SENT.labels(message.channel, message.topic).inc()
        metrics.LATENCY.labels(message.channel).observe((at - message.created_at).total_seconds())
        log.info("outbox_delivered", message_id=message.id, attempts=message.attempts + 1)
        return True

    def _sending(self, message: OutboxMessage) -> Coroutine[Any, Any, None] | None:
        """The send of ``message`` on its channel, or None when it has nowhere to go."""
        if message.channel == WEBHOOK:
            app = self._policies().applications.get(message.application)
            endpoint = app.webhook if app is not None else None
            if endpoint is None:
                return None
            own = message.body.get("callback_url")
            if isinstance(own, str) and own:
                # The Decide's own URL (allowed by callback_hosts when it was made), signed
                # with the application's secret.
                endpoint = dataclasses.replace(endpoint, url=own)
            return self._sender.send(message, endpoint)
        reviewers = self._reviewers
        if reviewers is None or not reviewers.wants(message):
            return None
        return reviewers.send(message)

    async def _failed(self, message: OutboxMessage, exc: Exception) -> None:
        s = self._settings
        now = datetime.now(UTC)
        attempts = message.attempts + 1
        error = str(exc) if isinstance(exc, DeliveryFailed) else f"{type(exc).__name__}: {exc}"
        retry_at = now + timedelta(seconds=retry_delay(attempts, s.backoff_base, s.backoff_max))
        await self._store.outbox_failed(
            message.id, self.owner, error, now=now, retry_at=retry_at, max_age=s.max_age
        )
        labels = (message.channel, message.topic)
        if now - message.since >= s.max_age:
            metrics.DEAD.labels(*labels).inc()
            log.warning("outbox_dead", message_id=message.id, attempts=attempts, error=error)
        else:
            metrics.RETRIED.labels(*labels).inc()
            log.info("outbox_retry", message_id=message.id, attempts=attempts, error=error)

    async def _watch_backlog(self) -> None:
        pending, oldest = await self._store.outbox_backlog()
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        metrics.PENDING.set(pending)
        metrics.OLDEST_PENDING.set(age)
        self._backlog = (pending, age)
        if age > self._settings.warn_after:
            log.warning("outbox_backlog_old", pending=pending, oldest_seconds=round(age))

    def warning(self) -> str | None:
        """Why readiness should warn: the oldest undelivered message is older than
        ``warn_after`` (as last measured), or None. A warning, not a failure: decisions do not
        depend on delivery, and failing readiness would stop them too."""
        pending, age = self._backlog
        if age <= self._settings.warn_after:
            return None
        return f"{pending} messages undelivered, the oldest for {age:.0f} s"


class ReviewerScan:
    """Queues reviewer notices found in the store, every ``interval`` seconds
    (`gateway.store.outbox_notices`): new items (one batch per group and interval), items past
    ``sla_share`` of their SLA, and monitoring breaches (to ``breach_groups``)."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        interval: float,
        sla_share: float,
        breach_groups: tuple[str, ...] = (),
    ) -> None:
        self._store = store
        self._interval = timedelta(seconds=interval)
        self._share = sla_share
        self._breach_groups = breach_groups
        self._loop = Periodic(
            "reviewer-scan", self.run_once, interval, failure_event="reviewer_scan_failed"
        )

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> tuple[int, int]:
        """``(items announced, items warned)`` by this run."""
        return await self._store.queue_reviewer_notices(
            datetime.now(UTC),
            interval=self._interval,
            sla_share=self._share,
            breach_groups=self._breach_groups,
        )
