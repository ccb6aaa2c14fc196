"""Protobuf <-> domain conversion for hitl.audit.v1, in one place."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from google.protobuf import timestamp_pb2

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway.audit.chain import canonical_json
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.evidence import Pack
from gateway.audit.proofs import ConsistencyProof, InclusionProof
from gateway.audit.query import ChainReport, EventFilter
from gateway.errors import InvalidInput
from gateway.policy.versions import PolicyVersion, file_bytes
from gateway.timefmt import parse_ts
from gateway.types import AuditEvent

# Timestamp's own valid range (years 1..9999); anything outside is a malformed filter.
_MIN_SECONDS = -62135596800
_MAX_SECONDS = 253402300799


def _ts_in(msg: pb.QueryEventsRequest, name: str) -> datetime | None:
    if not msg.HasField(name):  # type: ignore[arg-type]
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, name)
    if not _MIN_SECONDS <= ts.seconds <= _MAX_SECONDS or not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidInput(name, "timestamp out of range")
    return ts.ToDatetime(tzinfo=UTC)


def event_filter(req: pb.QueryEventsRequest) -> EventFilter:
    if req.order not in (pb.ORDER_UNSPECIFIED, pb.NEWEST_FIRST, pb.OLDEST_FIRST):
        raise InvalidInput("order", f"unknown order {req.order}")
    return EventFilter(
        since=_ts_in(req, "since"),
        until=_ts_in(req, "until"),
        application=req.application,
        tier=req.tier,
        decision_id=req.decision_id,
        subject_ref=req.subject_ref,
        actor=req.actor,
        type=req.type,
        outcome=req.outcome,
        newest_first=req.order != pb.OLDEST_FIRST,
    )


def _timestamp(dt: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt)
    return ts


def event_to_pb(ev: AuditEvent) -> pb.AuditEvent:
    erased = ev.payload is None
    return pb.AuditEvent(
        seq=ev.seq,
        ts=_timestamp(ev.ts),
        decision_id=ev.decision_id,
        type=ev.type,
        actor=ev.actor,
        payload_json="" if erased else _payload_text(ev),
        payload_erased=erased,
        payload_digest=ev.payload_digest,
        trace_id=ev.trace_id,
        span_id=ev.span_id,
        prev_hash=ev.prev_hash,
        hash=ev.hash,
        canonical=ev.canonical,
    )


def _payload_text(ev: AuditEvent) -> str:
    # Re-encoded canonically: the very bytes the digest covers, so a client can re-check it.
    return canonical_json(ev.payload).decode()


def report_to_pb(report: ChainReport) -> pb.VerifyChainResponse:
    r = report.result
    return pb.VerifyChainResponse(
        ok=r.ok,
        checked=r.checked,
        first_bad_seq=r.first_bad_seq or 0,
        reason=r.reason,
        checkpoints_checked=report.checkpoints_checked,
        head_seq=max(r.head_seq, 0),
        head_hash=r.head_hash,
    )


def checkpoint_to_pb(cp: Checkpoint, public_key_pem: str) -> pb.Checkpoint:
    return pb.Checkpoint(
        seq=cp.seq,
        hash=cp.hash,
        signed_at=_timestamp(parse_ts(cp.signed_at)),
        signature=cp.signature,
        signed_bytes=cp.signed,
        public_key_pem=public_key_pem,
        key_id=cp.key_id,
        tree_root=b"" if cp.tree_root is None else bytes.fromhex(cp.tree_root),
    )


def inclusion_to_pb(
    proof: InclusionProof, cp: Checkpoint, public_key_pem: str
) -> pb.InclusionProof:
    return pb.InclusionProof(
        event_seq=proof.seq,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash,
        path=list(proof.path),
        tree_root=proof.root,
        checkpoint=checkpoint_to_pb(cp, public_key_pem),
    )


def consistency_to_pb(
    proof: ConsistencyProof, old: Checkpoint, new: Checkpoint, public_key_pem: str
) -> pb.ConsistencyProof:
    return pb.ConsistencyProof(
        old_size=proof.old_size,
        new_size=proof.new_size,
        old_root=proof.old_root,
        new_root=proof.new_root,
        path=list(proof.path),
        old_checkpoint=checkpoint_to_pb(old, public_key_pem),
        new_checkpoint=checkpoint_to_pb(new, public_key_pem),
    )


def pack_to_pb(pack: Pack) -> pb.EvidencePack:
    return pb.EvidencePack(pack_json=orjson.dumps(pack.doc, option=orjson.OPT_INDENT_2))


def event_from_pb(e: pb.AuditEvent) -> AuditEvent:
    """Inverse of `event_to_pb` (for clients such as the audit CLI)."""
    return AuditEvent(
        seq=e.seq,
        ts=e.ts.ToDatetime(tzinfo=UTC),
        decision_id=e.decision_id,
        type=e.type,
        actor=e.actor,
        payload=None if e.payload_erased else orjson.loads(e.payload_json),
        payload_digest=e.payload_digest,
        trace_id=e.trace_id,
        span_id=e.span_id,
        prev_hash=e.prev_hash,
        hash=e.hash,
        canonical=e.canonical,
    )


def filter_to_pb(flt: EventFilter, page_size: int) -> pb.QueryEventsRequest:
    """Inverse of `event_filter` (for clients such as the audit CLI)."""
    req = pb.QueryEventsRequest(
        application=flt.application,
        tier=flt.tier,
        decision_id=flt.decision_id,
        subject_ref=flt.subject_ref,
        actor=flt.actor,
        type=flt.type,
        outcome=flt.outcome,
        order=pb.NEWEST_FIRST if flt.newest_first else pb.OLDEST_FIRST,
        page_size=page_size,
    )
    if flt.since is not None:
        req.since.FromDatetime(flt.since)
    if flt.until is not None:
        req.until.FromDatetime(flt.until)
    return req


def policy_version_to_pb(version: PolicyVersion) -> pb.PolicyVersion:
    """A stored policy version; each file's content is its exact bytes (see `file_bytes`)."""
    return pb.PolicyVersion(
        digest=version.digest,
        files=[pb.PolicyFile(name=n, content=file_bytes(t)) for n, t in version.files],
        source=version.source,
        loaded_at=_timestamp(version.loaded_at),
        loaded_by=version.loaded_by,
    )


def policy_version_from_pb(v: pb.PolicyVersion) -> PolicyVersion:
    return PolicyVersion(
        digest=v.digest,
        files=tuple((f.name, f.content.decode("utf-8", "surrogateescape")) for f in v.files),
        source=v.source,
        loaded_at=v.loaded_at.ToDatetime(tzinfo=UTC),
        loaded_by=v.loaded_by,
    )
