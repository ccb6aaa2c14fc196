"""A verdict recorded on a decision: what both stores check and write, written once.

The decision moves to its new status only if it still has the expected status (and, when given,
the expected number of reviews: two verdicts given at once were each counted against the same
earlier ones by `gateway.core.reviews`, so only the first to commit may stand). A final verdict
closes the decision's open review tasks; one that leaves the decision open releases its claim,
so a second reviewer can take it. Statements are in `gateway.store.sql`'s ``?`` style; each
store runs them on its own connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.audit.drafts import PreparedDraft, prepare_draft
from gateway.errors import Conflict, FailedPrecondition, NotFound
from gateway.store import codec, sql
from gateway.timefmt import format_ts
from gateway.types import AuditDraft, Review, Status

SELECT_STATUS = "SELECT status FROM decisions WHERE id = ?"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One `record_review` call, encoded in the caller's coroutine."""

    decision_id: str
    update: tuple[Any, ...]
    """Parameters of `sql.UPDATE_REVIEWED`."""
    insert: tuple[Any, ...]
    """Parameters of `sql.INSERT_REVIEW`."""
    final: bool
    expected: str
    draft: PreparedDraft

    @property
    def tasks_sql(self) -> str:
        """Close the decision's open tasks (a final verdict) or release their claim."""
        return sql.CLOSE_DECISION_TASKS if self.final else sql.RELEASE_DECISION_TASKS

    def tasks_params(self, now: str) -> tuple[Any, ...]:
        return (now, self.decision_id) if self.final else (self.decision_id,)

    def refused(self, current: str | None) -> Exception:
        """Why the update matched no row, given the decision's status now (None: no decision)."""
        if current is None:
            return NotFound("decision", self.decision_id)
        if current == self.expected:
            return Conflict(
                f"decision {self.decision_id!r} was reviewed by someone else meanwhile; "
                "reload it and decide again"
            )
        return Conflict(
            f"decision {self.decision_id!r} is {current}, not {self.expected}: "
            "someone else changed it first"
        )


def prepare(
    decision_id: str,
    review: Review,
    new_status: Status,
    final_output: dict[str, object] | None,
    event: AuditDraft,
    expected: Status,
    expected_reviews: int | None,
) -> Verdict:
    """Encode a `record_review` call.

    Raises:
        FailedPrecondition: ``expected`` is a final status, which never changes.
    """
    if expected.is_final:
        raise FailedPrecondition(
            f"decision {decision_id!r}: status {expected.value} is final and cannot change"
        )
    return Verdict(
        decision_id=decision_id,
        update=(
            new_status.value,
            codec.dumps_opt(final_output),
            format_ts(review.at),
            decision_id,
            expected.value,
            expected_reviews,
            expected_reviews,
        ),
        insert=(decision_id, *codec.review_values(review), decision_id),
        final=new_status.is_final,
        expected=expected.value,
        draft=prepare_draft(event),
    )
