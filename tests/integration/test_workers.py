"""``serve --workers 2`` on one SQLite data directory behaves as one gateway: a caller waiting
on one worker hears a verdict given through the other within 50 ms; a pause set through one
holds decisions on the other within a second; ``kill -9`` of a worker under load loses no
answered decision, the worker is started again, and the chain verifies."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import grpc
import httpx
import pytest

from gateway._pb.hitl.admin.v1 import admin_pb2, admin_pb2_grpc
from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.integration.conftest import ROOT
from tests.integration.serverproc import cli
from tests.integration.workerprocs import Workers, my_connections, worker_holding

PASSWORD = "correct horse battery"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(Path(__file__).parent / "policies" / "test-apps.yaml", policies)
    w = Workers(tmp_path / "var", policies, 2, {})
    w.start()
    try:
        yield w
    finally:
        w.close()


def _where(w: Workers) -> list[str]:
    return ["--data-dir", str(w.data_dir), "--policies", str(w.policies)]


def _key(w: Workers, *args: str) -> str:
    made = cli("keys", "create", *args, *_where(w))
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[0].strip()


def _request(app: str, wait: float = 0.0, **fields: object) -> pb.DecideRequest:
    req = pb.DecideRequest(application=app)
    req.input.update(fields)
    if wait:
        req.wait.FromMilliseconds(int(wait * 1000))
    return req


async def _channel_on(
    w: Workers, avoid: int | None, want: int | None
) -> tuple[grpc.aio.Channel, int]:
    """A channel whose connection landed on a worker (not ``avoid``, or ``want``)."""
    for _ in range(40):
        before = my_connections(w.grpc_port)
        # A pool of its own: channels to one target share connections by default.
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{w.grpc_port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        await channel.channel_ready()
        (local,) = my_connections(w.grpc_port) - before
        pid = worker_holding(w.grpc_port, local, w.pids())
        assert pid is not None
        if pid != avoid and (want is None or pid == want):
            return channel, pid
        await channel.close()
    raise AssertionError("no connection landed on the wanted worker in 40 tries")


async def _web_on(w: Workers, pid: int) -> httpx.AsyncClient:
    """A browser-like client whose one keep-alive connection is served by worker ``pid``."""
    for _ in range(40):
        before = my_connections(w.http_port)
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{w.http_port}/ui",
            limits=httpx.Limits(max_connections=1),
        )
        await client.get("/login")
        (local,) = my_connections(w.http_port) - before
        if worker_holding(w.http_port, local, w.pids()) == pid:
            return client
        await client.aclose()
    raise AssertionError("no HTTP connection landed on the wanted worker in 40 tries")


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


async def test_a_verdict_through_one_worker_wakes_a_caller_waiting_on_the_other(
    workers: Workers,
) -> None:
    """The caller waits on worker A; the reviewer signs in and approves through worker B;
    the caller is answered within 50 ms of the verdict's answer page."""
    key = _key(workers, "--app", "t-echo")
    added = cli(
        "users", "add", "rita", "--role", "reviewer", *_where(workers), stdin=f"{PASSWORD}\n"
    )
    assert added.returncode == 0, added.stderr
    channel, a = await _channel_on(workers, None, None)
    try:
        stub = pb_grpc.DecisionGatewayStub(channel)
        md = (("authorization", f"Bearer {key}"),)
        first = _request("t-echo", score=0.5)
        first.idempotency_key = "loan-7"
        held = await stub.Decide(first, metadata=md)
        assert held.status == pb.PENDING_REVIEW
        # The same request again, waiting: blocks on worker A until the verdict.
        again = _request("t-echo", wait=10, score=0.5)
        again.idempotency_key = "loan-7"
        waiting = asyncio.ensure_future(stub.Decide(again, metadata=md))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        b = next(pid for pid in workers.pids() if pid != a)
        web = await _web_on(workers, b)
        try:
            page = await web.get("/login")
            signed = await web.post(
                "/login", data={"csrf": _csrf(page), "name": "rita", "password": PASSWORD}
            )
            assert signed.status_code == 303, signed.text
            item = await web.get(f"/items/{held.id}")
            assert item.status_code == 200, item.text
            verdict = await web.post(
                f"/items/{held.id}/verdict",
                data={"csrf": _csrf(item), "verdict": "approve", "reason": "ok"},
            )
            assert verdict.status_code in (200, 303), verdict.text
            given = time.monotonic()
            heard = await asyncio.wait_for(waiting, timeout=5)
            lag = time.monotonic() - given
            assert heard.status == pb.APPROVED and heard.id == held.id
            assert lag < 0.05, f"heard {lag * 1000:.0f} ms after the verdict"
        finally:
            await web.aclose()
    finally:
        await channel.close()


