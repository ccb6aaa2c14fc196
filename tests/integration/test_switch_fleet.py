"""The kill switch across replicas on one PostgreSQL database, and through AdminService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway._pb.hitl.admin.v1 import admin_pb2_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.core.auth import new_key
from gateway.core.switches import KillSwitches
from gateway.policy import PolicySet
from gateway.store.postgres.listen import Backoff
from gateway.store.postgres.store import PostgresStore
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.replicas import replicas
from tests.pgcontrol import Gate, terminate_listener
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

APP = "t-echo"
AUTO = {"score": 0.95}  # approved automatically unless paused
Metadata = tuple[tuple[str, str], ...]


async def _admin(gateway: Gateway, role: str = "admin") -> tuple[Metadata, str]:
    token, record = new_key((), role=role)
    await gateway.store.add_api_key(record)
    return (("authorization", f"Bearer {token}"),), record.key_id


@pytest.fixture
async def clients(
    replicas: tuple[Gateway, Gateway],
) -> AsyncIterator[tuple[AsyncGatewayClient, AsyncGatewayClient]]:
    """A decision client on each replica (one key: keys live in the shared store)."""
    a, b = replicas
    key = await create_api_key(a)
    async with (
        AsyncGatewayClient(f"127.0.0.1:{a.grpc_port}", api_key=key) as on_a,
        AsyncGatewayClient(f"127.0.0.1:{b.grpc_port}", api_key=key) as on_b,
    ):
        yield on_a, on_b


async def _held_within(client: AsyncGatewayClient, held: bool, seconds: float) -> float:
    """Decide until a decision is held (or approved, for ``held=False``); seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        decision = await client.decide(APP, AUTO, wait=0)
        elapsed = loop.time() - start
        if (decision.status is Status.PENDING_REVIEW) is held:
            if held:
                assert decision.rule == "paused"
            return elapsed
        assert elapsed < seconds, f"not {'held' if held else 'approved'} after {elapsed:.2f} s"
        await asyncio.sleep(0.02)


async def test_a_pause_on_one_replica_holds_the_next_decision_on_the_other(
    replicas: tuple[Gateway, Gateway],
    clients: tuple[AsyncGatewayClient, AsyncGatewayClient],
) -> None:
    """Paused on A, B holds its decisions within a second; resumed on A, B approves again."""
    a, _ = replicas
    _, on_b = clients
    assert (await on_b.decide(APP, AUTO, wait=0)).status is Status.APPROVED
    await a.switches.set("application", APP, True, "user:admin", "drift")
    await _held_within(on_b, True, 1.0)
    await a.switches.set("application", APP, False, "user:admin", "fixed")
    await _held_within(on_b, False, 1.0)


async def test_with_its_change_feed_cut_a_replica_still_follows_a_pause_within_a_second(
    replicas: tuple[Gateway, Gateway],
    clients: tuple[AsyncGatewayClient, AsyncGatewayClient],
    pg_dsn: str,
) -> None:
    """B's LISTEN connection is terminated and kept down; a pause on A still holds B's next
    decisions within a second, read from the store instead of announced."""
    a, b = replicas
    _, on_b = clients
    assert isinstance(b.store, PostgresStore)
    gate = Gate()
    b.store.listener.backoff = Backoff(sleep=gate.sleep)
    await terminate_listener(pg_dsn, b.store)
    await asyncio.wait_for(gate.holding.wait(), 10)
    assert (await b.readiness())["store:changes"] is False
    try:
        await a.switches.set("backend", "echo", True, "user:admin", "vendor outage")
        await _held_within(on_b, True, 1.0)
        assert b.switches.is_paused("backend", "echo")
    finally:
        gate.opened.set()


