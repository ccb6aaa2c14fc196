"""What happens when a review is not done in time, written once for both databases: expiry with
the policy's timeout outcome, or escalation to a higher tier.

Each write runs inside the store's writer transaction, with its audit event chained in the same
transaction; on PostgreSQL the decision is announced to the other replicas when it commits. The
one step each database spells its own way is appending a reason to the decision's JSON list
while checking it is still open (`_update_open`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.errors import Conflict
from gateway.store import codec, outbox, sql
from gateway.store.reads import decision
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts
from gateway.types import AuditDraft, Decision

T = TypeVar("T")

OPEN = ("PENDING_REVIEW", "IN_REVIEW")
"""Statuses of a decision that still waits for people."""

_ESCALATE_TASKS = (
    "UPDATE review_tasks SET tier = ?, tier_rank = ?, groups = ?, deadline = ?, "
    "claimed_by = NULL, claimed_until = NULL "
    "WHERE decision_id = ? AND kind = 'decision' AND closed_at IS NULL"
)


class SlaMixin:
    """`expire_decision` and `escalate_decision` for both stores (see the module docstring)."""

    _SELECT_DECISION: ClassVar[str]
    _GREATEST: ClassVar[str]
    """The database's two-argument maximum function."""

    if TYPE_CHECKING:

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def _update_open(
        self, tx: Any, assignments: str, params: tuple[Any, ...], decision_id: str, reason: str
    ) -> bool:
        """``UPDATE decisions SET <assignments>`` and append ``reason`` to its reasons, if the
        decision is still open (`OPEN`); False when it is not (or does not exist)."""
        raise NotImplementedError

    async def _decision_in(self, tx: WriteTx, decision_id: str) -> Decision:
        row = await tx.fetchrow(f"{self._SELECT_DECISION} WHERE d.id = ?", decision_id)
        assert row is not None  # updated in this very transaction
        return decision(row)

    async def expire_decision(
        self,
        decision_id: str,
        final_output: dict[str, Any] | None,
        reason: str,
        event: AuditDraft,
        now: datetime,
    ) -> Decision:
        """Make an open decision EXPIRED with the timeout outcome, closing its tasks.

        Raises:
            Conflict: The decision became final meanwhile.
        """
        draft = prepare_draft(event)
        values = (codec.dumps_opt(final_output), format_ts(now))

        async def expire(tx: WriteTx) -> Any:
            assignments = "status = 'EXPIRED', final_output = ?, updated_at = ?"
            if not await self._update_open(tx, assignments, values, decision_id, reason):
                return Conflict(f"decision {decision_id} is no longer open")
            await tx.execute(sql.CLOSE_DECISION_TASKS, tx.now, decision_id)
            await tx.append([draft])
            tx.changed.append(decision_id)
            expired = await self._decision_in(tx, decision_id)
            await outbox.enqueue_final(tx, expired)
            return expired

        return await self._write(expire)

    async def escalate_decision(
        self,
        decision_id: str,
        *,
        tier: str,
        tier_rank: int,
        groups: tuple[str, ...],
        approvals_needed: int,
        deadline: datetime | None,
        reason: str,
        event: AuditDraft,
        now: datetime,
        reject_approvals_needed: int = 0,
        blind: bool = False,
    ) -> Decision:
        """Move an open decision and its task to a higher tier with a fresh deadline.

        What the decision's review asks is never lowered: it keeps the stricter of what it had
        and what the new tier asks, for approvals, rejections (0, on either side: as many as
        approvals) and blindness.

        Raises:
            Conflict: The decision became final meanwhile.
        """
        draft = prepare_draft(event)
        deadline_s, at, groups_s = codec.ts_opt(deadline), format_ts(now), codec.dumps(groups)
        greatest = self._GREATEST
        # Every right-hand side reads the row as it was before this UPDATE (standard SQL, and
        # both databases), so the old approvals_needed stands in for an old reject count of 0.
        assignments = (
            f"tier = ?, approvals_needed = {greatest}(approvals_needed, ?), "
            f"reject_approvals_needed = {greatest}(CASE WHEN reject_approvals_needed = 0 "
            "THEN approvals_needed ELSE reject_approvals_needed END, ?), "
            f"blind = {greatest}(blind, ?), review_deadline = ?, updated_at = ?"
        )
        rejects = reject_approvals_needed or approvals_needed

        async def escalate(tx: WriteTx) -> Any:
            values = (tier, approvals_needed, rejects, int(blind), deadline_s, at)
            if not await self._update_open(tx, assignments, values, decision_id, reason):
                return Conflict(f"decision {decision_id} is no longer open")
            await tx.execute(_ESCALATE_TASKS, tier, tier_rank, groups_s, deadline_s, decision_id)
            await tx.append([draft])
            tx.changed.append(decision_id)
            escalated = await self._decision_in(tx, decision_id)
            await outbox.enqueue_escalated(tx, escalated, reason, groups)
            return escalated

        return await self._write(escalate)
