"""Watches end at their lifetime, the decision still open, and the Python client watches again."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import grpc
import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayClient
from gateway.config import Settings
from gateway.core.reviews import Reviewer
from gateway.types import Status, Verdict

LIFETIME = 0.3
HELD = {"score": 0.5}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, watch_max_seconds=LIFETIME)


async def test_a_watch_ends_with_ok_at_its_lifetime(
    gateway: Gateway, client: AsyncGatewayClient, api_key: str
) -> None:
    """A watch on a decision nobody reviews ends with OK after watch_max_seconds, still open."""
    held = await client.decide("t-echo", HELD)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.DecisionGatewayStub(channel)
        started = time.monotonic()
        call = stub.WatchDecision(
            pb.WatchDecisionRequest(decision_id=held.id),
            metadata=(("authorization", f"Bearer {api_key}"),),
        )
        async with asyncio.timeout(10):
            seen = [m.status async for m in call]
        assert seen == [pb.PENDING_REVIEW]
        assert await call.code() is grpc.StatusCode.OK
        assert time.monotonic() - started >= LIFETIME


async def test_client_watches_again_until_the_verdict(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """Across several watch lifetimes the async client yields each state once, up to the verdict."""
    held = await client.decide("t-echo", HELD)

    async def review_later() -> None:
        await asyncio.sleep(4 * LIFETIME)
        await gateway.reviews.submit(held.id, Reviewer("alice", "reviewer"), Verdict.APPROVE)

    reviewer = asyncio.create_task(review_later())
    async with asyncio.timeout(10):
        seen = [d.status async for d in client.watch(held.id)]
    await reviewer
    assert seen == [Status.PENDING_REVIEW, Status.APPROVED]


async def test_blocking_client_watches_again_until_the_verdict(
    gateway: Gateway, client: AsyncGatewayClient, api_key: str
) -> None:
    """The blocking client, too, watches again after a lifetime and ends at the verdict."""
    held = await client.decide("t-echo", HELD)

    def watch() -> list[Status]:
        with GatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=api_key) as blocking:
            return [d.status for d in blocking.watch(held.id)]

    watching = asyncio.create_task(asyncio.to_thread(watch))
    await asyncio.sleep(4 * LIFETIME)
    await gateway.reviews.submit(held.id, Reviewer("alice", "reviewer"), Verdict.REJECT, "no")
    async with asyncio.timeout(10):
        seen = await watching
    assert seen == [Status.PENDING_REVIEW, Status.REJECTED]
