"""Verdicts on held decisions: approve, reject, override, counted in distinct people.

The reviewer UI and any review API call this one service; it records the verdict and its audit
event in one transaction and wakes everyone waiting on the decision.

**Who may give a verdict.** One person gives at most one verdict on a decision, whatever they
give (approve, reject or override): a second one is refused, so nobody counts twice. The person
on whose behalf the application asked (``decision.requested_by``, the maker) never gives one
(maker-checker; `is_requester` compares names ignoring case and surrounding spaces, so an SSO
identity spelled differently by the application is still the same person).

**When a decision is final: the latest run of agreeing verdicts.** Each verdict proposes an
outcome: approve (the model's output), reject, or override with a given output (two overrides
propose the same outcome only when their outputs are equal). Verdicts are read in the order
they were given; the *run* is the latest verdict together with the unbroken sequence of
verdicts just before it that propose the same outcome. The decision becomes final, with that
outcome, as soon as the run holds as many people as the outcome needs: ``approvals_needed`` for
an approval or an override, ``reject_approvals_needed`` for a rejection (0 on older rows: as
``approvals_needed``; a tier with ``reject_approvals: 1`` lets one person stop what two must
allow). A verdict that proposes something else starts a new run: agreement is reset, and
verdicts given before it no longer count.

Why the latest run rather than, say, counting people per proposal over all verdicts: an
objection is never outvoted by agreement given before it was raised. Whoever carries the
outcome agreed with nothing contrary after them, and (unless the tier is ``blind``) each of
them saw every objection before theirs. It is also what a bank's four-eyes rule says in plain
words: the last N people who looked agree, and it is simple to audit: each verdict's audit
event says what was proposed, how many agree on it (the run) and how many are needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.notifier import Notifier
from gateway.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from gateway.people import same_person
from gateway.store.protocol import Store
from gateway.telemetry import metrics
from gateway.telemetry.spans import span
from gateway.types import Decision, JSONObject, Review, Status, Verdict

log = structlog.get_logger("gateway.reviews")

_OUTCOME = {
    Verdict.APPROVE: Status.APPROVED,
    Verdict.REJECT: Status.REJECTED,
    Verdict.OVERRIDE: Status.OVERRIDDEN,
}


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A person giving a verdict, as authenticated by the transport."""

    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Agreement:
    """Where the verdicts on a decision stand: the latest run of agreeing verdicts."""

    verdict: Verdict | None
    """What the run proposes; None before the first verdict."""
    output: JSONObject | None
    """The proposed output, for an override."""
    people: tuple[str, ...]
    """Who agree on it, in the order they gave their verdicts."""
    needed: int
    """How many people the proposed outcome needs (for no proposal yet: an approval's count)."""

    @property
    def reached(self) -> bool:
        """The run holds enough people: the decision is final with the proposed outcome."""
        return self.verdict is not None and len(self.people) >= self.needed


def needed_for(decision: Decision, verdict: Verdict) -> int:
    """Distinct people who must agree on ``verdict`` for it to decide ``decision``."""
    if verdict is Verdict.REJECT:
        return max(decision.reject_approvals_needed or decision.approvals_needed, 1)
    return max(decision.approvals_needed, 1)


def _same(a: Review, b: Review) -> bool:
    """Two verdicts propose the same outcome (an override's output included)."""
    return a.verdict is b.verdict and (a.verdict is not Verdict.OVERRIDE or a.output == b.output)


def agreement(decision: Decision, reviews: Sequence[Review] | None = None) -> Agreement:
    """The latest run of agreeing verdicts among ``reviews`` (default: the decision's)."""
    given = list(decision.reviews if reviews is None else reviews)
    if not given:
        return Agreement(None, None, (), needed_for(decision, Verdict.APPROVE))
    last = given[-1]
    run: list[str] = []
    for review in reversed(given):
        if not _same(review, last):
            break
        run.append(review.reviewer)
    output = last.output if last.verdict is Verdict.OVERRIDE else None
    return Agreement(last.verdict, output, tuple(reversed(run)), needed_for(decision, last.verdict))


