"""Bounds on calls in progress: one key cannot take every call slot, nor can callers without a
key, and the health check answers throughout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key
from gateway.types import Status

SHARE = 4
HELD = {"score": 0.5}
Watch = grpc.aio.UnaryStreamCall[pb.WatchDecisionRequest, pb.Decision]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small bounds, so a test reaches them with a handful of calls."""
    return replace(
        settings,
        max_calls_per_key=SHARE,
        max_concurrent_rpcs=2 * SHARE,
        max_public_streams=2,
        watch_max_seconds=60.0,
    )


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        yield ch


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _open(
    stub: pb_grpc.DecisionGatewayStub, token: str, decision_id: str
) -> Watch | grpc.aio.AioRpcError:
    """A watch that has delivered its first message, or the error that ended it."""
    call = stub.WatchDecision(pb.WatchDecisionRequest(decision_id=decision_id), metadata=_md(token))
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        return exc
    assert isinstance(first, pb.Decision)
    return call


async def _released(gateway: Gateway, token: str) -> None:
    """Wait (bounded) until the gateway has seen every call of ``token`` end."""
    key_id = token.split("_")[1]
    for _ in range(200):
        if gateway.auth.slots.in_progress(key_id) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"key {key_id} still holds {gateway.auth.slots.in_progress(key_id)}")


async def test_one_key_at_its_share_leaves_other_keys_and_health_served(
    gateway: Gateway, channel: grpc.aio.Channel
) -> None:
    """A burst of watches from one key gets its share, the excess RESOURCE_EXHAUSTED naming the
    limit; another key's Decide and the health check still answer, and closing frees the share."""
    hog = await create_api_key(gateway, "t-echo")
    other = await create_api_key(gateway, "t-echo")
    target = f"127.0.0.1:{gateway.grpc_port}"
    async with AsyncGatewayClient(target, api_key=hog) as c:
        held = await c.decide("t-echo", HELD)
    stub = pb_grpc.DecisionGatewayStub(channel)

    results = await asyncio.gather(*(_open(stub, hog, held.id) for _ in range(3 * SHARE)))
    open_ = [r for r in results if not isinstance(r, grpc.aio.AioRpcError)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(open_) == SHARE
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all("max_calls_per_key=4" in (r.details() or "") for r in refused)

    async with AsyncGatewayClient(target, api_key=other) as c:
        assert (await c.decide("t-echo", {"score": 0.9})).status is Status.APPROVED
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING

    for call in open_:
        call.cancel()
    await _released(gateway, hog)
    again = await _open(stub, hog, held.id)
    assert not isinstance(again, grpc.aio.AioRpcError)
    again.cancel()


async def test_all_keys_together_are_bounded_and_health_still_answers(
    gateway: Gateway, channel: grpc.aio.Channel
) -> None:
    """With two keys at their share the gateway's bound is reached: a third key gets
    RESOURCE_EXHAUSTED naming max_concurrent_rpcs, while the health check answers."""
    a, b, c = [await create_api_key(gateway, "t-echo") for _ in range(3)]
    target = f"127.0.0.1:{gateway.grpc_port}"
    async with AsyncGatewayClient(target, api_key=a) as client:
        held = await client.decide("t-echo", HELD)
    stub = pb_grpc.DecisionGatewayStub(channel)
    watches = await asyncio.gather(*(_open(stub, k, held.id) for k in (a, b) for _ in range(SHARE)))
    assert not any(isinstance(w, grpc.aio.AioRpcError) for w in watches)

    refused = await _open(stub, c, held.id)
    assert isinstance(refused, grpc.aio.AioRpcError)
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_concurrent_rpcs=8" in (refused.details() or "")
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    for w in watches:
        assert not isinstance(w, grpc.aio.AioRpcError)
        w.cancel()


async def test_unauthenticated_streams_have_their_own_bound(
    gateway: Gateway, channel: grpc.aio.Channel
) -> None:
    """Health watches beyond max_public_streams are refused; Check and keyed calls still answer."""
    health = health_pb2_grpc.HealthStub(channel)
    watches = []
    outcomes: list[object] = []
    # One after another: started together, which of them the server takes first is arbitrary.
    for _ in range(3):
        w = health.Watch(health_pb2.HealthCheckRequest(service=""))
        watches.append(w)
        try:
            outcomes.append((await w.read()).status)
        except grpc.aio.AioRpcError as exc:
            outcomes.append(exc.code())
    serving = health_pb2.HealthCheckResponse.SERVING
    assert outcomes == [serving, serving, grpc.StatusCode.RESOURCE_EXHAUSTED]
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == serving
    token = await create_api_key(gateway, "t-echo")
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=token) as c:
        assert (await c.decide("t-echo", {"score": 0.9})).status is Status.APPROVED
    for w in watches:
        w.cancel()
