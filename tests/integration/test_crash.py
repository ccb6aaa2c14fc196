"""Durability against a real server process: kill -9 mid-load loses no answered decision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.client import AsyncGatewayClient, GatewayCallError
from gateway.types import Status
from tests.integration.serverproc import ServerProcess, cli


@pytest.fixture
def server(tmp_path: Path, policies_dir: Path) -> ServerProcess:
    proc = ServerProcess(tmp_path / "var", policies_dir)
    yield proc  # type: ignore[misc]
    proc.close()


async def test_kill_9_loses_no_answered_decision(server: ServerProcess) -> None:
    """Every decision answered before SIGKILL is there after restart, and the chain verifies."""
    created = cli(
        "keys",
        "create",
        "--app",
        "t-echo",
        "--data-dir",
        str(server.data_dir),
        "--policies",
        str(server.policies),
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    server.start()
    answered: dict[str, Status] = {}
    stop = asyncio.Event()
    enough = asyncio.Event()

    async def worker(client: AsyncGatewayClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            score = (0.9, 0.1, 0.5)[(n + i) % 3]
            try:
                d = await client.decide("t-echo", {"score": score, "n": float(i)})
            except GatewayCallError:
                return  # the server died under this call: nothing was promised
            answered[d.id] = d.status
            if len(answered) >= 300:
                enough.set()

    async with AsyncGatewayClient(f"127.0.0.1:{server.port}", api_key=key, timeout=5) as client:
        workers = [asyncio.create_task(worker(client, n)) for n in range(32)]
        await asyncio.wait_for(enough.wait(), 60)
        server.kill()
        stop.set()
        await asyncio.gather(*workers)
    assert len(answered) >= 300

    server.start()
    async with AsyncGatewayClient(f"127.0.0.1:{server.port}", api_key=key) as client:
        for decision_id, status in answered.items():
            assert (await client.get(decision_id)).status is status
    assert server.terminate() == 0
    verified = cli("audit", "verify", "--data-dir", str(server.data_dir))
    assert verified.returncode == 0, verified.stderr
    assert "ok:" in verified.stdout


def test_sigterm_finishes_and_exits_cleanly(server: ServerProcess) -> None:
    """SIGTERM stops the gateway with exit status 0."""
    server.start()
    assert server.terminate() == 0
