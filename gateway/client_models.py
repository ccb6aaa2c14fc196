"""A running gateway's model inventory, through AdminService with an admin key (the
``--target`` side of ``hitl-gateway models``). Blocking, like `gateway.client_admin`, whose
channel (plaintext or TLS) and trace propagation it shares."""

from __future__ import annotations

from datetime import datetime

from gateway._pb.hitl.admin.v1 import admin_pb2 as pb
from gateway.api.model_converters import (
    TRANSITIONS,
    event_from_pb,
    key_to_pb,
    record_from_pb,
)
from gateway.client_admin import AdminClient
from gateway.modelrisk.record import ModelKey, ModelRecord

HistoryRow = tuple[int, datetime, str, str, dict[str, object] | None]
"""``(seq, ts, type, actor, payload or None when erased)`` of one ``model.*`` event."""


class ModelsClient(AdminClient):
    """The model inventory RPCs of one gateway (the connection and credentials as
    `AdminClient`'s). Raises ``grpc.RpcError`` on refusals."""

    def register(
        self,
        key: ModelKey,
        *,
        owner: str,
        intended_use: str,
        max_tier: str,
        documentation_url: str = "",
        limitations: str = "",
        justification: str = "",
    ) -> ModelRecord:
        request = pb.ModelRegisterRequest(
            key=key_to_pb(key),
            owner=owner,
            intended_use=intended_use,
            max_tier=max_tier,
            documentation_url=documentation_url,
            limitations=limitations,
            justification=justification,
        )
        return record_from_pb(self._stub.RegisterModel(request, metadata=self._metadata()))

    def get(self, key: ModelKey) -> ModelRecord:
        request = pb.ModelGetRequest(key=key_to_pb(key))
        return record_from_pb(self._stub.GetModel(request, metadata=self._metadata()))

    def models(self) -> list[ModelRecord]:
        resp = self._stub.ListModels(pb.ModelListRequest(), metadata=self._metadata())
        return [record_from_pb(m) for m in resp.models]

    def transition(
        self,
        key: ModelKey,
        verb: str,
        *,
        justification: str,
        validator: str = "",
        validated_at: datetime | None = None,
        expires_at: datetime | None = None,
        approver: str = "",
    ) -> ModelRecord:
        """One move of the lifecycle by its verb (``validate``, ``approve``, …)."""
        request = pb.ModelTransitionRequest(
            key=key_to_pb(key),
            transition=TRANSITIONS[verb],
            justification=justification,
            validator=validator,
            approver=approver,
        )
        if validated_at is not None:
            request.validated_at.FromDatetime(validated_at)
        if expires_at is not None:
            request.validation_expires_at.FromDatetime(expires_at)
        return record_from_pb(self._stub.TransitionModel(request, metadata=self._metadata()))

    def history(self, key: ModelKey) -> list[HistoryRow]:
        request = pb.ModelHistoryRequest(key=key_to_pb(key))
        resp = self._stub.ModelHistory(request, metadata=self._metadata())
        return [event_from_pb(e) for e in resp.events]
