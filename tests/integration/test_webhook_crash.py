"""The outbox against a real server process: a gateway killed with SIGKILL after a decision
became final, before its webhook could be delivered, delivers it after restart, same id."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.client import AsyncGatewayClient
from gateway.types import Status
from tests.integration.serverproc import ServerProcess, cli
from tests.integration.webhook_receiver import (
    SECRET,
    SECRET_ENV,
    WebhookReceiver,
    write_hook_policy,
)

FAST = {
    SECRET_ENV: SECRET,
    "HITL_OUTBOX_INTERVAL": "0.1",
    "HITL_OUTBOX_BACKOFF_BASE": "0.2",
    "HITL_OUTBOX_BACKOFF_MAX": "0.5",
    "HITL_SLA_SWEEP_INTERVAL": "0.2",
}


@pytest.fixture
def receiver(policies_dir: Path) -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    write_hook_policy(policies_dir, r.url, sla="1s")
    yield r
    r.stop()


@pytest.fixture
def server(
    tmp_path: Path, policies_dir: Path, receiver: WebhookReceiver
) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "var", policies_dir, env=FAST)
    yield proc
    proc.close()


def _outbox(data_dir: Path) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(data_dir / "gateway.db") as conn:
        return conn.execute("SELECT id, attempts, delivered_at FROM outbox").fetchall()


async def test_sigkill_before_delivery_delivers_after_restart_same_id(
    server: ServerProcess, receiver: WebhookReceiver
) -> None:
    """Expired while the receiver is unreachable, killed, restarted: delivered once, same id."""
    created = cli(
        "keys", "create", "--app", "t-hook",
        "--data-dir", str(server.data_dir), "--policies", str(server.policies),
        env={SECRET_ENV: SECRET},
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    server.start()
    async with AsyncGatewayClient(f"127.0.0.1:{server.port}", api_key=key) as client:
        d = await client.decide("t-hook", {"score": 0.5, "customer": {"name": "Ana"}})
        assert d.status is Status.PENDING_REVIEW
        for _ in range(100):  # the SLA (1 s) passes and the sweeper expires it
            if (await client.get(d.id)).status is Status.EXPIRED:
                break
            await asyncio.sleep(0.1)
        assert (await client.get(d.id)).status is Status.EXPIRED
    for _ in range(100):  # committed with its message, which cannot be delivered yet
        rows = _outbox(server.data_dir)
        if rows and rows[0][1] >= 1:
            break
        await asyncio.sleep(0.1)
    ((message_id, attempts, delivered),) = _outbox(server.data_dir)
    assert message_id == f"msg_{d.id}_final"
    assert attempts >= 1 and delivered is None
    server.kill()

    receiver.start()
    server.start()
    (delivery,) = await asyncio.to_thread(receiver.wait_for, 1, 30.0)
    assert delivery.id == message_id
    assert delivery.payload["type"] == "decision.final"
    assert delivery.payload["data"]["status"] == "EXPIRED"
    await asyncio.sleep(0.5)
    assert len(receiver.received()) == 1
    assert server.terminate() == 0
