"""Domain types shared by every layer.

These are plain frozen dataclasses: the transports convert to and from them, the store persists
them, and nothing here knows about protobuf or SQL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSONValue = Any
"""A value that round-trips through JSON (dict, list, str, float, int, bool, None)."""

JSONObject = dict[str, Any]


class Status(enum.StrEnum):
    """Where a decision is in its lifecycle (see DESIGN.md)."""

    PENDING_REVIEW = "PENDING_REVIEW"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    OVERRIDDEN = "OVERRIDDEN"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.APPROVED, Status.REJECTED, Status.OVERRIDDEN, Status.EXPIRED})


class Action(enum.StrEnum):
    """What a route rule (or a tier, or a failure policy) says to do with a decision."""

    APPROVE = "approve"
    REJECT = "reject"
    REVIEW = "review"


class Verdict(enum.StrEnum):
    """What a reviewer says about a held decision."""

    APPROVE = "approve"
    REJECT = "reject"
    OVERRIDE = "override"


class Validation(enum.StrEnum):
    """The model version's standing in the model inventory when a decision was made.

    The inventory's lifecycle statuses (`gateway.modelrisk.record.ModelStatus`), plus
    ``unregistered`` (not in the inventory) and ``pending``, which only decisions recorded
    before the inventory carry (policies then stated the status themselves): old rows stay
    readable.
    """

    REGISTERED = "registered"
    VALIDATED = "validated"
    APPROVED = "approved"
    SUSPENDED = "suspended"
    RETIRED = "retired"
    UNREGISTERED = "unregistered"
    """Not in the inventory at decision time."""
    PENDING = "pending"
    """Legacy: a policy's ``validation: pending`` before the inventory existed."""


class TaskKind(enum.StrEnum):
    """Review queue a task belongs to."""

    DECISION = "decision"
    """A held decision that waits for a verdict."""
    QA = "qa"
    """A sampled automatic decision, reviewed after the fact for quality assurance."""


@dataclass(frozen=True, slots=True)
class Review:
    """One reviewer's verdict on a decision."""

    reviewer: str
    role: str
    verdict: Verdict
    reason: str
    at: datetime
    output: JSONObject | None = None
    """The reviewer's replacement output, for an override."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """Which model answered, as the audit trail and the caller see it."""

    backend: str
    name: str
    version: str
    validation: Validation = Validation.UNREGISTERED
    """The version's inventory status when the decision was made (the policy names the
    version only; `gateway.modelrisk.gate` looks its status up for every decision)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One AI-assisted decision and everything needed to reconstruct it."""

    id: str
    application: str
    tier: str
    status: Status
    input: JSONObject
    model: ModelRef | None
    """None when the model was never called (prohibited tier) ."""
    model_output: JSONObject | None
    final_output: JSONObject | None
    """What goes out: the model output when approved, the reviewer's when overridden."""
    reasons: tuple[str, ...]
    """Human-readable: which escalation and route rules matched, and why."""
    rule: str
    """Identifier of the rule that decided the route, e.g. ``route[1]`` or ``on_model_error``."""
    created_at: datetime
    updated_at: datetime
    trace_id: str
    policy_version: str
    subject_ref: str = ""
    idempotency_key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    reviews: tuple[Review, ...] = ()
    approvals_needed: int = 0
    """Approvals a held decision needs before it is approved (four-eyes when 2)."""
    review_deadline: datetime | None = None
    """When the review SLA passes, for held decisions."""
    reject_approvals_needed: int = 0
    """Distinct people who must agree on a rejection (0: as ``approvals_needed``)."""
    blind: bool = False
    """Reviewers see earlier verdicts only after giving theirs (the tier's ``blind``)."""
    requested_by: str = ""
    """The person on whose behalf the application asked (maker-checker: they never decide)."""
    request_digest: str = ""
    """SHA-256 of what the caller asked (application, input, subject, labels, requester), so a
    reused idempotency key with other content is refused, not answered with this decision."""
    callback_url: str = ""
    """Where this decision's ``decision.final`` webhook goes instead of the application's
    endpoint (a host the policy's ``webhook.callback_hosts`` allows). Kept in a table of its
    own (``decision_callbacks``) and read when the decision becomes final; not read back here."""


@dataclass(frozen=True, slots=True)
class ReviewTask:
    """An entry in a review queue (held decisions, or QA samples of automatic ones)."""

    decision_id: str
    kind: TaskKind
    application: str
    tier: str
    groups: tuple[str, ...]
    deadline: datetime | None
    created_at: datetime
    tier_rank: int = 0
    """The tier's rank (0 is the highest risk): the queue's order after the deadline."""


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An audit event before the store chains it (assigns seq, prev_hash and hash)."""

    decision_id: str
    type: str
    """Dotted event name, e.g. ``decision.created``, ``decision.reviewed``."""
    actor: str
    """``app:<key id>``, ``user:<name>``, or ``system``."""
    payload: JSONObject
    trace_id: str = ""
    span_id: str = ""
    ts: datetime | None = None
    """Defaults to the commit time when None."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A chained audit event as stored."""

    seq: int
    ts: datetime
    decision_id: str
    type: str
    actor: str
    payload: JSONObject | None
    """None once erased; the chain still verifies through ``payload_digest``."""
    payload_digest: str
    trace_id: str
    span_id: str
    prev_hash: str
    hash: str
    canonical: bytes
    """The exact bytes that were hashed, stored so verification does not re-serialise."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A caller's credential record (the secret itself is never stored)."""

    key_id: str
    secret_hash: str
    applications: tuple[str, ...]
    created_at: datetime
    revoked: bool = False
    role: str = "app"
    """``app`` (decides for ``applications``), ``auditor`` or ``admin`` (read the audit trail)."""


class Role(enum.StrEnum):
    """What a person signed in to the reviewer UI may do."""

    REVIEWER = "reviewer"
    """Decides held decisions of their groups."""
    SENIOR = "senior"
    """Decides like a reviewer, and may see personal data unmasked."""
    AUDITOR = "auditor"
    """Reads everything, may see personal data unmasked, never decides."""
    ADMIN = "admin"
    """Manages accounts and kill switches; never decides."""
    MODEL_RISK = "model-risk"
    """Keeps the model inventory (register, validate, approve, suspend, retire); sees no review
    queue and never decides."""


@dataclass(frozen=True, slots=True)
class Account:
    """A person who signs in to the reviewer UI (the password itself is never stored)."""

    name: str
    role: Role
    groups: tuple[str, ...]
    password_hash: str
    created_at: datetime
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One row of a review queue page: the task, its claim, and what the list shows."""

    task: ReviewTask
    task_id: int
    claimed_by: str | None
    claimed_until: datetime | None
    verdicts: int
    """Verdicts given so far, of any kind (a count only: a blind tier shows no more)."""
    approvals_needed: int


@dataclass(frozen=True, slots=True)
class SwitchState:
    """Whether an application or a backend is paused by the kill switch."""

    kind: str
    """``application`` or ``backend``."""
    name: str
    paused: bool
    changed_by: str
    changed_at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in reviewer UI session as stored, shared by every replica.

    Keyed by the SHA-256 of the session id, never the id itself: someone who can read the
    database cannot present a stored row as a cookie.
    """

    id_hash: str
    """Hex SHA-256 of the session id the cookie carries."""
    user: str
    csrf: str
    sso: bool
    """Signed in by a trusted proxy's headers: valid only while the proxy keeps sending them."""
    signed_in_at: datetime
    last_seen: datetime
    expires_at: datetime
    """When the session ends unless used again (idle limit, capped by the absolute lifetime);
    rows past it are purged."""
