"""Two gateway replicas on one PostgreSQL database when one loses its change listener."""

from __future__ import annotations

import asyncio

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.core.notifier import REFRESH
from gateway.core.reviews import Reviewer
from gateway.store.postgres.listen import Backoff
from gateway.store.postgres.store import PostgresStore
from gateway.testing import create_api_key
from gateway.types import Status, TaskKind, Verdict
from tests.integration.replicas import replicas
from tests.pgcontrol import Gate, terminate_listener
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]


async def test_verdict_given_while_a_was_deaf_still_answers_its_waiting_caller(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """A Decide waiting on A gets a verdict given on B while A's listener was down."""
    a, b = replicas
    assert isinstance(a.store, PostgresStore)
    gate = Gate()
    a.store.listener.backoff = Backoff(sleep=gate.sleep)
    key = await create_api_key(a)
    async with AsyncGatewayClient(f"127.0.0.1:{a.grpc_port}", api_key=key) as client:
        call = asyncio.create_task(client.decide("t-echo", {"score": 0.5}, wait=30))
        deadline = asyncio.get_running_loop().time() + 10
        tasks = []
        while not tasks:
            if call.done():
                pytest.fail(f"Decide ended before its review task appeared: {call.result()}")
            assert asyncio.get_running_loop().time() < deadline, "no review task on B after 10 s"
            await asyncio.sleep(0.02)
            tasks = await b.store.list_review_tasks(TaskKind.DECISION)
        await terminate_listener(pg_dsn, a.store)
        await asyncio.wait_for(gate.holding.wait(), 10)
        assert (await a.readiness())["store:changes"] is False
        await b.reviews.submit(
            tasks[0].decision_id, Reviewer("alice", "reviewer"), Verdict.APPROVE, "on B"
        )
        assert not call.done()

        gate.opened.set()
        decided = await asyncio.wait_for(call, 10)
    assert decided.status is Status.APPROVED
    assert (await a.readiness())["store:changes"] is True


async def test_live_pages_refresh_after_the_listener_comes_back(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """A queue page open on A is told to fetch again once A listens again after an outage."""
    a, _ = replicas
    assert isinstance(a.store, PostgresStore)
    gate = Gate()
    a.store.listener.backoff = Backoff(sleep=gate.sleep)
    with a.notifier.subscribe_all() as page:
        await terminate_listener(pg_dsn, a.store)
        await asyncio.wait_for(gate.holding.wait(), 10)
        assert page.empty()
        gate.opened.set()
        assert await asyncio.wait_for(page.get(), 10) is REFRESH
