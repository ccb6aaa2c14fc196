"""Admission control: past ``max_deciding`` decisions in the making, a Decide is shed at once
with RESOURCE_EXHAUSTED and a retry pushback; callers waiting for people hold no slot."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import grpc
import httpx
import pytest

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.app import Gateway
from gateway.config import Settings
from gateway.testing import create_api_key
from gateway.types import TaskKind


def _request(app: str, wait: float = 0.0, **fields: Any) -> pb.DecideRequest:
    req = pb.DecideRequest(application=app)
    req.input.update(fields)
    if wait:
        req.wait.FromMilliseconds(int(wait * 1000))
    return req


async def _shed_count(gw: Gateway) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{gw.http_port}/metrics")).text
    line = next(ln for ln in text.splitlines() if ln.startswith("hitl_decisions_shed_total"))
    return float(line.split()[-1])


async def test_decisions_over_the_bound_are_shed_at_once_with_a_pushback(
    settings: Settings,
) -> None:
    """Two slow decisions in the making fill a bound of two: a third is refused at once
    (not queued behind them) with RESOURCE_EXHAUSTED, a pushback and the metric counted; once
    they are recorded, decisions are admitted again."""
    async with Gateway(replace(settings, max_deciding=2)) as gw:
        key = await create_api_key(gw, "t-slow")
        md = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            stub = pb_grpc.DecisionGatewayStub(channel)
            shed_before = await _shed_count(gw)
            slow = [
                asyncio.ensure_future(
                    stub.Decide(_request("t-slow", sleep_s=0.15, score=0.9), metadata=md)
                )
                for _ in range(2)
            ]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while gw.pipeline._admission.in_flight < 2:
                assert loop.time() < deadline, "the slow decisions were not admitted"
                await asyncio.sleep(0.005)
            started = loop.time()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Decide(_request("t-slow", sleep_s=0.0, score=0.9), metadata=md)
            assert loop.time() - started < 0.1, "shed only after waiting for a slot"
            assert err.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_deciding=2" in (err.value.details() or "")
            trailers = dict(err.value.trailing_metadata() or ())
            assert int(trailers["grpc-retry-pushback-ms"]) > 0
            assert await _shed_count(gw) == shed_before + 1
            for answer in await asyncio.gather(*slow):
                assert answer.status == pb.APPROVED
            after = await stub.Decide(_request("t-slow", sleep_s=0.0, score=0.9), metadata=md)
            assert after.status == pb.APPROVED
            assert gw.pipeline._admission.in_flight == 0


async def test_callers_waiting_for_a_verdict_hold_no_slot(settings: Settings) -> None:
    """Two held decisions whose callers wait for people do not keep a third out."""
    async with Gateway(replace(settings, max_deciding=2)) as gw:
        key = await create_api_key(gw, "t-echo")
        md = (("authorization", f"Bearer {key}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            stub = pb_grpc.DecisionGatewayStub(channel)
            waiting = [
                asyncio.ensure_future(
                    stub.Decide(_request("t-echo", wait=30, score=0.5), metadata=md)
                )
                for _ in range(2)
            ]
            deadline = asyncio.get_running_loop().time() + 5
            while sum((await gw.store.queue_counts(TaskKind.DECISION)).values()) < 2:
                assert asyncio.get_running_loop().time() < deadline, "not held"
                await asyncio.sleep(0.01)
            assert gw.pipeline._admission.in_flight == 0
            third = await stub.Decide(_request("t-echo", score=0.9), metadata=md)
            assert third.status == pb.APPROVED
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
