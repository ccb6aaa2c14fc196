"""Helpers for business teams testing their integration against a real, in-process gateway.

async with Gateway(settings) as gw:
    key = await create_api_key(gw, "credit-limit")
    ...
    await review_pending(gw, Verdict.APPROVE)
"""

from __future__ import annotations

from gateway.app import Gateway
from gateway.core.api_keys import ApiKeyAdmin
from gateway.core.auth import new_key
from gateway.core.reviews import Reviewer
from gateway.types import Decision, JSONObject, TaskKind, Verdict

__all__ = ["create_api_key", "review_pending"]


async def create_api_key(gateway: Gateway, *applications: str) -> str:
    """Store a new key for ``applications`` (all of them when none given); return the token."""
    apps = applications or tuple(sorted(gateway.policies.applications))
    token, record = new_key(tuple(apps))
    await ApiKeyAdmin(gateway.store).create(record, actor="system:gateway.testing")
    return token


async def review_pending(
    gateway: Gateway,
    verdict: Verdict,
    *,
    reason: str = "reviewed by gateway.testing",
    output: JSONObject | None = None,
    reviewers: tuple[Reviewer, ...] = (
        Reviewer("auto-reviewer-1", "senior"),
        Reviewer("auto-reviewer-2", "senior"),
    ),
) -> list[Decision]:
    """Give ``verdict`` on every held decision, approving as many times as each tier needs."""
    decided: list[Decision] = []
    for task in await gateway.store.list_review_tasks(TaskKind.DECISION, limit=10_000):
        decision: Decision | None = None
        for reviewer in reviewers:
            decision = await gateway.reviews.submit(
                task.decision_id, reviewer, verdict, reason, output
            )
            if decision.status.is_final:
                break
        if decision is not None:
            decided.append(decision)
    return decided
