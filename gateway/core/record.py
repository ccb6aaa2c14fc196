"""What the pipeline writes for a new decision besides the decision itself: its review task
and the payload of its ``decision.created`` audit event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.backends.protocol import ModelVersionMismatch
from gateway.core.masking import mask
from gateway.policy import ApplicationPolicy, TierSpec
from gateway.types import AuditDraft, Decision, ReviewTask, TaskKind


def review_task(
    decision: Decision, kind: TaskKind, tier: TierSpec, deadline: datetime | None
) -> ReviewTask:
    """The queue entry of a held decision (DECISION) or of a sampled automatic one (QA)."""
    return ReviewTask(
        decision_id=decision.id,
        kind=kind,
        application=decision.application,
        tier=tier.name,
        groups=tier.groups,
        deadline=deadline,
        created_at=decision.created_at,
        tier_rank=tier.rank,
    )


def created_payload(decision: Decision, app: ApplicationPolicy, sampled: bool) -> dict[str, Any]:
    """The ``decision.created`` event's payload: sensitive input fields masked (the stored
    input is sealed; the trail must stay readable by auditors who may not see them)."""
    model = decision.model
    return {
        "application": decision.application,
        "tier": decision.tier,
        "status": decision.status.value,
        "rule": decision.rule,
        "reasons": list(decision.reasons),
        "policy_version": decision.policy_version,
        "model": None
        if model is None
        else {
            "backend": model.backend,
            "name": model.name,
            "version": model.version,
            "validation": model.validation.value,
        },
        "subject_ref": decision.subject_ref,
        "requested_by": decision.requested_by,
        "input": mask(decision.input, app.sensitive_fields),
        "model_output": decision.model_output,
        "final_output": decision.final_output,
        "labels": decision.labels,
        "qa_sampled": sampled,
    }


def version_mismatch_event(
    decision_id: str, mismatch: ModelVersionMismatch, ts: datetime
) -> AuditDraft:
    """The ``model.version_mismatch`` event of a decision whose model server answered under
    another version than the pinned one (the request's trace, like its ``decision.created``)."""
    payload = {
        "backend": mismatch.backend,
        "name": mismatch.model,
        "version": mismatch.pinned,
        "pinned_version": mismatch.pinned,
        "reported_version": mismatch.reported,
    }
    return audit_event(EventType.MODEL_VERSION_MISMATCH, decision_id, "system", payload, ts=ts)
