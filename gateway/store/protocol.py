"""The Store protocol: everything the core needs from durable storage.

SQLite (embedded default) and PostgreSQL (scale-out) implement it. Every method that changes a
decision writes its audit events in the same transaction, so state and evidence never diverge.

When the store itself fails (a full disk, a database that is down) writes and the basic reads raise
``gateway.errors.StoreUnavailable`` (nothing was recorded) or its subclass ``OutcomeUnknown`` (the
connection broke during COMMIT), never the driver's own errors (`gateway.store.failures`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.store.outbox import OutboxStore
from gateway.store.policy_protocol import PolicyStore
from gateway.store.results import AccountChanges as AccountChanges
from gateway.store.results import AuditSide as AuditSide
from gateway.store.results import QueueCursor as QueueCursor
from gateway.types import (
    Account,
    ApiKey,
    AuditDraft,
    AuditEvent,
    Decision,
    QueueItem,
    Review,
    ReviewTask,
    SessionRecord,
    Status,
    SwitchState,
    TaskKind,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.store.monitoring import BreachState, ModelReference


class Store(Protocol):
    async def start(self) -> None:
        """Open connections, apply numbered migrations, start the writer."""

    async def stop(self) -> None:
        """Flush pending writes and close. Idempotent."""

    async def probe(self) -> bool:
        """True when a write commits now, through the same writer as every change.

        For readiness: reads still succeed on a full disk. Runs at most one write a second and
        answers calls in between with the last result (`gateway.store.probe`).
        """
        ...

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
        expected_reviews: int | None = None,
    ) -> Decision:
        """Append a review and move the decision to ``new_status`` atomically.

        Raises ``gateway.errors.Conflict`` when the decision's status is no longer ``expected``
        (someone else decided first), or, with ``expected_reviews``, when its number of reviews
        is no longer that (two verdicts given at once), and ``NotFound`` when it does not exist.
        When ``new_status`` is final, the decision's review tasks of kind DECISION are closed;
        otherwise their claim is released.
        """

    async def list_review_tasks(
        self, kind: TaskKind, *, limit: int = 100, open_only: bool = True
    ) -> list[ReviewTask]: ...

    async def add_api_key(self, key: ApiKey, event: AuditDraft | None = None) -> None:
        """Store a new key; ``event`` (if given) is appended in the same transaction."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKey | None: ...

    async def revoke_api_key(self, key_id: str, event: AuditDraft | None = None) -> bool:
        """Revoke a key; ``event`` (if given) is appended only when this call revoked it."""
        ...

    async def audit_events(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events in chain order with ``seq > after_seq``."""

    async def audit_events_for(self, decision_id: str) -> list[AuditEvent]: ...

    def chain_head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last committed audit event, kept in memory (no I/O)."""
        ...

    def subscribe_changes(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(decision_id)`` when another replica changes a decision.

        A store shared by several gateway processes announces the changes each one commits,
        so callers waiting on one replica see verdicts given on another. A store only one
        process uses (SQLite) never calls it: every change is published in-process already.
        """

    def subscribe_resync(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when announcements of other replicas' changes may have been
        missed (the change feed was lost and is back): anything waited on must be read again.
        A store only one process uses never calls it."""

    def readiness_checks(self) -> dict[str, bool]:
        """Conditions besides a commit (`probe`) this store needs to serve, by name: on a shared
        store, ``store:changes`` says whether other replicas' changes are heard (waiters would
        hang otherwise). Empty when there are none."""
        ...

    async def open_audit(self, public_key: Ed25519PublicKey) -> AuditSide:
        """The auditors' read side of this store's trail, and where signed checkpoints go."""
        ...


class SessionStore(Protocol):
    """Reviewer UI sessions, shared by every replica. No audit events: sign-in is audited by
    the accounts, and page views are not evidence."""

    async def put_session(self, record: SessionRecord, *, replaces: str | None = None) -> None:
        """Store a new session, deleting the one keyed ``replaces`` in the same write."""

    async def get_session(self, id_hash: str) -> SessionRecord | None: ...

    async def touch_session(self, id_hash: str, last_seen: datetime, expires_at: datetime) -> None:
        """Record activity; a session deleted meanwhile stays deleted."""

    async def delete_session(self, id_hash: str) -> None: ...

    async def purge_sessions(self, now: datetime) -> int:
        """Delete every session whose ``expires_at`` is before ``now``; returns how many."""


class ReviewStore(Store, SessionStore, OutboxStore, PolicyStore, Protocol):
    """What the review queue, accounts and kill switches need besides the decision `Store`.

    Every write records its audit event in the same transaction.
    """

    async def queue_page(
        self,
        kind: TaskKind,
        *,
        viewer: str,
        now: datetime,
        groups: tuple[str, ...] | None = None,
        application: str | None = None,
        tier: str | None = None,
        after: QueueCursor | None = None,
        limit: int = 50,
    ) -> tuple[list[QueueItem], QueueCursor | None]:
        """Open tasks most urgent first (deadline, then tier rank), minus others' live leases
        and those requested for ``viewer`` (maker-checker). An item's ``approvals`` counts the
        verdicts of every kind given so far (what they are is not told: blind tiers)."""

    async def queue_counts(
        self,
        kind: TaskKind,
        *,
        viewer: str | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> dict[str, int]:
        """Open tasks per application, without those requested for ``viewer`` when given."""

    async def queue_stats(self, kind: TaskKind) -> list[tuple[str, int, datetime]]:
        """``(tier, open tasks, oldest created_at)`` per tier, aggregated in the database."""

    async def open_task(self, decision_id: str, kind: TaskKind) -> QueueItem | None: ...

    async def overdue_tasks(self, now: datetime, limit: int = 100) -> list[ReviewTask]: ...

    async def qa_reviews_for(
        self, decision_id: str
    ) -> list[tuple[str, str, bool, str, datetime]]: ...

    async def claim_task(
        self, decision_id: str, kind: TaskKind, reviewer: str, now: datetime, until: datetime
    ) -> None:
        """Raises Conflict when someone else holds a live lease, NotFound without an open task,
        PermissionDenied when ``reviewer`` gave a verdict on the decision already or it was
        requested for them (maker-checker)."""

    async def release_task(self, decision_id: str, kind: TaskKind, reviewer: str) -> bool: ...

    async def expire_decision(
        self,
        decision_id: str,
        final_output: dict[str, Any] | None,
        reason: str,
        event: AuditDraft,
        now: datetime,
    ) -> Decision: ...

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
        """Move an open decision to a higher tier; it keeps the stricter of its own and the
        tier's approvals, rejections needed (0: as approvals) and blindness."""

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
    ) -> None: ...

    async def append_event(self, event: AuditDraft) -> None: ...

    async def erase_subject(self, subject_ref: str, event: AuditDraft) -> tuple[int, int]:
        """Erase a data subject's stored inputs and event payloads with ``event`` appended;
        returns (decisions, events) changed."""
        ...

    async def add_account(self, account: Account, event: AuditDraft) -> None: ...

    async def change_account(
        self, before: Account, after: Account, event: AuditDraft, *, keep_admin: bool = False
    ) -> AccountChanges:
        """Store ``after``'s role, groups and disabled flag with ``event`` if the account is still
        ``before``; disabling ends its UI sessions and releases its review leases in the same
        transaction. ``keep_admin`` refuses unless another enabled admin remains.

        Raises:
            NotFound: No account of that name.
            Conflict: The account changed meanwhile.
            FailedPrecondition: ``keep_admin`` and no other enabled admin.
        """

    async def get_account(self, name: str) -> Account | None: ...

    async def list_accounts(self) -> list[Account]: ...

    async def set_switch(self, state: SwitchState, event: AuditDraft) -> None:
        """Store a switch's state with its audit event; a store shared by several processes
        also announces the change to them, in the same transaction."""
        ...

    async def list_switches(self) -> list[SwitchState]: ...

    def subscribe_switches(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when a switch change is announced (by any process, this one
        included). Announcements only hasten a re-read: a store without them (SQLite) never
        calls it, and every follower re-reads the state on a timer anyway."""
        ...

    # -- the model inventory (gateway/store/models.py) --

    async def list_models(self) -> list[ModelRecord]:
        """Every model version, by backend, name and version."""
        ...

    async def get_model(self, key: ModelKey) -> ModelRecord | None: ...

    async def register_model(self, record: ModelRecord, event: AuditDraft) -> None:
        """Store a new model version with its audit event (announced like switches).

        Raises:
            Conflict: A model version of that key is registered already.
        """

    async def update_model(
        self, record: ModelRecord, expected_status: ModelStatus, event: AuditDraft
    ) -> None:
        """Store ``record``'s lifecycle fields with ``event`` if the stored status is still
        ``expected_status`` (a compare-and-set: of two transitions from one status, one wins).

        Raises:
            NotFound: No model version of that key.
            Conflict: The status changed meanwhile.
        """

    async def model_events(self, key: ModelKey) -> list[AuditEvent]:
        """The ``model.*`` audit events naming ``key``, in chain order (its history)."""
        ...

    def subscribe_models(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when an inventory change is announced (as `subscribe_switches`:
        SQLite never calls it)."""
        ...

    # -- monitoring per model version (gateway/store/monitoring.py) --

    async def model_counts(self, key: ModelKey, since: str) -> dict[str, int]:
        """Each monitoring metric's count of ``key`` from the hour ``since`` on."""
        ...

    async def model_count_series(self, key: ModelKey, since: str) -> list[tuple[str, str, int]]:
        """``(hour, metric, n)`` of ``key`` from the hour ``since`` on, oldest first."""
        ...

    async def model_histogram(
        self, key: ModelKey, since: str, until: str = "~"
    ) -> dict[str, dict[int, int]]:
        """Output field -> bin -> count of ``key`` over the hours ``since`` to ``until``."""
        ...

    async def model_first_output(self, key: ModelKey) -> str | None: ...

    async def get_model_reference(self, key: ModelKey) -> ModelReference | None: ...

    async def set_model_reference(
        self, key: ModelKey, since: datetime, until: datetime, actor: str, *, replace: bool = True
    ) -> ModelReference:
        """Keep ``key``'s outputs from ``since`` to ``until`` as its drift reference (the
        inventory's approval does; else the early warning takes the first days)."""
        ...

    async def model_breach_states(self) -> list[BreachState]: ...

    async def record_breach(
        self,
        key: ModelKey,
        metric: str,
        breach: AuditDraft,
        escalation: tuple[str, AuditDraft] | None = None,
    ) -> tuple[bool, bool]:
        """Open a breach (compare-and-set) with its event and, given, escalate ``key``."""
        ...

    async def close_breach(self, key: ModelKey, metric: str) -> bool: ...

    async def clear_model_escalation(
        self, key: ModelKey, metrics: Sequence[str], not_before: str, event: AuditDraft
    ) -> bool:
        """Clear ``key``'s escalation with ``event``; False when it was not escalated."""
        ...