async def test_a_switch_change_is_announced_to_other_processes(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """A follower that re-reads only every minute still applies a pause made through another
    store within a second: the change feed announces it in the change's transaction."""
    a, _ = replicas
    async with PostgresStore(pg_dsn) as store:
        policies: PolicySet = a.policies
        slow = KillSwitches(store, lambda: policies, refresh_every=60, trust_for=120)
        await slow.start()
        try:
            await a.switches.set("application", APP, True, "user:admin", "drift")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.0
            while APP not in await slow.current():
                assert loop.time() < deadline, "pause not announced within 1 s"
                await asyncio.sleep(0.01)
        finally:
            await slow.stop()


async def test_admin_service_pauses_and_resumes_across_replicas_audited(
    replicas: tuple[Gateway, Gateway],
    clients: tuple[AsyncGatewayClient, AsyncGatewayClient],
) -> None:
    """SetSwitch on A pauses B's decisions and resumes them; ListSwitches on B shows the state;
    each change is an audit event naming the admin key and the reason."""
    a, b = replicas
    _, on_b = clients
    md, key_id = await _admin(a)
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as ch_a,
        grpc.aio.insecure_channel(f"127.0.0.1:{b.grpc_port}") as ch_b,
    ):
        stub_a = admin_pb2_grpc.AdminServiceStub(ch_a)
        stub_b = admin_pb2_grpc.AdminServiceStub(ch_b)
        pause = pb.SetSwitchRequest(
            kind=pb.SWITCH_KIND_APPLICATION, name=APP, paused=True, reason="INC-7 drift"
        )
        resp = await stub_a.SetSwitch(pause, metadata=md)
        assert resp.switch.paused and resp.switch.changed_by == f"app:{key_id}"
        await _held_within(on_b, True, 1.0)
        listed = await stub_b.ListSwitches(pb.ListSwitchesRequest(), metadata=md)
        [shown] = [s for s in listed.switches if s.name == APP]
        assert (shown.kind, shown.paused, shown.reason) == (
            pb.SWITCH_KIND_APPLICATION,
            True,
            "INC-7 drift",
        )
        resume = pb.SetSwitchRequest(kind=pb.SWITCH_KIND_APPLICATION, name=APP, reason="fixed")
        await stub_a.SetSwitch(resume, metadata=md)
        await _held_within(on_b, False, 1.0)
    events = [e for e in await b.store.audit_events(limit=1000) if e.type.startswith("switch.")]
    assert [(e.type, e.actor) for e in events] == [
        ("switch.paused", f"app:{key_id}"),
        ("switch.resumed", f"app:{key_id}"),
    ]
    assert [e.payload for e in events] == [
        {"kind": "application", "name": APP, "reason": "INC-7 drift"},
        {"kind": "application", "name": APP, "reason": "fixed"},
    ]


@pytest.mark.parametrize("role", ["auditor", "app"])
async def test_only_admin_keys_may_use_the_switch_rpcs(
    replicas: tuple[Gateway, Gateway], role: str
) -> None:
    """Auditor and application keys get PERMISSION_DENIED from SetSwitch and ListSwitches, and
    nothing changes."""
    a, b = replicas
    if role == "app":
        md: Metadata = (("authorization", f"Bearer {await create_api_key(a)}"),)
    else:
        md = (await _admin(a, role))[0]
    pause = pb.SetSwitchRequest(kind=pb.SWITCH_KIND_APPLICATION, name=APP, paused=True, reason="x")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        for call in (
            stub.SetSwitch(pause, metadata=md),
            stub.ListSwitches(pb.ListSwitchesRequest(), metadata=md),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await a.store.list_switches() == []
    await b.switches.refresh()
    assert not b.switches.is_paused("application", APP)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": pb.SWITCH_KIND_APPLICATION, "name": APP, "paused": True}, "reason"),
        (
            {"kind": pb.SWITCH_KIND_APPLICATION, "name": APP, "paused": True, "reason": " "},
            "reason",
        ),
        ({"name": APP, "paused": True, "reason": "x"}, "kind"),
        ({"kind": pb.SWITCH_KIND_BACKEND, "name": APP, "paused": True, "reason": "x"}, "name"),
    ],
)
async def test_bad_switch_requests_name_the_field(
    replicas: tuple[Gateway, Gateway], fields: dict[str, object], field: str
) -> None:
    """A pause without a reason, an unspecified kind or an unknown name is INVALID_ARGUMENT
    naming the field, and nothing is written."""
    a, _ = replicas
    md, _ = await _admin(a)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{a.grpc_port}") as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SetSwitch(pb.SetSwitchRequest(**fields), metadata=md)  # type: ignore[arg-type]
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(f"{field}:")
    assert await a.store.list_switches() == []
