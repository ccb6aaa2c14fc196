"""AuditService's Merkle proofs and evidence packs over a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import orjson
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway._pb.hitl.audit.v1 import audit_pb2_grpc
from gateway.app import Gateway
from gateway.audit import checkpoints, evidence_check, merkle
from gateway.client import AsyncGatewayClient
from gateway.core.auth import new_key

HELD = {"score": 0.5, "customer": {"name": "Dana Doe"}}
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[audit_pb2_grpc.AuditServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield audit_pb2_grpc.AuditServiceStub(channel)


@pytest.fixture
async def auditor_key(gateway: Gateway) -> tuple[str, str]:
    """An auditor key: (token, key id)."""
    token, record = new_key((), role="auditor")
    await gateway.store.add_api_key(record)
    return token, record.key_id


@pytest.fixture
def auditor(auditor_key: tuple[str, str]) -> Metadata:
    return (("authorization", f"Bearer {auditor_key[0]}"),)


async def _checkpoint(gateway: Gateway) -> int:
    assert gateway._checkpointer is not None
    cp = await gateway._checkpointer.checkpoint_now()
    assert cp is not None
    return cp.seq


async def test_inclusion_and_consistency_proofs_check_against_signed_heads(
    gateway: Gateway,
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: Metadata,
) -> None:
    """ProveInclusion's path leads from the event's bytes to the root its checkpoint signs,
    and ProveConsistency joins two signed roots."""
    await client.decide("t-echo", HELD)
    old = await _checkpoint(gateway)
    for _ in range(20):
        await client.decide("t-echo", HELD)
    new = await _checkpoint(gateway)
    event = await stub.ExportEvents(
        pb.ExportEventsRequest(from_seq=2, to_seq=2), metadata=auditor
    ).read()
    proof = await stub.ProveInclusion(
        pb.ProveInclusionRequest(event_seq=2, checkpoint_seq=new), metadata=auditor
    )
    key = load_pem_public_key(proof.checkpoint.public_key_pem.encode())
    assert proof.tree_size == new and proof.checkpoint.seq == new
    assert proof.leaf_hash == merkle.leaf_hash(event.canonical)
    merkle.verify_inclusion(1, new, proof.leaf_hash, list(proof.path), proof.tree_root)
    signed = orjson.loads(proof.checkpoint.signed_bytes)
    assert signed["v"] == checkpoints.VERSION_TREE
    assert bytes.fromhex(signed["tree_root"]) == proof.tree_root == proof.checkpoint.tree_root
    key.verify(proof.checkpoint.signature, proof.checkpoint.signed_bytes)  # type: ignore[union-attr, call-arg]
    cons = await stub.ProveConsistency(
        pb.ProveConsistencyRequest(old_seq=old, new_seq=new), metadata=auditor
    )
    assert cons.old_checkpoint.tree_root == cons.old_root
    merkle.verify_consistency(old, new, cons.old_root, cons.new_root, list(cons.path))


async def test_bad_proof_requests_name_the_field(
    gateway: Gateway,
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: Metadata,
) -> None:
    """Seq 0, an event after the checkpoint, an unknown checkpoint and inverted consistency
    seqs are refused with the field named."""
    await client.decide("t-echo", HELD)
    seq = await _checkpoint(gateway)
    prove, consist, evidence = stub.ProveInclusion, stub.ProveConsistency, stub.GetEvidence
    cases = [
        (prove, pb.ProveInclusionRequest(event_seq=0), "event_seq", "INVALID"),
        (prove, pb.ProveInclusionRequest(event_seq=seq + 1), "event_seq", "INVALID"),
        (prove, pb.ProveInclusionRequest(event_seq=1, checkpoint_seq=seq + 9), "checkpoint", "NOT"),
        (consist, pb.ProveConsistencyRequest(old_seq=seq, new_seq=1), "new_seq", "INVALID"),
        (evidence, pb.GetEvidenceRequest(decision_id=""), "decision_id", "INVALID"),
        (evidence, pb.GetEvidenceRequest(decision_id="nope"), "decision", "NOT_FOUND"),
    ]
    for call, request, field, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(request, metadata=auditor)
        assert err.value.code().name.startswith(code), (request, err.value)
        assert field in (err.value.details() or ""), (request, err.value.details())


async def test_get_evidence_returns_a_pack_that_checks_alone(
    gateway: Gateway,
    client: AsyncGatewayClient,
    stub: audit_pb2_grpc.AuditServiceStub,
    auditor: Metadata,
    auditor_key: tuple[str, str],
) -> None:
    """GetEvidence's pack checks with only the public key; with personal data it holds the
    sealed name and the request is in the decision's trail."""
    d = await client.decide("t-echo", HELD)
    await client.decide("t-echo", {"score": 0.5, "customer": {"name": "Other Person"}})
    await _checkpoint(gateway)
    key = gateway.signer.public_key
    resp = await stub.GetEvidence(pb.GetEvidenceRequest(decision_id=d.id), metadata=auditor)
    pack = orjson.loads(resp.pack_json)
    assert evidence_check.check(pack, key).ok
    assert b"Dana Doe" not in resp.pack_json and b"Other Person" not in resp.pack_json
    resp = await stub.GetEvidence(
        pb.GetEvidenceRequest(decision_id=d.id, with_personal_data=True), metadata=auditor
    )
    pack = orjson.loads(resp.pack_json)
    assert pack["decision"]["input"]["customer"]["name"] == "Dana Doe"
    assert b"Other Person" not in resp.pack_json
    assert evidence_check.check(pack, key).ok
    trail = await stub.GetTrail(pb.GetTrailRequest(decision_id=d.id), metadata=auditor)
    assert trail.events[-1].type == "evidence.personal_data"
    assert trail.events[-1].actor == f"app:{auditor_key[1]}"  # the auditor who asked
