"""gRPC servicer for hitl.admin.v1.AdminService: convert, call the core, convert back.

Only keys with the admin role get past the handler factory; auditor and application keys are
refused with PERMISSION_DENIED before any of this runs.
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.api.handlers import unary_handler
from gateway.core.auth import ADMIN_ROLES, KeyAuthenticator, Principal
from gateway.core.erasure import SubjectErasure

SERVICE = "hitl.admin.v1.AdminService"


class AdminServicer:
    def __init__(self, erasure: SubjectErasure) -> None:
        self._erasure = erasure

    async def erase_subject(
        self,
        request: pb.EraseSubjectRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.EraseSubjectResponse:
        result = await self._erasure.erase(request.subject_ref, request.reason, principal.actor)
        return pb.EraseSubjectResponse(
            decisions_erased=result.decisions, events_erased=result.events
        )

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "EraseSubject": unary_handler(
                    f"{SERVICE}/EraseSubject",
                    self.erase_subject,
                    auth,
                    pb.EraseSubjectRequest,
                    roles=ADMIN_ROLES,
                )
            },
        )
