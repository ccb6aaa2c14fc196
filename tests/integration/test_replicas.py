"""Two gateway replicas on one PostgreSQL database, as behind a load balancer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.core.reviews import Reviewer
from gateway.errors import Conflict
from gateway.testing import create_api_key
from gateway.types import Account, Role, Status, TaskKind, Verdict
from tests.integration.replicas import replicas
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

ALICE = Reviewer("alice", "reviewer")


async def _client(gw: Gateway, key: str) -> AsyncGatewayClient:
    return AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key)


async def test_verdict_on_b_answers_a_waiting_caller_on_a(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """A Decide waiting on replica A is answered by a verdict given through replica B."""
    a, b = replicas
    key = await create_api_key(a)
    async with await _client(a, key) as client:
        call = asyncio.create_task(client.decide("t-echo", {"score": 0.5}, wait=30))
        deadline = asyncio.get_running_loop().time() + 10
        tasks = []
        while not tasks:
            if call.done():
                pytest.fail(f"Decide ended before its review task appeared: {call.result()}")
            assert asyncio.get_running_loop().time() < deadline, "no review task on B after 10 s"
            await asyncio.sleep(0.02)
            tasks = await b.store.list_review_tasks(TaskKind.DECISION)
        await b.reviews.submit(tasks[0].decision_id, ALICE, Verdict.APPROVE, "checked on B")
        decided = await asyncio.wait_for(call, 10)
    assert decided.status is Status.APPROVED
    assert decided.id == tasks[0].decision_id


async def test_claims_from_both_replicas_never_share_an_item(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """Reviewers on A and B claiming the same items at once: each item has one holder."""
    a, b = replicas
    key = await create_api_key(a)
    async with await _client(a, key) as client:
        ids = [(await client.decide("t-echo", {"score": 0.5})).id for _ in range(8)]
    now = datetime.now(UTC)
    people = [
        (gw, Account(f"{name}{i}", Role.REVIEWER, ("reviewers",), "unused", now))
        for gw, name in ((a, "a"), (b, "b"))
        for i in range(3)
    ]

    async def claim(gw: Gateway, who: Account, did: str) -> tuple[str, str] | None:
        try:
            await gw.queue.claim(who, did, TaskKind.DECISION)
        except Conflict:
            return None
        return did, who.name

    results = await asyncio.gather(*(claim(gw, who, did) for did in ids for gw, who in people))
    won = [r for r in results if r is not None]
    assert sorted(did for did, _ in won) == sorted(ids)
    for did, name in won:
        item = await a.queue._store.open_task(did, TaskKind.DECISION)
        assert item is not None
        assert item.claimed_by == name


async def test_concurrent_load_on_both_keeps_one_verifiable_chain(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """Decides and verdicts on both replicas at once leave one chain that verifies."""
    a, b = replicas
    key = await create_api_key(a)
    async with await _client(a, key) as ca, await _client(b, key) as cb:
        scores = [0.9, 0.5, 0.1]
        decided = await asyncio.gather(
            *((ca if i % 2 else cb).decide("t-echo", {"score": scores[i % 3]}) for i in range(120))
        )
        pending = [d.id for d in decided if d.status is Status.PENDING_REVIEW]
        assert len(pending) == 40
        await asyncio.gather(
            *(
                (a if i % 2 else b).reviews.submit(did, ALICE, Verdict.REJECT, "load")
                for i, did in enumerate(pending)
            )
        )
    for gw in (a, b):
        report = await gw.audit.verify()
        assert report.result.ok, report.result.reason
    assert report.result.checked == len(await a.store.audit_events(limit=100_000))
    trail = await b.audit.trail(pending[0])
    assert [e.type for e in trail][-1] == "decision.reviewed"
