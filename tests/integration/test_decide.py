"""Decide, GetDecision and WatchDecision over a real gRPC server on loopback."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.core.reviews import Reviewer
from gateway.testing import create_api_key
from gateway.types import Status, TaskKind, Verdict

GOOD_CREDIT = {"income": 120000.0, "debt_ratio": 0.1, "past_delinquencies": 0.0, "amount": 5000.0}
BAD_CREDIT = {"income": 12000.0, "debt_ratio": 0.95, "past_delinquencies": 2.0, "amount": 90000.0}
ALICE = Reviewer("alice", "reviewer")
BOB = Reviewer("bob", "senior")


async def test_auto_approve_returns_model_output(client: AsyncGatewayClient) -> None:
    """A creditworthy request is approved automatically with the model's output."""
    d = await client.decide("credit-limit", GOOD_CREDIT, subject_ref="cust-1")
    assert d.status is Status.APPROVED
    assert d.tier == "limited"
    assert d.model is not None and d.model.name == "credit_v3"
    assert d.model.validation.value == "approved"
    assert d.final_output is not None and d.final_output["score"] >= 0.8
    assert "explanation" in d.final_output
    assert d.rule.startswith("route[")
    assert len(d.trace_id) == 32 and d.policy_version.startswith("sha256:")
    again = await client.get(d.id)
    assert again.status is Status.APPROVED and again.final_output == d.final_output


async def test_auto_reject(client: AsyncGatewayClient) -> None:
    """A request the model scores below the floor is rejected without output."""
    d = await client.decide("credit-limit", BAD_CREDIT)
    assert d.status is Status.REJECTED
    assert d.final_output is None
    assert d.model_output is not None and d.model_output["score"] < 0.2


