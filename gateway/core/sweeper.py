"""The SLA sweeper: what happens to a held decision nobody decided in time.

Every ``interval`` seconds it takes the open decision tasks whose deadline has passed and applies
their tier's ``on_timeout``: ``escalate`` hands the item to the next higher-risk tier that holds
decisions (its groups, approvals and SLA, with a fresh deadline); ``approve`` or ``reject``
makes the decision EXPIRED with that outcome. Each step is one audit event, and waiting callers
hear it at once through the notifier.

The same loop purges expired reviewer UI sessions once a minute: rows nobody came back to
(sessions seen after expiry or signed out are deleted at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gateway.core.notifier import Notifier
from gateway.errors import Conflict, NotFound
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.types import AuditDraft, Decision, ReviewTask

log = structlog.get_logger("gateway.sweeper")
SESSION_PURGE_INTERVAL = 60.0
"""Seconds between purges of expired reviewer UI sessions."""


class SlaSweeper:
    def __init__(
        self,
        store: ReviewStore,
        policies: PolicySet,
        notifier: Notifier,
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policies = policies
        self._notifier = notifier
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sla-sweeper")

    async def stop(self) -> None:
        """Stop sweeping. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        next_purge = 0.0
        while True:
            try:
                await self.sweep()
                if time.monotonic() >= next_purge:
                    await self._store.purge_sessions(self._clock())
                    next_purge = time.monotonic() + SESSION_PURGE_INTERVAL
            except Exception:  # a failing sweep must not end the loop; the next one retries
                log.exception("sweeper.failed")
            await asyncio.sleep(self._interval)

    async def sweep(self) -> list[Decision]:
        """Apply ``on_timeout`` to every overdue item once; returns the changed decisions."""
        changed: list[Decision] = []
        while True:
            tasks = await self._store.overdue_tasks(self._clock(), limit=100)
            for task in tasks:
                try:
                    decision = await self._timeout(task)
                except (Conflict, NotFound):  # decided meanwhile: nothing to do
                    continue
                changed.append(decision)
                self._notifier.publish(decision)
            if len(tasks) < 100:
                return changed

    async def _timeout(self, task: ReviewTask) -> Decision:
        now = self._clock()
        try:
            tier = self._policies.tier(task.tier)
        except NotFound:
            tier = None
        action = tier.on_timeout if tier is not None else None
        target = self._policies.escalation_target(tier) if tier is not None else None
        if action == "escalate" and target is not None:
            deadline = now + target.sla if target.sla is not None else None
            reason = f"review SLA of tier {task.tier} passed: escalated to {target.name}"
            event = AuditDraft(
                decision_id=task.decision_id,
                type="decision.escalated",
                actor="system",
                payload={"from_tier": task.tier, "to_tier": target.name, "groups": target.groups},
                ts=now,
            )
            decision = await self._store.escalate_decision(
                task.decision_id,
                tier=target.name,
                tier_rank=target.rank,
                groups=target.groups,
                approvals_needed=target.approvals,
                deadline=deadline,
                reason=reason,
                event=event,
                now=now,
            )
            log.info("decision.escalated", decision_id=task.decision_id, tier=target.name)
            return decision
        # approve, reject, or a tier the policies no longer define (fail closed: reject)
        outcome = "approve" if action == "approve" else "reject"
        current = await self._store.get_decision(task.decision_id)
        if current is None:
            raise NotFound("decision", task.decision_id)
        output = current.model_output if outcome == "approve" else None
        reason = f"review SLA of tier {task.tier} passed: {outcome} by policy (on_timeout)"
        event = AuditDraft(
            decision_id=task.decision_id,
            type="decision.expired",
            actor="system",
            payload={"tier": task.tier, "outcome": outcome, "final_output": output},
            ts=now,
        )
        decision = await self._store.expire_decision(task.decision_id, output, reason, event, now)
        log.info("decision.expired", decision_id=task.decision_id, outcome=outcome)
        return decision
