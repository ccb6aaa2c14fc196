"""Chat completions as decisions: what the gateway's OpenAI-compatible endpoint calls.

A model name picks an application (its policy's ``chat.model_name``); the conversation becomes
the decision's input (`gateway.chat.shape`) and goes through the same ``DecisionPipeline`` as
``Decide``. What comes back is the released output (the model's answer, or the reviewer's
override with edited text or tool arguments), or an error that carries the decision id:
rejected by policy or by a person (``DecisionRefused``, with the reason, which the calling
application can act on), still held when the caller's wait ended (``DecisionPending``), model
down with ``on_model_error: reject`` (``ModelUnavailable``, raised by the pipeline).

Token usage is counted per application when the model answered for this call (a call that found
an earlier decision by its idempotency key costs nothing new).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.core.auth import APP_ROLES, Principal
from gateway.core.command import DecideCommand
from gateway.core.pipeline import DecisionPipeline
from gateway.errors import DecisionPending, DecisionRefused
from gateway.policy import ApplicationPolicy
from gateway.telemetry import metrics
from gateway.types import Decision, JSONObject, Status

__all__ = ["ChatCommand", "ChatResult", "ChatService"]

DEFAULT_MAX_WAIT = 60.0
"""Seconds a held call waits for a reviewer when neither the caller nor the application sets
less."""


@dataclass(frozen=True, slots=True)
class ChatCommand:
    model_name: str
    input: JSONObject
    """The decision input (`gateway.chat.shape`)."""
    wait: float = DEFAULT_MAX_WAIT
    """Seconds the caller will wait for a reviewer."""
    idempotency_key: str = ""
    subject_ref: str = ""
    requested_by: str = ""


@dataclass(frozen=True, slots=True)
class ChatResult:
    decision: Decision
    output: JSONObject
    """The released output: the model's, or the reviewer's override."""


class ChatService:
    def __init__(self, pipeline: DecisionPipeline, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        self._pipeline = pipeline
        self._max_wait = max_wait

    def models(self, principal: Principal) -> list[str]:
        """The chat model names of the applications this key may act for, sorted."""
        apps = self._pipeline.policies.applications.values()
        return sorted(
            a.chat.model_name
            for a in apps
            if a.chat is not None and a.id in principal.applications and principal.role in APP_ROLES
        )

    def application(self, model_name: str, principal: Principal) -> ApplicationPolicy:
        """The application behind chat model ``model_name``, if this key may act for it."""
        app = self._pipeline.policies.application_for_chat_model(model_name)
        principal.require_application(app.id)
        return app

    async def complete(self, cmd: ChatCommand, principal: Principal) -> ChatResult:
        app = self.application(cmd.model_name, principal)
        assert app.chat is not None  # found by its chat model name
        limit = app.chat.max_wait if app.chat.max_wait is not None else self._max_wait
        started = datetime.now(UTC)
        decision = await self._pipeline.decide(
            DecideCommand(
                application=app.id,
                input=cmd.input,
                subject_ref=cmd.subject_ref,
                idempotency_key=cmd.idempotency_key,
                requested_by=cmd.requested_by,
                wait=max(0.0, min(cmd.wait, limit)),
            ),
            principal,
        )
        if decision.created_at >= started:
            _count_tokens(app.id, decision.model_output)
        return ChatResult(decision, _released(decision))


def _count_tokens(application: str, output: JSONObject | None) -> None:
    usage = (output or {}).get("usage")
    if isinstance(usage, dict):
        for kind in ("prompt", "completion"):
            tokens = usage.get(f"{kind}_tokens")
            if isinstance(tokens, int) and tokens > 0:
                metrics.chat_tokens(application, kind, tokens)


def _released(decision: Decision) -> JSONObject:
    status = decision.status
    if not status.is_final:
        raise DecisionPending(
            f"decision {decision.id} is held for review ({decision.tier} tier): "
            f"{'; '.join(decision.reasons) or 'a person must look at it'}",
            decision.id,
        )
    output = decision.final_output
    if status not in (Status.APPROVED, Status.OVERRIDDEN) or output is None:
        why = [*decision.reasons]
        said = [r.reason for r in decision.reviews if r.reason]
        if said:
            why.append(f"reviewer: {said[-1]}")
        raise DecisionRefused(
            f"decision {decision.id} {status.value}: {'; '.join(why) or status.value.lower()}",
            decision.id,
        )
    return output