async def test_a_pause_through_one_worker_holds_decisions_on_the_other(workers: Workers) -> None:
    """A pause set through worker B's AdminService: decisions on worker A are held within a
    second."""
    key = _key(workers, "--app", "t-echo")
    admin = _key(workers, "--role", "admin")
    channel, a = await _channel_on(workers, None, None)
    try:
        stub = pb_grpc.DecisionGatewayStub(channel)
        md = (("authorization", f"Bearer {key}"),)
        assert (await stub.Decide(_request("t-echo", score=0.9), metadata=md)).status == pb.APPROVED
        other, _ = await _channel_on(workers, a, None)
        try:
            admin_md = (("authorization", f"Bearer {admin}"),)
            await admin_pb2_grpc.AdminServiceStub(other).SetSwitch(
                admin_pb2.SetSwitchRequest(
                    kind=admin_pb2.SWITCH_KIND_APPLICATION,
                    name="t-echo",
                    paused=True,
                    reason="incident",
                ),
                metadata=admin_md,
            )
            started = time.monotonic()
            while True:
                d = await stub.Decide(_request("t-echo", score=0.9), metadata=md)
                if d.status == pb.PENDING_REVIEW:
                    break
                assert time.monotonic() - started < 1.0, "worker A still decided automatically"
                await asyncio.sleep(0.02)
        finally:
            await other.close()
    finally:
        await channel.close()


async def test_killing_a_worker_under_load_loses_no_answered_decision(workers: Workers) -> None:
    """SIGKILL of one worker while both decide: every answered decision is stored, the worker
    is started again, the other kept serving, and the chain verifies."""
    key = _key(workers, "--app", "t-echo")
    md = (("authorization", f"Bearer {key}"),)
    answered: list[str] = []
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            async with grpc.aio.insecure_channel(f"127.0.0.1:{workers.grpc_port}") as ch:
                stub = pb_grpc.DecisionGatewayStub(ch)
                try:
                    for _ in range(20):
                        d = await stub.Decide(_request("t-echo", score=0.9), metadata=md)
                        answered.append(d.id)
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)  # its worker died: connect again

    callers = [asyncio.ensure_future(caller()) for _ in range(4)]
    await asyncio.sleep(1.0)
    victim = workers.pids()[0]
    os.kill(victim, signal.SIGKILL)
    survivor_count = len(answered)
    await asyncio.sleep(3.0)
    stop.set()
    await asyncio.gather(*callers)
    assert len(answered) > survivor_count, "the other worker stopped serving"
    assert len(workers.pids()) == 2 and victim not in workers.pids()
    assert workers.stop() == 0
    verified = cli("audit", "verify", "--data-dir", str(workers.data_dir))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with closing(sqlite3.connect(workers.data_dir / "gateway.db")) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM decisions")}
    assert set(answered) <= stored, "an answered decision is missing"


async def test_the_rate_limit_is_one_budget_over_the_workers(tmp_path: Path) -> None:
    """A key with a burst of three calling through both workers gets three calls in all."""
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(Path(__file__).parent / "policies" / "test-apps.yaml", policies)
    w = Workers(tmp_path / "var", policies, 2, {"HITL_RATE_LIMIT": "0.001", "HITL_RATE_BURST": "3"})
    w.start()
    try:
        key = _key(w, "--app", "t-echo")
        md = (("authorization", f"Bearer {key}"),)
        a, first = await _channel_on(w, None, None)
        b, _ = await _channel_on(w, first, None)
        codes = []
        try:
            for channel in (a, b, a, b, a, b):
                try:
                    await pb_grpc.DecisionGatewayStub(channel).Decide(
                        _request("t-echo", score=0.9), metadata=md
                    )
                    codes.append("OK")
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code().name)
        finally:
            await a.close()
            await b.close()
        assert codes == ["OK", "OK", "OK"] + ["RESOURCE_EXHAUSTED"] * 3
    finally:
        w.close()