async def test_grey_zone_is_held_then_get_and_watch(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A held decision is PENDING_REVIEW; Watch streams it and ends at the verdict."""
    d = await client.decide("t-echo", {"score": 0.5})
    assert d.status is Status.PENDING_REVIEW
    assert d.rule == "route:default"
    assert d.approvals_needed == 1 and d.review_deadline is not None
    assert (await client.get(d.id)).status is Status.PENDING_REVIEW
    tasks = await gateway.store.list_review_tasks(TaskKind.DECISION)
    assert [t.decision_id for t in tasks] == [d.id]

    seen: list[Status] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        async for change in client.watch(d.id):
            seen.append(change.status)
            subscribed.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(subscribed.wait(), 5)
    await gateway.reviews.submit(d.id, ALICE, Verdict.APPROVE)
    await asyncio.wait_for(watcher, 5)
    assert seen == [Status.PENDING_REVIEW, Status.APPROVED]
    final = await client.get(d.id)
    assert final.final_output == {"score": 0.5}
    assert [r.reviewer for r in final.reviews] == ["alice"]
    assert await gateway.store.list_review_tasks(TaskKind.DECISION) == []


async def test_decide_with_wait_is_answered_at_the_verdict(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A caller blocking with wait gets the final decision as soon as a reviewer decides."""
    call = asyncio.create_task(client.decide("t-echo", {"score": 0.5}, wait=30))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    tasks = []
    while not tasks:
        if call.done():
            pytest.fail(f"Decide ended before its review task appeared: {call.result()}")
        assert loop.time() < deadline, "no review task 10 s after the Decide was sent"
        await asyncio.sleep(0.01)
        tasks = await gateway.store.list_review_tasks(TaskKind.DECISION)
    t0 = loop.time()
    await gateway.reviews.submit(
        tasks[0].decision_id, ALICE, Verdict.OVERRIDE, "manual limit", {"score": 0.6, "limit": 1}
    )
    d = await asyncio.wait_for(call, 5)
    assert loop.time() - t0 < 1.0
    assert d.status is Status.OVERRIDDEN
    assert d.final_output == {"score": 0.6, "limit": 1}


async def test_wait_ends_with_pending_when_nobody_decides(client: AsyncGatewayClient) -> None:
    """A wait that passes without a verdict answers PENDING_REVIEW with the decision id."""
    d = await client.decide("t-echo", {"score": 0.5}, wait=0.3)
    assert d.status is Status.PENDING_REVIEW and d.id


async def test_escalation_by_content_needs_two_reviewers(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A large amount raises credit-limit to the high tier, where two different people approve."""
    d = await client.decide("credit-limit", {**GOOD_CREDIT, "amount": 250000.0})
    assert d.tier == "high"
    assert d.status is Status.PENDING_REVIEW
    assert d.approvals_needed == 2
    assert any("amount" in r for r in d.reasons)
    first = await gateway.reviews.submit(d.id, BOB, Verdict.APPROVE)
    assert first.status is Status.PENDING_REVIEW
    with pytest.raises(Exception, match="different reviewer"):
        await gateway.reviews.submit(d.id, BOB, Verdict.APPROVE)
    second = await gateway.reviews.submit(d.id, Reviewer("carol", "senior"), Verdict.APPROVE)
    assert second.status is Status.APPROVED
    assert [r.reviewer for r in (await client.get(d.id)).reviews] == ["bob", "carol"]


async def test_idempotent_retry_returns_first_decision(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Retrying with the same idempotency key returns the first decision, recorded once."""
    first = await client.decide("t-echo", {"score": 0.9}, idempotency_key="req-42")
    retry = await client.decide("t-echo", {"score": 0.9}, idempotency_key="req-42")
    assert retry.id == first.id and retry.status is Status.APPROVED
    both = await asyncio.gather(
        *(client.decide("t-echo", {"score": 0.5}, idempotency_key="req-43") for _ in range(20))
    )
    assert len({d.id for d in both}) == 1
    assert len(await gateway.store.audit_events_for(both[0].id)) == 1


async def test_model_error_goes_to_review(client: AsyncGatewayClient) -> None:
    """A failing model never approves: with on_model_error review the decision is held."""
    d = await client.decide("t-fail-review", {"x": 1.0})
    assert d.status is Status.PENDING_REVIEW
    assert d.rule == "on_model_error"
    assert d.model_output is None
    assert any("model error" in r for r in d.reasons)


async def test_model_error_rejects_with_unavailable(client: AsyncGatewayClient) -> None:
    """With on_model_error reject the caller gets UNAVAILABLE and the recorded decision id."""
    with pytest.raises(GatewayCallError) as err:
        await client.decide("t-fail-reject", {"x": 1.0})
    assert err.value.code is grpc.StatusCode.UNAVAILABLE
    assert err.value.decision_id
    d = await client.get(err.value.decision_id)
    assert d.status is Status.REJECTED and d.rule == "on_model_error"


async def test_model_timeout_follows_on_model_error(client: AsyncGatewayClient) -> None:
    """A model slower than its backend timeout is treated as an error, not waited for."""
    d = await client.decide("t-slow", {"sleep_s": 5.0, "score": 0.9})
    assert d.status is Status.PENDING_REVIEW and d.rule == "on_model_error"
    assert any("timed out" in r for r in d.reasons)


async def test_rule_error_fails_closed(client: AsyncGatewayClient) -> None:
    """A route condition that cannot be evaluated holds the decision instead of approving."""
    d = await client.decide("t-bad-rule", {"score": 0.99})
    assert d.status is Status.PENDING_REVIEW and d.rule == "on_policy_error"


async def test_prohibited_tier_rejects_without_calling_the_model(
    client: AsyncGatewayClient,
) -> None:
    """An offer to a minor escalates to the prohibited tier and is rejected outright."""
    d = await client.decide("marketing-offer", {"age": 16.0, "tenure_months": 3.0, "balance": 10.0})
    assert d.tier == "prohibited" and d.status is Status.REJECTED
    assert d.model_output is None and d.rule == "tier:prohibited"


async def test_audit_event_masks_sensitive_fields(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """The audit payload carries the input with the policy's sensitive fields masked."""
    d = await client.decide("t-echo", {"score": 0.9, "customer": {"name": "Erika Mustermann"}})
    (event,) = await gateway.store.audit_events_for(d.id)
    assert event.type == "decision.created"
    assert event.payload is not None
    assert event.payload["input"]["customer"]["name"] == "***"
    assert event.trace_id == d.trace_id


async def test_restart_keeps_pending_decision(settings: Settings) -> None:
    """A held decision is still held, with its review task, after the gateway restarts."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            d = await c.decide("t-echo", {"score": 0.5})
    async with Gateway(settings) as gw:
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            again = await c.get(d.id)
        assert again.status is Status.PENDING_REVIEW
        tasks = await gw.store.list_review_tasks(TaskKind.DECISION)
        assert [t.decision_id for t in tasks] == [d.id]
        approved = await gw.reviews.submit(d.id, ALICE, Verdict.APPROVE)
        assert approved.status is Status.APPROVED


async def test_sampled_automatic_decision_gets_qa_task(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """A sampled automatic decision is answered at once and also queued for QA review."""
    d = await client.decide("t-sampled", {"score": 0.7})
    assert d.status is Status.APPROVED
    qa = await gateway.store.list_review_tasks(TaskKind.QA)
    assert [t.decision_id for t in qa] == [d.id]
    assert await gateway.store.list_review_tasks(TaskKind.DECISION) == []


async def test_logs_carry_no_input_values(client: AsyncGatewayClient) -> None:
    """Decision logs name ids and outcomes but never the caller's input values."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        d = await client.decide("t-echo", {"score": 0.9, "customer": {"name": "Erika Mustermann"}})
    created = [e for e in logs if e["event"] == "decision.created"]
    assert created and created[0]["decision_id"] == d.id
    assert "Erika" not in repr(logs)


async def test_shutdown_answers_waiting_callers(settings: Settings) -> None:
    """Stopping the gateway answers a caller blocked in Decide with the decision as it stands."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            call = asyncio.create_task(c.decide("t-echo", {"score": 0.5}, wait=60))
            for _ in range(500):  # until the call subscribes to its decision
                if gw.notifier.waiting():
                    break
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await gw.stop()
            d = await asyncio.wait_for(call, 5)
            assert loop.time() - t0 < settings.shutdown_grace
    assert d.status is Status.PENDING_REVIEW
