"""Decisions for audit-trail tests: small, alike, with personal data to erase or tamper with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.types import Decision, Status

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def audit_decision(
    i: int, *, subject_ref: str = "", input: dict[str, Any] | None = None
) -> Decision:
    """Decision ``dec-<i>`` of credit-limit, held, with a customer's name and national id
    (or ``input``)."""
    if input is None:
        input = {"customer": {"name": "Ana", "national_id": f"ID{i}"}}
    return Decision(
        id=f"dec-{i}",
        application="credit-limit",
        tier="limited",
        status=Status.PENDING_REVIEW,
        input=input
        if input is not None
        else {"customer": {"name": "Ana", "national_id": f"ID{i}"}},
        model=None,
        model_output=None,
        final_output=None,
        reasons=(),
        rule="route[0]",
        created_at=T0,
        updated_at=T0,
        trace_id="",
        policy_version="v1",
        subject_ref=subject_ref,
    )
