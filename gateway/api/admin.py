"""gRPC servicer for hitl.admin.v1.AdminService: convert, call the core, convert back.

Only keys with the admin role get past the handler factory; auditor and application keys are
refused with PERMISSION_DENIED before any of this runs.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.api.admin_converters import kind_from_pb, switch_to_pb, switches_to_pb
from gateway.api.handlers import Unary, unary_handler
from gateway.core.auth import ADMIN_ROLES, KeyAuthenticator, Principal
from gateway.core.erasure import SubjectErasure
from gateway.core.switches import KillSwitches

SERVICE = "hitl.admin.v1.AdminService"


class AdminServicer:
    def __init__(self, erasure: SubjectErasure, switches: KillSwitches) -> None:
        self._erasure = erasure
        self._switches = switches

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

    async def set_switch(
        self,
        request: pb.SetSwitchRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.SetSwitchResponse:
        kind = kind_from_pb(request.kind)
        state = await self._switches.set(
            kind,
            request.name,
            request.paused,
            principal.actor,
            request.reason,
        )
        return pb.SetSwitchResponse(switch=switch_to_pb(kind, state.name, state))

    async def list_switches(
        self,
        request: pb.ListSwitchesRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListSwitchesResponse:
        return switches_to_pb(await self._switches.stored_states())

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Unary, type[Message]]] = {
            "EraseSubject": (self.erase_subject, pb.EraseSubjectRequest),
            "SetSwitch": (self.set_switch, pb.SetSwitchRequest),
            "ListSwitches": (self.list_switches, pb.ListSwitchesRequest),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: unary_handler(f"{SERVICE}/{name}", fn, auth, message, roles=ADMIN_ROLES)
                for name, (fn, message) in methods.items()
            },
        )
