"""AdminService's policy operations (apply, shadow, shadow report, replay): convert, call
`gateway.core.policy_changes`, convert back.

Served by a handler of its own for the same service name: gRPC asks each generic handler in
turn for a method, so the policy methods need no edit of the other AdminService methods' table.
Admin keys only, as for every AdminService method.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from gateway._pb.hitl.admin.v1 import policy_pb2 as pb
from gateway.api.admin import SERVICE
from gateway.api.handlers import Unary, unary_handler
from gateway.core.auth import ADMIN_ROLES, KeyAuthenticator, Principal
from gateway.core.policy_changes import PolicyChanges
from gateway.core.policy_in_force import Candidate
from gateway.errors import InvalidInput

MAX_FILES = 200
"""Most files (policies, schemas and tests together) one candidate may hold."""


def _ts(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def _files(files: Any, field: str) -> tuple[tuple[str, str], ...]:
    if len(files) > MAX_FILES:
        raise InvalidInput(field, f"more than {MAX_FILES} files")
    return tuple((f.name, f.text) for f in files)


def _when(msg: Message, field: str, default: datetime | None = None) -> datetime:
    if not msg.HasField(field):
        if default is None:
            raise InvalidInput(field, "required")
        return default
    value: timestamp_pb2.Timestamp = getattr(msg, field)
    return value.ToDatetime(tzinfo=UTC)


class PolicyAdminServicer:
    def __init__(self, changes: PolicyChanges) -> None:
        self._changes = changes

    async def apply_policy(
        self,
        request: pb.ApplyPolicyRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ApplyPolicyResponse:
        candidate = Candidate(
            files=_files(request.files, "files"),
            tests=_files(request.tests, "tests"),
            source=request.source.strip()[:500] or "apply",
            shadow=request.shadow,
            force=request.force_reason,
        )
        r = await self._changes.apply(candidate, principal.actor)
        return pb.ApplyPolicyResponse(
            digest=r.digest,
            previous=r.previous,
            changed=r.changed,
            shadow=r.shadow,
            tests_passed=r.tests_passed,
            tests_failed=r.tests_failed,
            forced=r.forced,
        )

    async def clear_shadow_policy(
        self,
        request: pb.ClearShadowPolicyRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ClearShadowPolicyResponse:
        return pb.ClearShadowPolicyResponse(
            changed=await self._changes.clear_shadow(principal.actor)
        )

    async def shadow_report(
        self,
        request: pb.ShadowReportRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ShadowReportResponse:
        report = await self._changes.shadow_report(request.digest, request.limit)
        out = pb.ShadowReportResponse(digest=report.digest)
        if report.shadow is not None and report.shadow.digest == report.digest:
            out.since.CopyFrom(_ts(report.shadow.since))
            out.set_by = report.shadow.set_by
        for d in report.disagreements:
            out.disagreements.add(
                decision_id=d.decision_id,
                application=d.application,
                made_at=_ts(d.made_at),
                enforced_digest=d.enforced_digest,
                old_action=d.old_action,
                new_action=d.new_action,
                old_tier=d.old_tier,
                new_tier=d.new_tier,
                old_rule=d.old_rule,
                new_rule=d.new_rule,
            )
        return out

    async def replay_policy(
        self,
        request: pb.ReplayPolicyRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ReplayPolicyResponse:
        report = await self._changes.replay(
            _files(request.files, "files"),
            _when(request, "since"),
            _when(request, "until", datetime.now(UTC)),
            request.application,
        )
        return pb.ReplayPolicyResponse(
            report_json=orjson.dumps(report.to_dict()), changed=report.changed
        )

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Unary, type[Message]]] = {
            "ApplyPolicy": (self.apply_policy, pb.ApplyPolicyRequest),
            "ClearShadowPolicy": (self.clear_shadow_policy, pb.ClearShadowPolicyRequest),
            "ShadowReport": (self.shadow_report, pb.ShadowReportRequest),
            "ReplayPolicy": (self.replay_policy, pb.ReplayPolicyRequest),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: unary_handler(f"{SERVICE}/{name}", fn, auth, message, roles=ADMIN_ROLES)
                for name, (fn, message) in methods.items()
            },
        )
