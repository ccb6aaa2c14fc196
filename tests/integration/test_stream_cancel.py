"""Many streams at once are all served, and a stream its client cancels is counted and logged."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import replace

import grpc
import httpx
import pytest
from structlog.testing import capture_logs

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings

BURST = 2000
WATCH = "hitl.gateway.v1.DecisionGateway/WatchDecision"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Bounds above the burst, so that any stream lost is lost below them."""
    return replace(settings, max_calls_per_key=BURST, max_concurrent_rpcs=BURST)


async def _cancelled_count(gateway: Gateway) -> float:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
        text = (await http.get("/metrics")).text
    pattern = rf'hitl_rpc_errors_total\{{code="CANCELLED",method="{re.escape(WATCH)}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


async def test_a_burst_of_watches_from_one_client_is_served_in_full(
    gateway: Gateway, client: AsyncGatewayClient, api_key: str
) -> None:
    """2,000 watches opened at once on one connection each get their first message; none is
    cancelled by the server."""
    held = await client.decide("t-echo", {"score": 0.5})
    md = (("authorization", f"Bearer {api_key}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        stub = pb_grpc.DecisionGatewayStub(channel)
        calls = [
            stub.WatchDecision(pb.WatchDecisionRequest(decision_id=held.id), metadata=md)
            for _ in range(BURST)
        ]

        async def first(
            call: grpc.aio.UnaryStreamCall[pb.WatchDecisionRequest, pb.Decision],
        ) -> str:
            try:
                await call.read()
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return "OK"

        async with asyncio.timeout(60):
            outcomes = Counter(await asyncio.gather(*(first(c) for c in calls)))
        for call in calls:
            call.cancel()
    assert outcomes == {"OK": BURST}


async def test_a_cancelled_watch_is_counted_and_logged(
    gateway: Gateway, client: AsyncGatewayClient, api_key: str
) -> None:
    """A watch its client cancels adds one to hitl_rpc_errors_total{code="CANCELLED"} and is
    logged at info."""
    held = await client.decide("t-echo", {"score": 0.5})
    before = await _cancelled_count(gateway)
    md = (("authorization", f"Bearer {api_key}"),)
    with capture_logs() as logs:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
            stub = pb_grpc.DecisionGatewayStub(channel)
            call = stub.WatchDecision(pb.WatchDecisionRequest(decision_id=held.id), metadata=md)
            await call.read()
            call.cancel()
            for _ in range(200):
                if await _cancelled_count(gateway) > before:
                    break
                await asyncio.sleep(0.02)
    assert await _cancelled_count(gateway) == before + 1
    cancelled = [e for e in logs if e["event"] == "rpc.cancelled"]
    assert cancelled == [
        {"event": "rpc.cancelled", "log_level": "info", "method": WATCH, "code": "CANCELLED"}
    ]
