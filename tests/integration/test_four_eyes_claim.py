"""Four-eyes items: whoever gave the first approval never holds the item again, on both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.errors import PermissionDenied
from gateway.keys import generate_secrets
from gateway.testing import create_api_key
from gateway.types import Account, Role, Status, TaskKind, Verdict
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

PASSWORD = "integration password"
VIP = {"score": 0.5, "vip": True}
"""Input the test application sends to the high tier: two senior approvals needed."""


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The gateway's settings on a SQLite file or on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())


@pytest.fixture
async def gw(store_settings: Settings) -> AsyncIterator[Gateway]:
    gateway = Gateway(store_settings)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()


async def _held_for_two(gw: Gateway) -> tuple[str, Account, Account]:
    """A decision held for two approvals, and two seniors to give them."""
    sam = await gw.accounts.create("sam", Role.SENIOR, PASSWORD)
    sue = await gw.accounts.create("sue", Role.SENIOR, PASSWORD)
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        held = await client.decide("t-echo", VIP)
    assert held.status is Status.PENDING_REVIEW and held.approvals_needed == 2
    return held.id, sam, sue


async def test_first_approver_reopening_leaves_the_item_free_for_the_second(gw: Gateway) -> None:
    """The first approver re-opens the item read-only; the second senior claims and approves."""
    decision_id, sam, sue = await _held_for_two(gw)
    queue = gw.queue
    assert (await queue.open(sam, decision_id, TaskKind.DECISION)).can_decide
    await queue.decide(sam, decision_id, Verdict.APPROVE)

    again = await queue.open(sam, decision_id, TaskKind.DECISION)
    assert again.reviewed_by_me and not again.claimed_by_me and not again.can_decide
    assert again.task is not None and again.task.claimed_by is None

    second = await queue.open(sue, decision_id, TaskKind.DECISION)
    assert second.claimed_by_me and second.can_decide
    decided = await queue.decide(sue, decision_id, Verdict.APPROVE)
    assert decided.status is Status.APPROVED
    assert [r.reviewer for r in decided.reviews] == ["sam", "sue"]


async def test_the_store_refuses_a_lease_to_someone_who_already_approved(gw: Gateway) -> None:
    """A claim by the first approver, however it arrives, is refused and leaves no lease."""
    decision_id, sam, _ = await _held_for_two(gw)
    await gw.queue.claim(sam, decision_id, TaskKind.DECISION)
    await gw.queue.decide(sam, decision_id, Verdict.APPROVE)
    with pytest.raises(PermissionDenied, match="different reviewer"):
        await gw.queue.claim(sam, decision_id, TaskKind.DECISION)
    task = await gw.store.open_task(decision_id, TaskKind.DECISION)
    assert task is not None and task.claimed_by is None
