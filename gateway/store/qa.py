"""Quality-assurance opinions on decisions made automatically, and audit events that change no
state: written once for both databases (through `gateway.store.tx.WriteTx`).

Each write runs inside the store's writer transaction, with its audit event chained in the same
transaction; on PostgreSQL the decision is announced to the other replicas when it commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.errors import Conflict
from gateway.modelrisk import monitor
from gateway.modelrisk.record import ModelKey
from gateway.store.monitoring import UPSERT_COUNT
from gateway.store.tx import WriteTx
from gateway.timefmt import format_ts
from gateway.types import AuditDraft

T = TypeVar("T")

_CLOSE_QA_TASK = (
    "UPDATE review_tasks SET closed_at = ? "
    "WHERE decision_id = ? AND kind = 'qa' AND closed_at IS NULL"
)
_INSERT_QA = (
    "INSERT INTO qa_reviews (decision_id, reviewer, role, agree, reason, at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_MODEL_OF = "SELECT model_backend, model_name, model_version FROM decisions WHERE id = ?"


class QAMixin:
    """`record_qa` and `append_event` for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    async def record_qa(
        self,
        decision_id: str,
        *,
        reviewer: str,
        role: str,
        agree: bool,
        reason: str,
        at: datetime,
        event: AuditDraft,
    ) -> None:
        """Record a QA opinion and close the QA task; the decision itself never changes.

        Raises:
            Conflict: The QA task is already closed (someone gave their opinion first).
        """
        draft = prepare_draft(event)
        values = (decision_id, reviewer, role, int(agree), reason, format_ts(at))

        async def record(tx: WriteTx) -> Any:
            if not await tx.execute(_CLOSE_QA_TASK, tx.now, decision_id):
                return Conflict(f"decision {decision_id} has no open QA review")
            await tx.execute(_INSERT_QA, *values)
            model = await tx.fetchrow(_MODEL_OF, decision_id)
            if model is not None and model[0] is not None:  # counted for monitoring, here
                for count in monitor.qa_rows(ModelKey(*model), agree, tx.now):
                    await tx.execute(UPSERT_COUNT, *count)
            await tx.append([draft])
            tx.changed.append(decision_id)
            return None

        await self._write(record)

    async def append_event(self, event: AuditDraft) -> None:
        """Record an audit event that changes no state (e.g. personal data was unmasked)."""
        draft = prepare_draft(event)

        async def append(tx: WriteTx) -> None:
            await tx.append([draft])

        await self._write(append)
