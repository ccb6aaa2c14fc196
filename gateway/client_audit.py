"""The audit trail of a running gateway, read over its AuditService with an auditor key.

A `gateway.store.trail.TrailReader`, so the ``audit`` CLI reads a gateway the way it reads a
database file or a PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import grpc

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway._pb.hitl.audit.v1 import audit_pb2_grpc
from gateway.api.audit_converters import event_from_pb, filter_to_pb, policy_version_from_pb
from gateway.audit.query import ChainReport, EventFilter
from gateway.errors import InvalidInput
from gateway.policy.versions import PolicyVersion
from gateway.types import AuditEvent

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.audit.checkpoints import Checkpoint


class RemoteTrailReader:
    """`gateway.store.trail.TrailReader` over a running gateway's AuditService."""

    def __init__(self, target: str, key: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = audit_pb2_grpc.AuditServiceStub(self._channel)
        self._md = (("authorization", f"Bearer {key}"),)

    def query(self, flt: EventFilter, limit: int) -> Iterator[AuditEvent]:
        token, n = "", 0
        while True:
            req = filter_to_pb(flt, page_size=min(limit - n, 1000) if limit else 1000)
            req.page_token = token
            resp = self._stub.QueryEvents(req, metadata=self._md)
            for e in resp.events:
                yield event_from_pb(e)
                n += 1
            token = resp.next_page_token
            if not token or (limit and n >= limit):
                return

    def trail(self, decision_id: str) -> list[AuditEvent]:
        resp = self._stub.GetTrail(pb.GetTrailRequest(decision_id=decision_id), metadata=self._md)
        return [event_from_pb(e) for e in resp.events]

    def export(self, first: int, last: int | None) -> Iterator[AuditEvent]:
        req = pb.ExportEventsRequest(from_seq=first, to_seq=last or 0)
        for e in self._stub.ExportEvents(req, metadata=self._md):
            yield event_from_pb(e)

    def verify(
        self, public_key: Ed25519PublicKey | None, extra: tuple[Checkpoint, ...] = ()
    ) -> ChainReport:
        # Verification is the auditor's own computation, over the stored rows: not delegated.
        raise InvalidInput("--target", "verify reads the database itself (--db or --store)")

    def policy_version(self, digest: str) -> PolicyVersion | None:
        req = pb.GetPolicyVersionRequest(digest=digest)
        try:
            return policy_version_from_pb(self._stub.GetPolicyVersion(req, metadata=self._md))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def latest_checkpoint(self) -> Checkpoint | None:
        raise InvalidInput("--target", "checkpoint reads the database itself (--db or --store)")
