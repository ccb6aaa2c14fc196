"""The SLA sweeper: what happens to a held decision nobody decided in time.

Every ``interval`` seconds it takes the open decision tasks whose deadline has passed and applies
their tier's ``on_timeout``: ``escalate`` hands the item to the next higher-risk tier that holds
decisions (its groups and SLA, with a fresh deadline; the decision keeps the stricter of its own
and that tier's approvals, rejections needed and blindness); ``approve`` or ``reject``
makes the decision EXPIRED with that outcome. Each step is one audit event, and waiting callers
hear it at once through the notifier.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.notifier import Notifier
from gateway.errors import Conflict, NotFound
from gateway.periodic import Periodic
from gateway.policy import PolicySet
from gateway.store.protocol import ReviewStore
from gateway.types import Decision, ReviewTask

log = structlog.get_logger("gateway.sweeper")


class SlaSweeper:
    def __init__(
        self,
        store: ReviewStore,
        policies: Callable[[], PolicySet],
        notifier: Notifier,
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._policies = policies
        self._notifier = notifier
        self._clock = clock
        # A failing sweep is logged and the next one retries what it left.
        self._loop = Periodic("sla-sweeper", self.sweep, interval, failure_event="sweeper.failed")

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        """Stop sweeping. Idempotent."""
        await self._loop.stop()

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
            policies = self._policies()
            tier = policies.tier(task.tier)
        except NotFound:
            tier = None
        action = tier.on_timeout if tier is not None else None
        target = policies.escalation_target(tier) if tier is not None else None
        if action == "escalate" and target is not None:
            deadline = now + target.sla if target.sla is not None else None
            reason = f"review SLA of tier {task.tier} passed: escalated to {target.name}"
            event = audit_event(
                EventType.DECISION_ESCALATED,
                task.decision_id,
                "system",
                {"from_tier": task.tier, "to_tier": target.name, "groups": target.groups},
                ts=now,
            )
            decision = await self._store.escalate_decision(
                task.decision_id,
                tier=target.name,
                tier_rank=target.rank,
                groups=target.groups,
                approvals_needed=target.approvals,
                reject_approvals_needed=target.reject_approvals,
                blind=target.blind,
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
        event = audit_event(
            EventType.DECISION_EXPIRED,
            task.decision_id,
            "system",
            {"tier": task.tier, "outcome": outcome, "final_output": output},
            ts=now,
        )
        decision = await self._store.expire_decision(task.decision_id, output, reason, event, now)
        log.info("decision.expired", decision_id=task.decision_id, outcome=outcome)
        return decision
