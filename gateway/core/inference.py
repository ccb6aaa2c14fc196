"""Inference requests as decisions: what the gateway's Open Inference Protocol service calls.

A model name picks an application (its policy's ``oip.model_name``); the caller's tensors become
the application's input fields through its tensor mapping; the request then goes through the same
``DecisionPipeline`` as ``Decide``. What comes back is the final output (the model's, or the
reviewer's override) as tensors, or an error that carries the decision id: rejected
(``DecisionRefused``), still held when the caller's wait ended (``DecisionPending``), model down
with ``on_model_error: reject`` (``ModelUnavailable``, raised by the pipeline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from gateway.backends.protocol import ModelBackend
from gateway.core.auth import Principal
from gateway.core.command import DecideCommand
from gateway.core.pipeline import DecisionPipeline
from gateway.errors import (
    DecisionPending,
    DecisionRefused,
    FailedPrecondition,
    InvalidInput,
    NotFound,
)
from gateway.oip.tensors import Tensor, TensorError, decode, encode
from gateway.policy import ApplicationPolicy, OipMapping
from gateway.types import Decision, Status

__all__ = ["InferCommand", "InferResult", "InferenceService"]

DEFAULT_MAX_WAIT = 60.0
"""Seconds a caller without a deadline waits for people before DEADLINE_EXCEEDED."""


@dataclass(frozen=True, slots=True)
class InferCommand:
    model_name: str
    model_version: str
    inputs: Mapping[str, Tensor]
    requested_outputs: Sequence[str] = ()
    """Output tensor names the caller asked for; empty means all."""
    wait: float = DEFAULT_MAX_WAIT
    subject_ref: str = ""
    idempotency_key: str = ""
    requested_by: str = ""
    """The person on whose behalf the caller asks (validated, as ``DecideCommand``'s)."""


@dataclass(frozen=True, slots=True)
class InferResult:
    decision: Decision
    model_version: str
    outputs: list[Tensor]


class InferenceService:
    def __init__(
        self,
        pipeline: DecisionPipeline,
        backends: Mapping[str, ModelBackend],
        readiness: Callable[[], Awaitable[Mapping[str, bool]]],
    ) -> None:
        self._pipeline = pipeline
        self._backends = backends
        self._readiness = readiness

    def model(self, name: str, version: str, principal: Principal) -> ApplicationPolicy:
        """The application behind model ``name``, if this key may act for it."""
        app = self._pipeline.policies.application_for_model(name)
        principal.require_application(app.id)
        if version and version != app.backend.version:
            raise NotFound("model version", f"{name}/{version}")
        return app

    async def server_ready(self) -> bool:
        return all((await self._readiness()).values())

    async def model_ready(self, name: str, version: str, principal: Principal) -> bool:
        app = self.model(name, version, principal)
        return await self._backends[app.backend.name].ready()

    async def infer(self, cmd: InferCommand, principal: Principal) -> InferResult:
        app = self.model(cmd.model_name, cmd.model_version, principal)
        mapping = _mapping(app)
        expected = {t.name for t in mapping.inputs}
        for name in cmd.inputs:
            if name not in expected:
                raise InvalidInput(
                    f"inputs[{name}]", f"unknown input tensor; model expects {sorted(expected)}"
                )
        outputs = {t.name for t in mapping.outputs}
        for name in cmd.requested_outputs:
            if name not in outputs:
                raise InvalidInput(
                    f"outputs[{name}]", f"unknown output tensor; model has {sorted(outputs)}"
                )
        try:
            fields = decode(cmd.inputs, mapping.inputs, strict=True)
        except TensorError as exc:
            raise InvalidInput(f"inputs[{exc.field}]", exc.message) from None
        decision = await self._pipeline.decide(
            DecideCommand(
                application=app.id,
                input=fields,
                subject_ref=cmd.subject_ref,
                idempotency_key=cmd.idempotency_key,
                requested_by=cmd.requested_by,
                wait=cmd.wait,
            ),
            principal,
        )
        return InferResult(
            decision, app.backend.version, _answer(decision, mapping, cmd.requested_outputs)
        )


def _mapping(app: ApplicationPolicy) -> OipMapping:
    if app.oip is None:  # pragma: no cover - application_for_model only finds mapped apps
        raise NotFound("model", app.id)
    return app.oip


def _answer(decision: Decision, mapping: OipMapping, requested: Sequence[str]) -> list[Tensor]:
    status = decision.status
    if not status.is_final:
        raise DecisionPending(
            f"decision {decision.id} is held for review ({decision.tier} tier); "
            "watch it with DecisionGateway.WatchDecision",
            decision.id,
        )
    output = decision.final_output
    if status not in (Status.APPROVED, Status.OVERRIDDEN) or output is None:
        why = "; ".join(decision.reasons) or status.value.lower()
        raise DecisionRefused(f"decision {decision.id} {status.value}: {why}", decision.id)
    specs = mapping.outputs
    if requested:
        specs = tuple(t for t in specs if t.name in requested)
    try:
        return encode(output, specs)
    except TensorError as exc:
        # An override that does not fit the model's output tensors: the decision stands, but
        # this protocol cannot carry it; the caller reads it through the decision API.
        raise _Unfit(
            f"decision {decision.id}: the {status.value.lower()} output does not fit output "
            f"tensor {exc.field}: {exc.message}",
            decision.id,
        ) from None


class _Unfit(FailedPrecondition):
    def __init__(self, message: str, decision_id: str) -> None:
        super().__init__(message)
        self.decision_id = decision_id
