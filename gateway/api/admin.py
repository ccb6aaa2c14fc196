"""gRPC servicer for hitl.admin.v1.AdminService: convert, call the core, convert back.

Only keys with the admin role get past the handler factory; auditor and application keys are
refused with PERMISSION_DENIED before any of this runs.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import Message

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.api.admin_converters import (
    kind_from_pb,
    outbox_to_pb,
    switch_to_pb,
    switches_to_pb,
)
from gateway.api.handlers import Unary, unary_handler
from gateway.api.model_converters import (
    event_to_pb,
    key_from_pb,
    record_to_pb,
    transition_from_pb,
    ts_from_pb,
)
from gateway.core.auth import ADMIN_ROLES, KeyAuthenticator, Principal
from gateway.core.erasure import SubjectErasure
from gateway.core.switches import KillSwitches
from gateway.errors import FailedPrecondition
from gateway.modelrisk.escalations import Escalations
from gateway.modelrisk.inventory import ModelInventory
from gateway.notify.dead_letters import OutboxAdmin

SERVICE = "hitl.admin.v1.AdminService"


class AdminServicer:
    def __init__(
        self,
        erasure: SubjectErasure,
        switches: KillSwitches,
        inventory: ModelInventory,
        escalations: Escalations,
        outbox: OutboxAdmin | None = None,
    ) -> None:
        self._erasure = erasure
        self._switches = switches
        self._inventory = inventory
        self._escalations = escalations
        self._outbox = outbox

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

    # -- the model inventory ---------------------------------------------------------------------

    async def register_model(
        self,
        request: pb.ModelRegisterRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelRecord:
        record = await self._inventory.register(
            key_from_pb(request.key),
            owner=request.owner,
            intended_use=request.intended_use,
            max_tier=request.max_tier,
            documentation_url=request.documentation_url,
            limitations=request.limitations,
            justification=request.justification,
            actor=principal.actor,
        )
        return record_to_pb(record)

    async def get_model(
        self,
        request: pb.ModelGetRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelRecord:
        return record_to_pb(await self._inventory.get(key_from_pb(request.key)))

    async def list_models(
        self,
        request: pb.ModelListRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelListResponse:
        return pb.ModelListResponse(
            models=[record_to_pb(r) for r in await self._inventory.models()]
        )

    async def transition_model(
        self,
        request: pb.ModelTransitionRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelRecord:
        record = await self._inventory.transition(
            key_from_pb(request.key),
            transition_from_pb(request.transition),
            actor=principal.actor,
            justification=request.justification,
            validator=request.validator,
            validated_at=ts_from_pb(request, "validated_at"),
            expires_at=ts_from_pb(request, "validation_expires_at"),
            approver=request.approver,
        )
        return record_to_pb(record)

    async def model_history(
        self,
        request: pb.ModelHistoryRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelHistoryResponse:
        events = await self._inventory.history(key_from_pb(request.key))
        return pb.ModelHistoryResponse(events=[event_to_pb(e) for e in events])

    async def clear_model_escalation(
        self,
        request: pb.ModelClearEscalationRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ModelRecord:
        record = await self._escalations.clear(
            key_from_pb(request.key), actor=principal.actor, reason=request.reason
        )
        return record_to_pb(record)

    # -- the outbox ------------------------------------------------------------------------------

    def _outbox_admin(self) -> OutboxAdmin:
        if self._outbox is None:
            raise FailedPrecondition("this gateway serves no outbox")
        return self._outbox

    async def list_outbox(
        self,
        request: pb.ListOutboxRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.ListOutboxResponse:
        messages = await self._outbox_admin().list(dead=request.dead, limit=request.limit)
        return pb.ListOutboxResponse(messages=[outbox_to_pb(m) for m in messages])

    async def resend_outbox(
        self,
        request: pb.ResendOutboxRequest,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.OutboxMessage:
        return outbox_to_pb(await self._outbox_admin().resend(request.id, principal.actor))

    def handler(self, auth: KeyAuthenticator) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Unary, type[Message]]] = {
            "EraseSubject": (self.erase_subject, pb.EraseSubjectRequest),
            "SetSwitch": (self.set_switch, pb.SetSwitchRequest),
            "ListSwitches": (self.list_switches, pb.ListSwitchesRequest),
            "RegisterModel": (self.register_model, pb.ModelRegisterRequest),
            "GetModel": (self.get_model, pb.ModelGetRequest),
            "ListModels": (self.list_models, pb.ModelListRequest),
            "TransitionModel": (self.transition_model, pb.ModelTransitionRequest),
            "ModelHistory": (self.model_history, pb.ModelHistoryRequest),
            "ClearModelEscalation": (self.clear_model_escalation, pb.ModelClearEscalationRequest),
            "ListOutbox": (self.list_outbox, pb.ListOutboxRequest),
            "ResendOutbox": (self.resend_outbox, pb.ResendOutboxRequest),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: unary_handler(f"{SERVICE}/{name}", fn, auth, message, roles=ADMIN_ROLES)
                for name, (fn, message) in methods.items()
            },
        )
