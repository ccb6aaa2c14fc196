"""hitl.admin.v1.AdminService over a real gRPC server on loopback: erasing a data subject."""

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
from gateway.core.erasure import subject_digest
from tests.integration.serverproc import cli

HELD = {"score": 0.5}
Metadata = tuple[tuple[str, str], ...]


async def _md(gateway: Gateway, role: str) -> Metadata:
    return (await _key(gateway, role))[0]


async def _key(gateway: Gateway, role: str) -> tuple[Metadata, str]:
    token, record = new_key((), role=role)
    await gateway.store.add_api_key(record)
    return (("authorization", f"Bearer {token}"),), record.key_id


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[admin_pb2_grpc.AdminServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield admin_pb2_grpc.AdminServiceStub(channel)


async def test_admin_erases_a_subject_and_the_erasure_is_audited(
    gateway: Gateway, client: AsyncGatewayClient, stub: admin_pb2_grpc.AdminServiceStub
) -> None:
    """The subject's inputs are gone through the API, others' stay, and the trail records it."""
    mine = await client.decide("t-echo", HELD, subject_ref="cust-42", wait=0)
    other = await client.decide("t-echo", {"score": 0.6}, subject_ref="cust-43", wait=0)
    md, key_id = await _key(gateway, "admin")
    request = pb.EraseSubjectRequest(subject_ref="cust-42", reason="DSR 2026-118")
    response = await stub.EraseSubject(request, metadata=md)
    assert (response.decisions_erased, response.events_erased) == (1, 1)
    # Read back as the owning application does, through GetDecision.
    erased_decision = await client.get(mine.id)
    assert erased_decision.input == {}
    assert erased_decision.status is mine.status  # the outcome stays
    assert (await client.get(other.id)).input == {"score": 0.6}
    events = await gateway.store.audit_events()
    erased = [e for e in events if e.type == "subject.erased"]
    assert len(erased) == 1
    assert erased[0].payload is not None
    assert erased[0].payload["subject"] == subject_digest("cust-42")
    assert "cust-42" not in str(erased[0].payload)
    assert erased[0].payload["reason"] == "DSR 2026-118"
    assert erased[0].actor == f"app:{key_id}"
    assert (await gateway.audit.verify()).result.ok


@pytest.mark.parametrize("role", ["auditor", "app"])
async def test_only_admin_keys_may_erase(
    gateway: Gateway, stub: admin_pb2_grpc.AdminServiceStub, role: str
) -> None:
    """Auditor and application keys get PERMISSION_DENIED and nothing is erased."""
    md = await _md(gateway, role)
    before = len(await gateway.store.audit_events())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EraseSubject(pb.EraseSubjectRequest(subject_ref="s", reason="r"), metadata=md)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert len(await gateway.store.audit_events()) == before


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"reason": "DSR-1"}, "subject_ref"),
        ({"subject_ref": "cust-1"}, "reason"),
        ({"subject_ref": "cust-1", "reason": "   "}, "reason"),
        ({"subject_ref": "x" * 10_000, "reason": "DSR-1"}, "subject_ref"),
    ],
)
async def test_bad_requests_name_the_field(
    gateway: Gateway,
    stub: admin_pb2_grpc.AdminServiceStub,
    request_fields: dict[str, str],
    field: str,
) -> None:
    """A missing or oversized field is refused with the field's name; nothing is written."""
    md = await _md(gateway, "admin")
    before = len(await gateway.store.audit_events())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.EraseSubject(pb.EraseSubjectRequest(**request_fields), metadata=md)
    assert err.value.code() in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert (err.value.details() or "").startswith(field)
    assert len(await gateway.store.audit_events()) == before


async def test_cli_erases_through_a_running_gateway(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """`audit erase --target --key --subject --reason` erases through the gateway; bad use fails."""
    decision = await client.decide("t-echo", HELD, subject_ref="cust-77", wait=0)
    token, record = new_key((), role="admin")
    await gateway.store.add_api_key(record)
    target = f"127.0.0.1:{gateway.grpc_port}"
    base = ("audit", "erase", "--target", target, "--subject", "cust-77")
    missing = await asyncio.to_thread(cli, *base, "--key", token)
    assert missing.returncode == 1
    assert "INVALID_ARGUMENT: reason" in missing.stderr
    no_key = await asyncio.to_thread(cli, *base, "--reason", "DSR-9", env={"HITL_ADMIN_KEY": ""})
    assert no_key.returncode == 2
    assert "--key" in no_key.stderr
    done = await asyncio.to_thread(cli, *base, "--key", token, "--reason", "DSR-9")
    assert done.returncode == 0, done.stderr
    assert "1 decisions and 1 event payloads" in done.stdout
    stored = await gateway.store.get_decision(decision.id)
    assert stored is not None and stored.input == {}


def test_file_erase_on_a_postgresql_store_points_to_the_gateway() -> None:
    """`audit erase` without --target on a PostgreSQL store says to go through the gateway."""
    done = cli("audit", "erase", "--subject", "c", env={"HITL_STORE": "postgresql://u@127.0.0.1/d"})
    assert done.returncode == 2
    assert done.stderr.startswith("error: --target:")
    assert "Traceback" not in done.stderr
