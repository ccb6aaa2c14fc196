"""A full disk under a running gateway on SQLite: Decide, readiness and the Python client.

The data directory is a real, small filesystem (a 8 MiB tmpfs mounted for each test) filled to
the last byte, not a store made to fail: SQLite reports the full disk itself. Mounting needs
root, which CI has; without it these tests fail rather than skip.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from structlog.testing import capture_logs

from gateway.api.decisions import SERVICE
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError, RetryPolicy
from gateway.config import Settings
from gateway.store.sqlite.store import SQLiteStore
from gateway.testing import create_api_key
from gateway.types import AuditEvent, Role, Status


class SmallDisk:
    """A tmpfs of a few MiB that the test fills and frees."""

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.filler = mount / "filler"

    def fill(self) -> None:
        """Write until not one more byte fits."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 1 << 12, 1):
                chunk = b"\0" * size
                while True:
                    try:
                        os.write(fd, chunk)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a small filesystem (needs root, as in CI): {done.stderr}")
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def disk_gateway(settings: Settings, small_disk: SmallDisk) -> AsyncIterator[Gateway]:
    async with Gateway(replace(settings, data_dir=small_disk.mount / "var")) as gw:
        yield gw


async def _readiness_becomes(gw: Gateway, status: int) -> dict[str, bool]:
    """Poll /readyz until it answers ``status`` (its store probe is cached for a second)."""
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as http:
        while (ready := await http.get("/readyz")).status_code != status:
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.1)
    checks: dict[str, bool] = ready.json()["checks"]
    return checks


def _created(events: list[AuditEvent]) -> int:
    return sum(1 for e in events if e.type == "decision.created")


async def test_a_full_disk_is_unavailable_not_recorded_and_readiness_follows_it(
    disk_gateway: Gateway, small_disk: SmallDisk
) -> None:
    """On a full disk Decide answers UNAVAILABLE "not recorded" and /readyz 503 naming the store;
    once space is freed /readyz is 200 again and Decide works."""
    gw = disk_gateway
    key = await create_api_key(gw)
    once = RetryPolicy(attempts=1)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key, retry=once) as c:
        await _readiness_becomes(gw, 200)
        before = await gw.store.audit_events()
        small_disk.fill()
        with pytest.raises(GatewayCallError) as err:
            await c.decide("t-echo", {"score": 0.9}, idempotency_key="full-1")
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        assert "the decision was not recorded" in err.value.details
        assert "same idempotency key" in err.value.details
        assert err.value.retry_after is not None
        checks = await _readiness_becomes(gw, 503)
        assert checks["store"] is False
        assert await gw.store.audit_events() == before

        small_disk.free()
        assert (await _readiness_becomes(gw, 200))["store"] is True
        decided = await c.decide("t-echo", {"score": 0.9}, idempotency_key="full-1")
    assert decided.status is Status.APPROVED
    assert _created(await gw.store.audit_events()) == _created(before) + 1


async def test_the_python_client_retries_a_full_disk_and_makes_one_decision(
    disk_gateway: Gateway, small_disk: SmallDisk
) -> None:
    """The client, given no idempotency key, retries UNAVAILABLE from a full disk with a key of
    its own until space is freed, and exactly one decision is recorded."""
    gw = disk_gateway
    assert isinstance(gw.store, SQLiteStore)
    key = await create_api_key(gw)
    patient = RetryPolicy(attempts=60, first_delay=0.05, max_delay=0.2)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key, retry=patient) as c:
        before = _created(await gw.store.audit_events())
        answered = gw.store.stats.jobs
        small_disk.fill()
        call = asyncio.ensure_future(c.decide("t-echo", {"score": 0.9}))
        deadline = time.monotonic() + 10
        while gw.store.stats.jobs < answered + 3:  # three attempts failed on the full disk
            assert not call.done() and time.monotonic() < deadline
            await asyncio.sleep(0.02)
        small_disk.free()
        decided = await asyncio.wait_for(call, 20)
    assert decided.status is Status.APPROVED
    assert _created(await gw.store.audit_events()) == before + 1


async def test_readiness_polls_share_one_probe_write_a_second(gateway: Gateway) -> None:
    """Twenty readiness checks within a second commit at most one probe write, not twenty (the
    write may be the one the gRPC health follower made just before)."""
    gw = gateway
    assert isinstance(gw.store, SQLiteStore)
    await asyncio.sleep(1.1)  # past the probe's reuse interval
    committed = gw.store.stats.transactions
    results = await asyncio.gather(*(gw.readiness() for _ in range(20)))
    assert all(r["store"] for r in results)
    assert gw.store.stats.transactions - committed <= 2


async def test_a_failing_checkpoint_is_retried_once_per_interval_not_at_every_poll(
    settings: Settings, small_disk: SmallDisk
) -> None:
    """On a full disk a failing checkpoint is tried again once per ``audit_checkpoint_seconds``,
    not every quarter second: the log (often on the same disk) does not fill with tracebacks."""
    slow = replace(settings, data_dir=small_disk.mount / "var", audit_checkpoint_seconds=1.0)
    async with Gateway(slow) as gw:
        key = await create_api_key(gw)
        checkpointer = gw._checkpointer
        assert checkpointer is not None
        deadline = time.monotonic() + 10
        while checkpointer.last_seq < gw.store.chain_head()[0]:  # the key's event is signed
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
            with capture_logs() as logs:
                # Within the second before the next checkpoint is due: the head moves, then
                # the disk is full when the checkpointer comes to sign it.
                await client.decide("t-echo", {"score": 0.9})
                small_disk.fill()
                await asyncio.sleep(3.5)
        small_disk.free()
    failed = [e for e in logs if e["event"] == "audit.checkpoint_failed"]
    assert 1 <= len(failed) <= 4


async def test_the_reviewer_ui_answers_503_when_the_store_cannot_record(
    disk_gateway: Gateway, small_disk: SmallDisk
) -> None:
    """On a full disk signing in, which records a session, answers 503 saying nothing was
    recorded, not an anonymous 500; with space back the same sign-in works."""
    gw = disk_gateway
    await gw.accounts.create("rita", Role.REVIEWER, "correct horse battery")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as http:

        async def sign_in() -> httpx.Response:
            form = (await http.get("/ui/login")).text
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
            assert csrf is not None
            data = {"csrf": csrf[1], "name": "rita", "password": "correct horse battery"}
            return await http.post("/ui/login", data=data)

        small_disk.fill()
        refused = await sign_in()
        assert refused.status_code == 503, refused.text
        assert "not recorded" in refused.text
        small_disk.free()
        signed_in = await sign_in()
        assert signed_in.status_code == 303
        assert signed_in.headers["location"].endswith("/ui/")


async def test_grpc_health_of_decide_follows_the_store(
    disk_gateway: Gateway, small_disk: SmallDisk
) -> None:
    """The gRPC health status the chart's readiness probe reads turns NOT_SERVING on a full disk
    and SERVING again once space is freed, as /readyz does."""
    gw = disk_gateway
    request = health_pb2.HealthCheckRequest(service=SERVICE)
    serving = health_pb2.HealthCheckResponse.SERVING

    async def becomes(status: int) -> None:
        deadline = time.monotonic() + 15
        while (await health.Check(request)).status != status:
            assert time.monotonic() < deadline, f"health never became {status}"
            await asyncio.sleep(0.2)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        await becomes(serving)
        small_disk.fill()
        await becomes(health_pb2.HealthCheckResponse.NOT_SERVING)
        small_disk.free()
        await becomes(serving)
