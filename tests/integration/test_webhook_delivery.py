"""Signed webhooks from a real gateway to a real receiver on loopback that checks signatures
with the ``standardwebhooks`` verifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.convert.decision import decision_to_pb
from gateway.core.reviews import Reviewer
from gateway.telemetry.metrics import REGISTRY
from gateway.testing import create_api_key
from gateway.types import Status, TaskKind, Verdict
from tests.integration.webhook_receiver import (
    SECRET,
    SECRET_ENV,
    WebhookReceiver,
    write_hook_policy,
)

INPUT = {"score": 0.5, "customer": {"name": "Ana Example"}}


@pytest.fixture
def receiver(policies_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    r = WebhookReceiver()
    write_hook_policy(policies_dir, r.url, sla="2s")
    yield r
    r.stop()


@pytest.fixture
async def hooked(settings: Settings, receiver: WebhookReceiver) -> AsyncIterator[Gateway]:
    fast = replace(
        settings,
        outbox_interval=0.05,
        outbox_backoff_base=0.2,
        outbox_backoff_max=0.4,
        outbox_warn_after=0.3,
        sla_sweep_interval=0.2,
    )
    gw = Gateway(fast)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def _held(gw: Gateway) -> tuple[AsyncGatewayClient, str]:
    key = await create_api_key(gw, "t-hook")
    client = AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key)
    d = await client.decide("t-hook", INPUT)
    assert d.status is Status.PENDING_REVIEW
    return client, d.id


async def test_approved_decision_is_posted_once_signed(
    hooked: Gateway, receiver: WebhookReceiver
) -> None:
    """One signed decision.final arrives, holding the decision as GetDecision returns it; the
    delivery is counted in the metrics."""
    sent = ("hitl_outbox_sent_total", {"channel": "webhook", "topic": "decision.final"})
    before = REGISTRY.get_sample_value(*sent) or 0.0
    receiver.start()
    client, decision_id = await _held(hooked)
    async with client:
        await hooked.reviews.submit(decision_id, Reviewer("rita", "reviewer"), Verdict.APPROVE)
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
        final = await client.get(decision_id)
    assert delivery.id == f"msg_{decision_id}_final"
    assert delivery.payload["type"] == "decision.final"
    assert delivery.payload["data"] == json_format.MessageToDict(decision_to_pb(final))
    assert delivery.payload["data"]["status"] == "APPROVED"
    await asyncio.sleep(0.5)  # several more delivery runs: nothing is sent twice
    assert len(receiver.received()) == 1
    assert receiver.rejected == []
    assert REGISTRY.get_sample_value(*sent) == before + 1


async def test_receiver_down_then_up_gets_the_message_after_retries(
    hooked: Gateway, receiver: WebhookReceiver
) -> None:
    """While the receiver is down the message is retried; once it is up it arrives, once."""
    client, decision_id = await _held(hooked)
    async with client:
        await hooked.reviews.submit(decision_id, Reviewer("rita", "reviewer"), Verdict.REJECT, "no")
    for _ in range(100):
        (pending,) = await hooked.store.outbox_list(dead=False, limit=10)
        if pending.attempts >= 2:
            break
        await asyncio.sleep(0.1)
    assert pending.attempts >= 2
    assert "ConnectError" in pending.last_error
    # An old undelivered message is a warning of readiness, never a failure.
    ready = f"http://127.0.0.1:{hooked.http_port}/readyz"
    async with httpx.AsyncClient() as http:
        for _ in range(50):  # measured every warn_after (0.3 s)
            answer = await http.get(ready)
            if "outbox" in answer.json()["warnings"]:
                break
            await asyncio.sleep(0.1)
    assert answer.status_code == 200, answer.text
    assert "1 messages undelivered" in answer.json()["warnings"]["outbox"]
    receiver.start()
    (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert delivery.id == pending.id == f"msg_{decision_id}_final"
    assert delivery.payload["data"]["status"] == "REJECTED"
    for _ in range(100):  # the delivery is recorded just after the receiver answered
        if not await hooked.store.outbox_list(dead=False, limit=10):
            break
        await asyncio.sleep(0.05)
    assert await hooked.store.outbox_list(dead=False, limit=10) == []
    async with httpx.AsyncClient() as http:
        for _ in range(50):  # the backlog is measured again within warn_after
            if "outbox" not in (await http.get(ready)).json()["warnings"]:
                break
            await asyncio.sleep(0.1)
        assert (await http.get(ready)).json()["warnings"] == {}


async def test_expired_decision_is_posted(hooked: Gateway, receiver: WebhookReceiver) -> None:
    """A held decision that expires at its SLA is announced as final, with status EXPIRED."""
    receiver.start()
    client, decision_id = await _held(hooked)
    async with client:
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert delivery.id == f"msg_{decision_id}_final"
    assert delivery.payload["data"]["status"] == "EXPIRED"


async def test_an_error_answer_is_retried_not_lost(
    hooked: Gateway, receiver: WebhookReceiver
) -> None:
    """An endpoint answering an error status keeps the message queued for the next attempt."""
    receiver.status = 500
    receiver.start()
    client, decision_id = await _held(hooked)
    async with client:
        await hooked.reviews.submit(decision_id, Reviewer("rita", "reviewer"), Verdict.APPROVE)
    deliveries = await asyncio.to_thread(receiver.wait_for, 2)
    assert {d.id for d in deliveries} == {f"msg_{decision_id}_final"}
    for _ in range(100):  # the second refusal is recorded just after it was answered
        (pending,) = await hooked.store.outbox_list(dead=False, limit=10)
        if pending.attempts >= 2:
            break
        await asyncio.sleep(0.05)
    assert pending.attempts >= 2 and "HTTP 500" in pending.last_error


async def test_a_decide_may_name_its_own_callback_url_on_an_allowed_host(
    settings: Settings, policies_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``callback_url`` on an allowed host gets that decision's signed ``decision.final``
    instead of the application's endpoint; a host not allowed, a plain-HTTP URL off loopback
    and an application without callback hosts are refused naming ``callback_url``, before
    anything is recorded."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    configured, own = WebhookReceiver(), WebhookReceiver()
    write_hook_policy(policies_dir, configured.url, callback_hosts=("127.0.0.1",))
    configured.start()
    own.start()
    fast = replace(settings, outbox_interval=0.05, outbox_backoff_base=0.2, outbox_backoff_max=0.4)
    try:
        async with Gateway(fast) as gw:
            key = await create_api_key(gw, "t-hook")
            async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
                d = await client.decide("t-hook", INPUT, callback_url=own.url)
                assert d.status is Status.PENDING_REVIEW
                for url, why in (
                    ("http://localhost.example/hooks", "webhooks leave this machine over HTTPS"),
                    ("https://elsewhere.example/hooks", "not one of application 't-hook'"),
                ):
                    with pytest.raises(GatewayCallError) as err:
                        await client.decide("t-hook", INPUT, callback_url=url)
                    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
                    assert "callback_url" in str(err.value) and why in str(err.value)
                echo = await create_api_key(gw, "t-echo")
                async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=echo) as other:
                    with pytest.raises(GatewayCallError) as err:
                        await other.decide("t-echo", {"score": 0.5}, callback_url=own.url)
                    assert "allows no callback URL" in str(err.value)
            # The refused calls recorded nothing: one item waits for review.
            assert await gw.store.queue_counts(TaskKind.DECISION) == {"t-hook": 1}
            await gw.reviews.submit(d.id, Reviewer("rita", "reviewer"), Verdict.APPROVE)
            (delivery,) = await asyncio.to_thread(own.wait_for, 1)
            assert delivery.id == f"msg_{d.id}_final"
            assert delivery.payload["data"]["status"] == "APPROVED"
            await asyncio.sleep(0.5)
            assert configured.received() == [] and own.rejected == []
    finally:
        configured.stop()
        own.stop()
