"""Clients for business applications: ``AsyncGatewayClient`` and ``GatewayClient``.

Both return typed ``gateway.types.Decision`` objects and raise one exception type,
``GatewayCallError``, which carries the gRPC status and, where the gateway sent one, the decision
id (for example when the model was down and the policy rejected).

    async with AsyncGatewayClient("127.0.0.1:50051", api_key=key) as client:
        decision = await client.decide("credit-limit", {"amount": 5000, ...}, wait=30)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway._pb.hitl.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.types import Decision, ModelRef, Review, Status, Validation, Verdict

__all__ = ["AsyncGatewayClient", "GatewayCallError", "GatewayClient"]


class GatewayCallError(Exception):
    """A call the gateway refused or could not complete."""

    def __init__(self, code: grpc.StatusCode, details: str, decision_id: str = "") -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.decision_id = decision_id
        """Set when the refusal refers to a recorded decision (e.g. UNAVAILABLE)."""


def _error(exc: grpc.RpcError) -> GatewayCallError:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    decision_id = ""
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    pairs: Any = trailers or ()  # grpc's stubs type metadata entries loosely
    for key, value in pairs:
        if key == "x-hitl-decision-id":
            decision_id = str(value)
    return GatewayCallError(code, details or "", decision_id)


def _ts(msg: timestamp_pb2.Timestamp) -> datetime:
    return msg.ToDatetime(tzinfo=UTC)


def _struct(msg: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(msg)


def decision_from_pb(msg: pb.Decision) -> Decision:
    """Convert a wire Decision to the domain type."""
    model = None
    if msg.HasField("model"):
        m = msg.model
        model = ModelRef(m.backend, m.name, m.version, Validation(m.validation))
    return Decision(
        id=msg.id,
        application=msg.application,
        tier=msg.tier,
        status=Status(pb.DecisionStatus.Name(msg.status)),
        input=_struct(msg.input),
        model=model,
        model_output=_struct(msg.model_output) if msg.HasField("model_output") else None,
        final_output=_struct(msg.final_output) if msg.HasField("final_output") else None,
        reasons=tuple(msg.reasons),
        rule=msg.rule,
        created_at=_ts(msg.created_at),
        updated_at=_ts(msg.updated_at),
        trace_id=msg.trace_id,
        policy_version=msg.policy_version,
        subject_ref=msg.subject_ref,
        labels=dict(msg.labels),
        reviews=tuple(
            Review(
                reviewer=r.reviewer,
                role=r.role,
                verdict=Verdict(r.verdict),
                reason=r.reason,
                at=_ts(r.at),
                output=_struct(r.output) if r.HasField("output") else None,
            )
            for r in msg.reviews
        ),
        approvals_needed=msg.approvals_needed,
        review_deadline=_ts(msg.review_deadline) if msg.HasField("review_deadline") else None,
    )


def _request(
    application: str,
    input: Mapping[str, Any],
    *,
    subject_ref: str,
    idempotency_key: str,
    labels: Mapping[str, str] | None,
    wait: float,
) -> pb.DecideRequest:
    req = pb.DecideRequest(
        application=application,
        subject_ref=subject_ref,
        idempotency_key=idempotency_key,
        labels=dict(labels or {}),
    )
    req.input.update(dict(input))
    if wait > 0:
        req.wait.FromNanoseconds(int(wait * 1e9))
    return req


class AsyncGatewayClient:
    """grpc.aio client; use as ``async with`` or call ``close()``."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str,
        channel: grpc.aio.Channel | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._stub = pb_grpc.DecisionGatewayStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout

    async def decide(
        self,
        application: str,
        input: Mapping[str, Any],
        *,
        subject_ref: str = "",
        idempotency_key: str = "",
        labels: Mapping[str, str] | None = None,
        wait: float = 0.0,
    ) -> Decision:
        """Ask for a decision; with ``wait`` > 0, block up to that long for a human verdict."""
        req = _request(
            application,
            input,
            subject_ref=subject_ref,
            idempotency_key=idempotency_key,
            labels=labels,
            wait=wait,
        )
        try:
            msg = await self._stub.Decide(
                req, metadata=self._metadata, timeout=self._timeout + wait
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    async def get(self, decision_id: str) -> Decision:
        try:
            msg = await self._stub.GetDecision(
                pb.GetDecisionRequest(decision_id=decision_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    async def watch(self, decision_id: str) -> AsyncIterator[Decision]:
        """The current state, then each change, ending after a final state."""
        call = self._stub.WatchDecision(
            pb.WatchDecisionRequest(decision_id=decision_id), metadata=self._metadata
        )
        try:
            async for msg in call:
                yield decision_from_pb(msg)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class GatewayClient:
    """Blocking client for code that does not run an event loop."""

    def __init__(self, target: str, *, api_key: str, timeout: float = 30.0) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.DecisionGatewayStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._timeout = timeout

    def decide(
        self,
        application: str,
        input: Mapping[str, Any],
        *,
        subject_ref: str = "",
        idempotency_key: str = "",
        labels: Mapping[str, str] | None = None,
        wait: float = 0.0,
    ) -> Decision:
        req = _request(
            application,
            input,
            subject_ref=subject_ref,
            idempotency_key=idempotency_key,
            labels=labels,
            wait=wait,
        )
        try:
            msg = self._stub.Decide(req, metadata=self._metadata, timeout=self._timeout + wait)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    def get(self, decision_id: str) -> Decision:
        try:
            msg = self._stub.GetDecision(
                pb.GetDecisionRequest(decision_id=decision_id),
                metadata=self._metadata,
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return decision_from_pb(msg)

    def watch(self, decision_id: str) -> Iterator[Decision]:
        call = self._stub.WatchDecision(
            pb.WatchDecisionRequest(decision_id=decision_id), metadata=self._metadata
        )
        try:
            for msg in call:
                yield decision_from_pb(msg)
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
