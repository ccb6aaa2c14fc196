"""gRPC servicer for hitl.audit.v1.AuditService: convert, call the audit trail, convert back.

Only keys with the auditor or admin role get past the handler factory; application keys are
refused with PERMISSION_DENIED before any of this runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway.api import audit_converters as conv
from gateway.api.handlers import streaming_handler, unary_handler
from gateway.audit.service import AuditTrail
from gateway.core.auth import AUDIT_ROLES, KeyAuthenticator, Principal
from gateway.errors import NotFound
from gateway.policy.versions import PolicyVersion

SERVICE = "hitl.audit.v1.AuditService"


class AuditServicer:
    def __init__(
        self,
        trail: AuditTrail,
        public_key_pem: str,
        policy_version: Callable[[str], Awaitable[PolicyVersion | None]],
    ) -> None:
        self._trail = trail
        self._public_key_pem = public_key_pem
        self._policy_version = policy_version

    async def query_events(
        self,
        request: pb.QueryEventsRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.QueryEventsResponse:
        page = await self._trail.query(
            conv.event_filter(request), request.page_size, request.page_token
        )
        return pb.QueryEventsResponse(
            events=[conv.event_to_pb(e) for e in page.events], next_page_token=page.next_token
        )

    async def get_trail(
        self,
        request: pb.GetTrailRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.GetTrailResponse:
        events = await self._trail.trail(request.decision_id)
        return pb.GetTrailResponse(events=[conv.event_to_pb(e) for e in events])

    async def verify_chain(
        self,
        request: pb.VerifyChainRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.VerifyChainResponse:
        report = await self._trail.verify(request.from_seq, request.to_seq)
        return conv.report_to_pb(report)

    async def export_events(
        self,
        request: pb.ExportEventsRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.AuditEvent]:
        async for ev in self._trail.export(request.from_seq, request.to_seq):
            yield conv.event_to_pb(ev)

    async def get_checkpoint(
        self,
        request: pb.GetCheckpointRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.Checkpoint:
        return conv.checkpoint_to_pb(await self._trail.checkpoint(), self._public_key_pem)

    async def get_policy_version(
        self,
        request: pb.GetPolicyVersionRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.PolicyVersion:
        version = await self._policy_version(request.digest)
        if version is None:
            raise NotFound("policy version", request.digest)
        return conv.policy_version_to_pb(version)

    async def prove_inclusion(
        self,
        request: pb.ProveInclusionRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.InclusionProof:
        proof, cp = await self._trail.prove(request.event_seq, request.checkpoint_seq)
        return conv.inclusion_to_pb(proof, cp, self._public_key_pem)

    async def prove_consistency(
        self,
        request: pb.ProveConsistencyRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ConsistencyProof:
        proof, old, new = await self._trail.consistency(request.old_seq, request.new_seq)
        return conv.consistency_to_pb(proof, old, new, self._public_key_pem)

    async def get_evidence(
        self,
        request: pb.GetEvidenceRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.EvidencePack:
        pack = await self._trail.evidence(
            request.decision_id, principal.actor, with_personal_data=request.with_personal_data
        )
        return conv.pack_to_pb(pack)

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        def unary(name: str, fn: Any, req: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return unary_handler(f"{SERVICE}/{name}", fn, auth, req, roles=AUDIT_ROLES)

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "QueryEvents": unary("QueryEvents", self.query_events, pb.QueryEventsRequest),
                "GetTrail": unary("GetTrail", self.get_trail, pb.GetTrailRequest),
                "VerifyChain": unary("VerifyChain", self.verify_chain, pb.VerifyChainRequest),
                "GetCheckpoint": unary(
                    "GetCheckpoint", self.get_checkpoint, pb.GetCheckpointRequest
                ),
                "GetPolicyVersion": unary(
                    "GetPolicyVersion", self.get_policy_version, pb.GetPolicyVersionRequest
                ),
                "ProveInclusion": unary(
                    "ProveInclusion", self.prove_inclusion, pb.ProveInclusionRequest
                ),
                "ProveConsistency": unary(
                    "ProveConsistency", self.prove_consistency, pb.ProveConsistencyRequest
                ),
                "GetEvidence": unary("GetEvidence", self.get_evidence, pb.GetEvidenceRequest),
                "ExportEvents": streaming_handler(
                    f"{SERVICE}/ExportEvents",
                    self.export_events,
                    auth,
                    pb.ExportEventsRequest,
                    roles=AUDIT_ROLES,
                ),
            },
        )
