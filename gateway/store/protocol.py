"""The Store protocol: everything the core needs from durable storage.

SQLite (embedded default) and PostgreSQL (scale-out) implement it. Every method that changes a
decision writes its audit events in the same transaction, so state and evidence never diverge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.types import (
    ApiKey,
    AuditDraft,
    AuditEvent,
    Decision,
    Review,
    ReviewTask,
    Status,
    TaskKind,
)


class Store(Protocol):
    async def start(self) -> None:
        """Open connections, apply numbered migrations, start the writer."""

    async def stop(self) -> None:
        """Flush pending writes and close. Idempotent."""

    async def create_decision(
        self,
        decision: Decision,
        events: Sequence[AuditDraft],
        tasks: Sequence[ReviewTask],
    ) -> tuple[Decision, bool]:
        """Persist a new decision with its audit events and review tasks in one transaction.

        Returns ``(stored, True)`` when written, or ``(existing, False)`` when a decision with the
        same ``(application, idempotency_key)`` already exists (non-empty keys only); then nothing
        of this call is written. Returns only after the commit is durable.
        """

    async def get_decision(self, decision_id: str) -> Decision | None: ...

    async def find_by_idempotency_key(self, application: str, key: str) -> Decision | None: ...

    async def record_review(
        self,
        decision_id: str,
        review: Review,
        new_status: Status,
        final_output: dict[str, object] | None,
        event: AuditDraft,
        expected: Status,
    ) -> Decision:
        """Append a review and move the decision to ``new_status`` atomically.

        Raises ``gateway.errors.Conflict`` when the decision's status is no longer ``expected``
        (someone else decided first), and ``NotFound`` when it does not exist. When
        ``new_status`` is final, the decision's review tasks of kind DECISION are closed.
        """

    async def list_review_tasks(
        self, kind: TaskKind, *, limit: int = 100, open_only: bool = True
    ) -> list[ReviewTask]: ...

    async def add_api_key(self, key: ApiKey) -> None: ...

    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    async def revoke_api_key(self, key_id: str) -> bool: ...

    async def audit_events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in chain order with ``seq > after_seq``."""

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]: ...
