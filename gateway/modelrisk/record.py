"""One model version in the inventory, and the lifecycle it moves through.

``registered -> validated -> approved -> (suspended <-> approved) -> retired``: only an
``approved`` version, within its validation period and at or below its tier ceiling, may decide
automatically. Every transition is an audit event with its actor and justification.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class ModelStatus(enum.StrEnum):
    """Where a model version stands in its lifecycle."""

    REGISTERED = "registered"
    """Known to model risk; not yet validated."""
    VALIDATED = "validated"
    """Validated by the validation function; not yet approved for use."""
    APPROVED = "approved"
    """May decide automatically (within its validation period and tier ceiling)."""
    SUSPENDED = "suspended"
    """Temporarily barred from deciding automatically; may be approved again."""
    RETIRED = "retired"
    """Withdrawn for good."""


TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.REGISTERED: frozenset({ModelStatus.VALIDATED, ModelStatus.RETIRED}),
    ModelStatus.VALIDATED: frozenset({ModelStatus.APPROVED, ModelStatus.RETIRED}),
    ModelStatus.APPROVED: frozenset({ModelStatus.SUSPENDED, ModelStatus.RETIRED}),
    ModelStatus.SUSPENDED: frozenset({ModelStatus.APPROVED, ModelStatus.RETIRED}),
    ModelStatus.RETIRED: frozenset(),
}
"""The statuses each status may move to."""


@dataclass(frozen=True, slots=True, order=True)
class ModelKey:
    """A model version as the policies name it: the backend, the model, the version."""

    backend: str
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.backend}/{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """The inventory's record of one model version."""

    key: ModelKey
    owner: str
    """The person accountable for the model (never its approver)."""
    validator: str
    """Who validated it (empty until validated)."""
    intended_use: str
    max_tier: str
    """The highest-risk tier it may serve (a tier name of the policies)."""
    status: ModelStatus
    validated_at: datetime | None
    validation_expires_at: datetime | None
    documentation_url: str
    limitations: str
    registered_at: datetime
    updated_at: datetime
    updated_by: str
    escalated: bool = False
    """Monitoring found a breach whose action is ``escalate``: every decision on this version
    is held for review until an admin clears it."""
    escalation_reason: str = ""
    escalated_at: datetime | None = None
