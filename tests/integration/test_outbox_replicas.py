"""Two replicas on one PostgreSQL database deliver each outbox message once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.reviews import Reviewer
from gateway.testing import create_api_key
from gateway.types import Verdict
from tests.integration.replicas import replicas
from tests.integration.webhook_receiver import (
    SECRET,
    SECRET_ENV,
    WebhookReceiver,
    write_hook_policy,
)
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

N = 24


@pytest.fixture
def receiver(policies_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    r = WebhookReceiver()
    write_hook_policy(policies_dir, r.url)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def settings(settings: Settings, receiver: WebhookReceiver) -> Settings:
    # Both replicas look for due messages every 20 ms: they compete for every one.
    return replace(settings, outbox_interval=0.02, outbox_backoff_base=0.2)


async def test_each_message_is_delivered_once_by_two_replicas(
    replicas: tuple[Gateway, Gateway], receiver: WebhookReceiver
) -> None:
    """Verdicts given on either replica: every decision.final arrives exactly once."""
    a, b = replicas
    key = await create_api_key(a, "t-hook")
    async with AsyncGatewayClient(f"127.0.0.1:{a.grpc_port}", api_key=key) as client:
        ids = [(await client.decide("t-hook", {"score": 0.5, "n": float(i)})).id for i in range(N)]
    await asyncio.gather(
        *(
            (a if i % 2 else b).reviews.submit(d, Reviewer("rita", "reviewer"), Verdict.APPROVE)
            for i, d in enumerate(ids)
        )
    )
    await asyncio.to_thread(receiver.wait_for, N, 30.0)
    await asyncio.sleep(0.5)  # more runs on both replicas: nothing arrives twice
    counts = Counter(d.id for d in receiver.received())
    assert counts == Counter({f"msg_{d}_final": 1 for d in ids})
    assert receiver.rejected == []
    for _ in range(100):  # each delivery is recorded just after its receiver answered
        if await a.store.outbox_backlog() == (0, None):
            break
        await asyncio.sleep(0.05)
    assert await a.store.outbox_backlog() == (0, None)
