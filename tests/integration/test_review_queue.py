"""Review queue core against a real gateway: races, leases, QA, kill switch, SLA escalation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import grpc
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.core.reviews import Reviewer
from gateway.errors import Conflict, PermissionDenied
from gateway.testing import create_api_key
from gateway.types import Account, Role, Status, TaskKind, Verdict

PASSWORD = "integration password"


async def _account(gw: Gateway, name: str, role: Role) -> Account:
    return await gw.accounts.create(name, role, PASSWORD)


async def test_two_first_approvals_at_once_count_once(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Two seniors approving a four-eyes item at the same instant: one wins, one is refused."""
    sam, sue = (
        await _account(gateway, "sam", Role.SENIOR),
        await _account(gateway, "sue", Role.SENIOR),
    )
    d = await client.decide("t-echo", {"score": 0.5, "vip": True})
    reviews = gateway.reviews
    results = await asyncio.gather(
        reviews.submit(d.id, Reviewer(sam.name, "senior"), Verdict.APPROVE),
        reviews.submit(d.id, Reviewer(sue.name, "senior"), Verdict.APPROVE),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 1
    stored = await gateway.store.get_decision(d.id)
    assert stored is not None and stored.status is Status.PENDING_REVIEW
    assert len(stored.reviews) == 1


async def test_lease_keeps_others_out_until_it_expires(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A claimed item is refused to a second reviewer; after the lease passes they may take it."""
    ann, bob = (
        await _account(gateway, "ann", Role.REVIEWER),
        await _account(gateway, "bob", Role.REVIEWER),
    )
    d = await client.decide("t-echo", {"score": 0.5})
    queue = gateway.queue
    await queue.claim(ann, d.id, TaskKind.DECISION)
    with pytest.raises(Conflict, match="ann"):
        await queue.decide(bob, d.id, Verdict.APPROVE)
    page = await queue.page(bob)
    assert [i.task.decision_id for i in page.items] == []
    queue._lease = timedelta(seconds=-1)  # an already expired lease for the next claim
    await queue.claim(ann, d.id, TaskKind.DECISION)
    queue._lease = timedelta(minutes=5)
    await queue.claim(bob, d.id, TaskKind.DECISION)  # ann's lease has passed
    decided = await queue.decide(bob, d.id, Verdict.APPROVE)
    assert decided.status is Status.APPROVED
    assert decided.reviews[0].reviewer == "bob"


async def test_reviewer_outside_the_group_cannot_claim(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A plain reviewer cannot claim a high-tier item that only seniors review."""
    rita = await _account(gateway, "rita", Role.REVIEWER)
    d = await client.decide("t-echo", {"score": 0.5, "vip": True})
    with pytest.raises(PermissionDenied, match="senior"):
        await gateway.queue.claim(rita, d.id, TaskKind.DECISION)


async def test_qa_disagreement_is_recorded_and_changes_nothing(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A QA disagreement is stored and audited; the automatic decision keeps its outcome."""
    rita = await _account(gateway, "rita", Role.REVIEWER)
    d = await client.decide("t-sampled", {"score": 0.7})
    assert d.status is Status.APPROVED
    await gateway.queue.claim(rita, d.id, TaskKind.QA)
    await gateway.queue.qa(rita, d.id, agree=False, reason="income looks misreported")
    stored = await gateway.store.get_decision(d.id)
    assert stored is not None and stored.status is Status.APPROVED
    assert stored.final_output == d.final_output
    qa = await gateway.store.qa_reviews_for(d.id)
    assert [(who, agree) for who, _, agree, _, _ in qa] == [("rita", False)]
    events = await gateway.store.audit_events_for(d.id)
    assert events[-1].type == "decision.qa_reviewed"


async def test_kill_switch_holds_then_resumes(gateway: Gateway, client: AsyncGatewayClient) -> None:
    """A paused application's would-be automatic approvals are held; resumed, they flow again."""
    await gateway.switches.set("application", "t-echo", True, "user:admin", "model drift")
    held = await client.decide("t-echo", {"score": 0.95})
    assert held.status is Status.PENDING_REVIEW
    assert held.rule == "paused"
    await gateway.switches.set("application", "t-echo", False, "user:admin")
    auto = await client.decide("t-echo", {"score": 0.95})
    assert auto.status is Status.APPROVED
    types = [e.type for e in await gateway.store.audit_events(limit=100)]
    assert "switch.paused" in types and "switch.resumed" in types


async def test_paused_backend_is_not_called(gateway: Gateway, client: AsyncGatewayClient) -> None:
    """Pausing a backend holds its applications' decisions without a model output."""
    await gateway.switches.set("backend", "echo", True, "user:admin", "vendor outage")
    held = await client.decide("t-echo", {"score": 0.95})
    assert held.status is Status.PENDING_REVIEW
    assert held.model_output is None


async def test_sla_escalation_moves_the_item_to_seniors(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """An overdue limited-tier item is escalated to the high tier's seniors, with that tier's
    approvals and rejections needed, audited."""
    d = await client.decide("t-echo", {"score": 0.5})
    sweeper = gateway._sweeper
    assert sweeper is not None
    sweeper._clock = lambda: d.created_at + timedelta(hours=2)
    changed = await sweeper.sweep()
    assert [c.id for c in changed] == [d.id]
    assert changed[0].tier == "high" and changed[0].approvals_needed == 2
    # and its rejections too: the high tier lets no single person reject
    assert changed[0].reject_approvals_needed == 2
    task = await gateway.store.open_task(d.id, TaskKind.DECISION)
    assert task is not None and task.task.groups == ("senior",)
    events = await gateway.store.audit_events_for(d.id)
    assert events[-1].type == "decision.escalated"


async def test_auditor_cannot_decide(gateway: Gateway, client: AsyncGatewayClient) -> None:
    """The auditor role may read but any verdict is refused."""
    audrey = await _account(gateway, "audrey", Role.AUDITOR)
    d = await client.decide("t-echo", {"score": 0.5})
    with pytest.raises(PermissionDenied):
        await gateway.queue.decide(audrey, d.id, Verdict.APPROVE)


async def test_refusing_pause_policy_gives_failed_precondition(gateway: Gateway) -> None:
    """An application with on_pause: reject answers FAILED_PRECONDITION while paused."""
    await gateway.switches.set("application", "t-pause-refuse", True, "user:admin", "drift")
    key = await create_api_key(gateway)
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=key) as c:
        with pytest.raises(GatewayCallError) as err:
            await c.decide("t-pause-refuse", {"score": 0.95})
    assert err.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "paused" in err.value.details
