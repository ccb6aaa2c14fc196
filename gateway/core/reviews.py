"""Verdicts on held decisions: approve, reject, override, with four-eyes where the tier asks.

The reviewer UI and any review API call this one service; it records the verdict and its audit
event in one transaction and wakes everyone waiting on the decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.notifier import Notifier
from gateway.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from gateway.store.protocol import Store
from gateway.telemetry import metrics
from gateway.telemetry.spans import span
from gateway.types import Decision, JSONObject, Review, Status, Verdict

log = structlog.get_logger("gateway.reviews")


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A person giving a verdict, as authenticated by the transport."""

    name: str
    role: str


class ReviewService:
    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock

    async def submit(
        self,
        decision_id: str,
        reviewer: Reviewer,
        verdict: Verdict,
        reason: str = "",
        output: JSONObject | None = None,
    ) -> Decision:
        """`_submit` inside a ``verdict`` span (its trace id goes into the audit event)."""
        with span("verdict", decision_id=decision_id, verdict=verdict.value):
            updated = await self._submit(decision_id, reviewer, verdict, reason, output)
        metrics.verdict(
            updated.application,
            updated.tier,
            verdict.value,
            updated.status.value,
            updated.created_at,
            updated.updated_at,
            updated.status.is_final,
        )
        return updated

    async def _submit(
        self,
        decision_id: str,
        reviewer: Reviewer,
        verdict: Verdict,
        reason: str = "",
        output: JSONObject | None = None,
    ) -> Decision:
        """Record one verdict and return the decision as it now stands.

        Raises:
            NotFound: no such decision.
            Conflict: the decision is already final, or changed while this verdict was given.
            InvalidInput: a reject or override without a reason, an override without output.
            PermissionDenied: the same reviewer approving twice where two approvals are needed.
        """
        decision = await self._store.get_decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        if decision.status.is_final:
            raise Conflict(f"decision {decision_id} is already {decision.status.value}")
        reason = reason.strip()
        if verdict is not Verdict.APPROVE and not reason:
            raise InvalidInput("reason", f"a reason is required to {verdict.value}")
        if verdict is Verdict.OVERRIDE and not output:
            raise InvalidInput("output", "an override needs the replacement output")

        new_status, final_output = self._outcome(decision, reviewer, verdict, output)
        now = self._clock()
        review = Review(
            reviewer=reviewer.name,
            role=reviewer.role,
            verdict=verdict,
            reason=reason,
            at=now,
            output=output if verdict is Verdict.OVERRIDE else None,
        )
        event = audit_event(
            EventType.DECISION_REVIEWED,
            decision_id,
            f"user:{reviewer.name}",
            _payload(review, new_status, decision),
            ts=now,
        )
        updated = await self._store.record_review(
            decision_id,
            review,
            new_status,
            final_output,
            event,
            expected=decision.status,
            # Four-eyes: two first approvals given at once both saw no approval; only one may
            # count as the first, the other is refused and sees the first on reload.
            expected_reviews=len(decision.reviews),
        )
        log.info(
            "decision.reviewed",
            decision_id=decision_id,
            reviewer=reviewer.name,
            verdict=verdict.value,
            status=updated.status.value,
        )
        self._notifier.publish(updated)
        return updated

    @staticmethod
    def _outcome(
        decision: Decision, reviewer: Reviewer, verdict: Verdict, output: JSONObject | None
    ) -> tuple[Status, JSONObject | None]:
        if verdict is Verdict.REJECT:
            return Status.REJECTED, None
        if verdict is Verdict.OVERRIDE:
            return Status.OVERRIDDEN, output
        approvers = {r.reviewer for r in decision.reviews if r.verdict is Verdict.APPROVE}
        if reviewer.name in approvers:
            raise PermissionDenied(
                f"{reviewer.name} already approved decision {decision.id}; "
                "a second approval must come from a different reviewer"
            )
        if decision.model_output is None:
            raise InvalidInput(
                "verdict", "the model gave no output to approve; override with an output instead"
            )
        if len(approvers) + 1 >= max(decision.approvals_needed, 1):
            return Status.APPROVED, decision.model_output
        return decision.status, None


def _payload(review: Review, status: Status, decision: Decision) -> dict[str, Any]:
    return {
        "verdict": review.verdict.value,
        "reviewer": review.reviewer,
        "role": review.role,
        "reason": review.reason,
        "status": status.value,
        "approvals": sum(1 for r in decision.reviews if r.verdict is Verdict.APPROVE)
        + (review.verdict is Verdict.APPROVE),
        "approvals_needed": decision.approvals_needed,
        "output": review.output,
    }