def is_requester(decision: Decision, name: str) -> bool:
    """``name`` is the person the decision was requested for (maker-checker: never a reviewer)."""
    return bool(decision.requested_by.strip()) and same_person(decision.requested_by, name)


def requester_refusal(decision_id: str, name: str) -> PermissionDenied:
    """The refusal that names the maker-checker rule."""
    return PermissionDenied(
        f"maker-checker: {name} requested decision {decision_id} and may not see, claim or "
        "decide it; a different reviewer must"
    )


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
        """Record one verdict and return the decision as it now stands (see the module docstring).

        Raises:
            NotFound: no such decision.
            Conflict: the decision is already final, or changed while this verdict was given.
            InvalidInput: a reject or override without a reason, an override without output,
                an approval of a decision the model gave no output for.
            PermissionDenied: a reviewer who already gave a verdict on the decision, or the
                person it was requested for (maker-checker).
        """
        decision = await self._store.get_decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        if decision.status.is_final:
            raise Conflict(f"decision {decision_id} is already {decision.status.value}")
        if is_requester(decision, reviewer.name):
            raise requester_refusal(decision_id, reviewer.name)
        if any(same_person(r.reviewer, reviewer.name) for r in decision.reviews):
            raise PermissionDenied(
                f"{reviewer.name} already gave a verdict on decision {decision_id}; "
                "the next one must come from a different reviewer"
            )
        reason = reason.strip()
        if verdict is not Verdict.APPROVE and not reason:
            raise InvalidInput("reason", f"a reason is required to {verdict.value}")
        if verdict is Verdict.OVERRIDE and not output:
            raise InvalidInput("output", "an override needs the replacement output")
        if verdict is Verdict.APPROVE and decision.model_output is None:
            raise InvalidInput(
                "verdict", "the model gave no output to approve; override with an output instead"
            )

        now = self._clock()
        review = Review(
            reviewer=reviewer.name,
            role=reviewer.role,
            verdict=verdict,
            reason=reason,
            at=now,
            output=output if verdict is Verdict.OVERRIDE else None,
        )
        agreed = agreement(decision, (*decision.reviews, review))
        new_status, final_output = decision.status, None
        if agreed.reached:
            new_status = _OUTCOME[verdict]
            if verdict is Verdict.APPROVE:
                final_output = decision.model_output
            elif verdict is Verdict.OVERRIDE:
                final_output = review.output
        event = audit_event(
            EventType.DECISION_REVIEWED,
            decision_id,
            f"user:{reviewer.name}",
            _payload(review, new_status, decision, agreed),
            ts=now,
        )
        updated = await self._store.record_review(
            decision_id,
            review,
            new_status,
            final_output,
            event,
            expected=decision.status,
            # Two verdicts given at once were both counted against the same earlier ones; only
            # one may be recorded, the other is refused and sees the first on reload.
            expected_reviews=len(decision.reviews),
        )
        log.info(
            "decision.reviewed",
            decision_id=decision_id,
            reviewer=reviewer.name,
            verdict=verdict.value,
            agree=len(agreed.people),
            needed=agreed.needed,
            status=updated.status.value,
        )
        self._notifier.publish(updated)
        return updated


def _payload(
    review: Review, status: Status, decision: Decision, agreed: Agreement
) -> dict[str, Any]:
    return {
        "verdict": review.verdict.value,
        "reviewer": review.reviewer,
        "role": review.role,
        "reason": review.reason,
        "status": status.value,
        "output": review.output,
        # What this verdict proposes is its verdict (and output); these say how far it got.
        "agree": len(agreed.people),
        "agreed_by": list(agreed.people),
        "needed": agreed.needed,
        "approvals_needed": decision.approvals_needed,
    }
