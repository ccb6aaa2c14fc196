"""Builders of domain objects for store tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.types import (
    AuditDraft,
    Decision,
    ModelRef,
    ReviewTask,
    Status,
    TaskKind,
    Validation,
)

T0 = datetime(2025, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
_ids = itertools.count(1)


def make_decision(**overrides: Any) -> Decision:
    n = next(_ids)
    fields: dict[str, Any] = {
        "id": f"dec-{n:06d}",
        "application": "credit-limit",
        "tier": "limited",
        "status": Status.PENDING_REVIEW,
        "input": {"amount": 1200, "customer": {"name": "Ana", "segment": "retail"}},
        "model": ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED),
        "model_output": {"score": 0.5},
        "final_output": None,
        "reasons": ("route[2]: grey zone",),
        "rule": "route[2]",
        "created_at": T0,
        "updated_at": T0,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "policy_version": "sha256:abc",
        "approvals_needed": 1,
        "review_deadline": T0 + timedelta(hours=1),
    }
    fields.update(overrides)
    return Decision(**fields)


def created_event(d: Decision, **overrides: Any) -> AuditDraft:
    fields: dict[str, Any] = {
        "decision_id": d.id,
        "type": "decision.created",
        "actor": "app:key1",
        "payload": {"status": d.status.value, "input": d.input},
        "trace_id": d.trace_id,
        "span_id": "b7ad6b7169203331",
    }
    fields.update(overrides)
    return AuditDraft(**fields)


def decision_task(d: Decision, **overrides: Any) -> ReviewTask:
    fields: dict[str, Any] = {
        "decision_id": d.id,
        "kind": TaskKind.DECISION,
        "application": d.application,
        "tier": d.tier,
        "groups": ("reviewers",),
        "deadline": d.review_deadline,
        "created_at": d.created_at,
    }
    fields.update(overrides)
    return ReviewTask(**fields)
