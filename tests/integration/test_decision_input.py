"""The owning application reads its decision's input back over gRPC, sensitive fields opened."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from gateway._pb.hitl.admin.v1 import admin_pb2, admin_pb2_grpc
from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.core.reviews import Reviewer
from gateway.core.vault import SEALED
from gateway.testing import create_api_key
from gateway.types import Decision, ReviewTask, Status, TaskKind, Verdict

ALICE = Reviewer("alice", "reviewer")


def _input(name: str, score: float = 0.5) -> dict[str, Any]:
    """A t-echo input whose ``customer.name`` is sealed at rest, with every JSON kind."""
    return {
        "score": score,
        "customer": {"name": name, "age": 41.0, "vip": False, "note": None},
        "tags": ["a", 2.0, {"b": True}],
    }


def _store_bytes(data_dir: Path) -> bytes:
    """Every byte of the SQLite database and its write-ahead log as they are on disk."""
    return b"".join(p.read_bytes() for p in data_dir.glob("gateway.db*"))


def _opened(d: Decision, sent: dict[str, Any]) -> None:
    assert d.input == sent
    assert SEALED not in repr(d.input)


@pytest.fixture
def name() -> str:
    return f"Erika Mustermann {uuid.uuid4().hex}"


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[gateway_pb2_grpc.DecisionGatewayStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield gateway_pb2_grpc.DecisionGatewayStub(channel)


async def test_decide_get_and_a_retry_return_the_input_opened(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings, name: str
) -> None:
    """Decide, GetDecision and a keyed retry carry the input as sent; the file stays sealed."""
    sent = _input(name)
    first = await client.decide("t-echo", sent, subject_ref="cust-1", idempotency_key="r-1")
    assert first.status is Status.PENDING_REVIEW
    _opened(first, sent)
    _opened(await client.get(first.id), sent)
    retry = await client.decide("t-echo", sent, subject_ref="cust-1", idempotency_key="r-1")
    assert retry.id == first.id
    _opened(retry, sent)

    raw = _store_bytes(settings.data_dir)
    assert name.encode() not in raw and b"Mustermann" not in raw
    stored = await gateway.store.get_decision(first.id)
    assert stored is not None and SEALED in stored.input["customer"]["name"]


async def test_watch_and_waiting_callers_get_the_input_opened_through_the_verdict(
    gateway: Gateway, client: AsyncGatewayClient, name: str
) -> None:
    """Every WatchDecision update and the answers of waiting Decide calls carry the opened input."""
    sent = _input(name)
    held = await client.decide("t-echo", sent, idempotency_key="w-1")
    seen: list[Decision] = []
    subscribed = asyncio.Event()

    async def watch() -> None:
        async for change in client.watch(held.id):
            seen.append(change)
            subscribed.set()

    watcher = asyncio.create_task(watch())
    # A retry with the same key waits on the stored decision; a new one waits on its own.
    retry = asyncio.create_task(client.decide("t-echo", sent, idempotency_key="w-1", wait=30))
    other_sent = _input(name + " II")
    other = asyncio.create_task(client.decide("t-echo", other_sent, wait=30))
    await asyncio.wait_for(subscribed.wait(), 5)
    # The watch, the retry and the new call all wait on a change, and the new one is stored.
    held_tasks: list[ReviewTask] = []
    async with asyncio.timeout(5):
        while gateway.notifier.waiting() < 3 or len(held_tasks) < 2:
            await asyncio.sleep(0.01)
            held_tasks = await _held(gateway)
    for task in held_tasks:
        await gateway.reviews.submit(task.decision_id, ALICE, Verdict.APPROVE)
    await asyncio.wait_for(watcher, 5)

    assert [d.status for d in seen] == [Status.PENDING_REVIEW, Status.APPROVED]
    for d in seen:
        _opened(d, sent)
    answered = await asyncio.wait_for(retry, 5)
    assert answered.id == held.id and answered.status is Status.APPROVED
    _opened(answered, sent)
    waited = await asyncio.wait_for(other, 5)
    assert waited.status is Status.APPROVED
    _opened(waited, other_sent)


async def test_a_key_of_another_application_reads_no_input(
    gateway: Gateway, client: AsyncGatewayClient, name: str
) -> None:
    """Another application's key is refused for get, watch and a keyed retry, and sees no input."""
    sent = _input(name)
    d = await client.decide("t-echo", sent, idempotency_key="x-1")
    credit_key = await create_api_key(gateway, "credit-limit")
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=credit_key) as credit:
        errors: list[GatewayCallError] = []
        with pytest.raises(GatewayCallError) as err:
            await credit.get(d.id)
        errors.append(err.value)
        with pytest.raises(GatewayCallError) as err:
            async for _ in credit.watch(d.id):
                pass
        errors.append(err.value)
        with pytest.raises(GatewayCallError) as err:
            await credit.decide("t-echo", sent, idempotency_key="x-1")
        errors.append(err.value)
        assert [e.code for e in errors] == [grpc.StatusCode.PERMISSION_DENIED] * 3
        assert all(name not in e.details for e in errors)
        with pytest.raises(GatewayCallError) as err:
            await credit.get("0" * 32)
        assert err.value.code is grpc.StatusCode.NOT_FOUND


async def test_after_erasure_get_and_watch_return_an_empty_input(
    gateway: Gateway,
    client: AsyncGatewayClient,
    api_key: str,
    stub: gateway_pb2_grpc.DecisionGatewayStub,
    name: str,
) -> None:
    """After EraseSubject the erased decision's input is an empty object; others keep theirs."""
    gone = await client.decide("t-echo", _input(name), subject_ref="cust-erase")
    kept_sent = _input(name + " II")
    kept = await client.decide("t-echo", kept_sent, subject_ref="cust-stay")
    token, record = new_key((), role="admin")
    await gateway.store.add_api_key(record)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        await admin.EraseSubject(
            admin_pb2.EraseSubjectRequest(subject_ref="cust-erase", reason="DSR-7"),
            metadata=(("authorization", f"Bearer {token}"),),
        )

    md = (("authorization", f"Bearer {api_key}"),)
    msg = await stub.GetDecision(pb.GetDecisionRequest(decision_id=gone.id), metadata=md)
    assert msg.HasField("input") and len(msg.input.fields) == 0
    assert json_format.MessageToDict(msg)["input"] == {}
    assert msg.status == pb.PENDING_REVIEW  # the outcome stays
    call = stub.WatchDecision(pb.WatchDecisionRequest(decision_id=gone.id), metadata=md)
    first = await call.read()
    call.cancel()  # held: the stream would run until the verdict
    assert isinstance(first, pb.Decision) and first.id == gone.id
    assert first.HasField("input") and len(first.input.fields) == 0
    _opened(await client.get(kept.id), kept_sent)


async def _held(gateway: Gateway) -> list[ReviewTask]:
    return await gateway.store.list_review_tasks(TaskKind.DECISION)
