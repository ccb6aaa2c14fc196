"""hitl.audit.v1.AuditService over a real gRPC server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from google.protobuf.timestamp_pb2 import Timestamp

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway._pb.hitl.audit.v1 import audit_pb2_grpc
from gateway.app import Gateway
from gateway.audit.chain import chain_hash
from gateway.client import AsyncGatewayClient
from gateway.core.auth import new_key
from gateway.core.reviews import Reviewer
from gateway.types import Status, Verdict

GOOD = {"income": 120000.0, "debt_ratio": 0.1, "past_delinquencies": 0.0, "amount": 5000.0}
HELD = {"score": 0.5}


async def _key(gateway: Gateway, role: str) -> str:
    apps = () if role != "app" else tuple(sorted(gateway.policies.applications))
    token, record = new_key(apps, role=role)
    await gateway.store.add_api_key(record)
    return token


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[audit_pb2_grpc.AuditServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield audit_pb2_grpc.AuditServiceStub(channel)


@pytest.fixture
async def auditor(gateway: Gateway) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {await _key(gateway, 'auditor')}"),)


async def test_application_key_is_refused(
    stub: audit_pb2_grpc.AuditServiceStub, api_key: str
) -> None:
    """An application key gets PERMISSION_DENIED on every audit method."""
    md = (("authorization", f"Bearer {api_key}"),)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTrail(pb.GetTrailRequest(decision_id="x"), metadata=md)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "auditor" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.ExportEvents(pb.ExportEventsRequest(), metadata=md):
            pass
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_no_key_is_unauthenticated(stub: audit_pb2_grpc.AuditServiceStub) -> None:
    """A call without credentials gets UNAUTHENTICATED."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyChain(pb.VerifyChainRequest())
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_auditor_key_cannot_decide(gateway: Gateway) -> None:
    """An auditor key is bound to no application, so it cannot make decisions."""
    token = await _key(gateway, "auditor")
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=token) as c:
        with pytest.raises(Exception, match="may not act"):
            await c.decide("credit-limit", GOOD)


async def test_trail_reconstructs_a_reviewed_decision(
    gateway: Gateway,
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: tuple[tuple[str, str], ...],
) -> None:
    """The trail of a held, then approved decision holds who, what, which policy and model."""
    d = await client.decide("t-echo", HELD, subject_ref="cust-9")
    assert d.status is Status.PENDING_REVIEW
    await gateway.reviews.submit(d.id, Reviewer("alice", "reviewer"), Verdict.APPROVE)
    resp = await stub.GetTrail(pb.GetTrailRequest(decision_id=d.id), metadata=auditor)
    created, reviewed = resp.events
    assert (created.type, reviewed.type) == ("decision.created", "decision.reviewed")
    assert created.actor.startswith("app:") and reviewed.actor == "user:alice"
    assert created.trace_id == d.trace_id and len(created.span_id) == 16
    payload = json.loads(created.payload_json)
    assert payload["policy_version"] == gateway.policies.version
    assert payload["model"] == {
        "backend": "echo",
        "name": "echo",
        "version": "1",
        "validation": "approved",
    }
    assert payload["rule"] == "route:default" == d.rule
    assert json.loads(reviewed.payload_json)["role"] == "reviewer"
    assert chain_hash(created.prev_hash, created.canonical) == created.hash


async def test_unknown_trail_is_not_found(
    stub: audit_pb2_grpc.AuditServiceStub, auditor: tuple[tuple[str, str], ...]
) -> None:
    """Asking for the trail of a decision that does not exist gets NOT_FOUND."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTrail(pb.GetTrailRequest(decision_id="nope"), metadata=auditor)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND


async def test_query_filters_and_pages(
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: tuple[tuple[str, str], ...],
) -> None:
    """Filters combine, and page tokens walk every match once in the requested order."""
    ids = [(await client.decide("credit-limit", GOOD, subject_ref="s-1")).id for _ in range(5)]
    await client.decide("credit-limit", GOOD, subject_ref="s-2")
    seen: list[str] = []
    token = ""
    while True:
        req = pb.QueryEventsRequest(
            subject_ref="s-1",
            application="credit-limit",
            outcome="APPROVED",
            order=pb.OLDEST_FIRST,
            page_size=2,
            page_token=token,
        )
        resp = await stub.QueryEvents(req, metadata=auditor)
        seen += [e.decision_id for e in resp.events]
        token = resp.next_page_token
        if not token:
            break
    assert seen == ids
    newest = await stub.QueryEvents(
        pb.QueryEventsRequest(type="decision.created", page_size=1), metadata=auditor
    )
    assert newest.events[0].decision_id != ids[0]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.QueryEventsRequest(page_token="garbage!"), "page_token"),
        (pb.QueryEventsRequest(outcome="MAYBE"), "outcome"),
        (pb.QueryEventsRequest(page_size=100_000), "page_size"),
        (
            pb.QueryEventsRequest(since=Timestamp(seconds=2000), until=Timestamp(seconds=1000)),
            "until",
        ),
        (pb.QueryEventsRequest(order=7), "order"),  # type: ignore[arg-type]
        (pb.QueryEventsRequest(since=Timestamp(seconds=10**13)), "since"),
    ],
)
async def test_bad_queries_name_the_field(
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: tuple[tuple[str, str], ...],
    request_: pb.QueryEventsRequest,
    field: str,
) -> None:
    """Malformed filters, tokens and ranges get INVALID_ARGUMENT naming the field."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.QueryEvents(request_, metadata=auditor)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (err.value.details() or "")


async def test_token_from_another_query_is_refused(
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: tuple[tuple[str, str], ...],
) -> None:
    """A page token used with different filters gets INVALID_ARGUMENT."""
    for _ in range(3):
        await client.decide("credit-limit", GOOD)
    first = await stub.QueryEvents(pb.QueryEventsRequest(page_size=1), metadata=auditor)
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.QueryEvents(
            pb.QueryEventsRequest(page_size=1, tier="high", page_token=first.next_page_token),
            metadata=auditor,
        )
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "different query" in (err.value.details() or "")


async def test_export_verify_and_checkpoint(
    gateway: Gateway,
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: tuple[tuple[str, str], ...],
) -> None:
    """Export streams the chain in order; VerifyChain checks it and the signed checkpoint."""
    for _ in range(4):
        await client.decide("credit-limit", GOOD)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCheckpoint(pb.GetCheckpointRequest(), metadata=auditor)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert gateway._checkpointer is not None
    await gateway._checkpointer.checkpoint_now()
    events = [e async for e in stub.ExportEvents(pb.ExportEventsRequest(), metadata=auditor)]
    n = len(events)
    assert n >= 4 and [e.seq for e in events] == list(range(1, n + 1))
    assert sum(e.type == "decision.created" for e in events) == 4
    part = [
        e.seq
        async for e in stub.ExportEvents(
            pb.ExportEventsRequest(from_seq=2, to_seq=3), metadata=auditor
        )
    ]
    assert part == [2, 3]
    report = await stub.VerifyChain(pb.VerifyChainRequest(), metadata=auditor)
    assert report.ok and report.checked == n and report.checkpoints_checked == 1
    assert report.head_hash == events[-1].hash
    cp = await stub.GetCheckpoint(pb.GetCheckpointRequest(), metadata=auditor)
    assert (cp.seq, cp.hash) == (n, events[-1].hash)
    key = load_pem_public_key(cp.public_key_pem.encode())
    key.verify(cp.signature, cp.signed_bytes)  # type: ignore[union-attr]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.VerifyChain(pb.VerifyChainRequest(from_seq=3, to_seq=2), metadata=auditor)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_signing_key_is_private_to_the_owner(gateway: Gateway) -> None:
    """The checkpoint key is created at first start, readable by its owner only."""
    from gateway.audit.checkpoints import KEY_FILE

    mode = (gateway.settings.data_dir / KEY_FILE).stat().st_mode & 0o777
    assert mode == 0o600
