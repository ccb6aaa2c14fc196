"""Evaluating one request: classify, call the model, route by policy, into an `Outcome`.

Fail closed everywhere: an error while evaluating a condition or calling the model never
approves; it follows the application's ``on_model_error`` (review or reject). A model version
the inventory does not allow to decide automatically fails closed the same way (rule
``model_risk``); see `gateway.core.pipeline` for what is recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from gateway.audit.chain import has_non_finite
from gateway.backends.protocol import ModelBackend, ModelError, ModelVersionMismatch
from gateway.core.command import DecideCommand, check_requester
from gateway.errors import FailedPrecondition
from gateway.modelrisk.gate import has_explanation, model_check
from gateway.modelrisk.record import ModelRecord, ModelStatus
from gateway.policy import ApplicationPolicy, PolicyEvalError, PolicySet, TierSpec
from gateway.telemetry import metrics
from gateway.telemetry.spans import child_span
from gateway.types import Action, JSONObject, ModelRef, Status

log = structlog.get_logger("gateway.pipeline")

_ROUTE_STATUS = {
    Action.APPROVE: Status.APPROVED,
    Action.REJECT: Status.REJECTED,
    Action.REVIEW: Status.PENDING_REVIEW,
}


@dataclass(frozen=True, slots=True)
class ModelInUse:
    """The application's model version as this decision sees it."""

    ref: ModelRef
    """The policy's pinned version, with its inventory status now."""
    record: ModelRecord | None


@dataclass(frozen=True, slots=True)
class Outcome:
    tier: TierSpec
    status: Status
    rule: str
    reasons: tuple[str, ...]
    model_output: JSONObject | None
    model_failed: bool
    model: ModelRef | None = None
    mismatch: ModelVersionMismatch | None = None
    """The model server answered under another version than the pinned one."""


class Evaluator:
    """Classification, the model call and routing for the pipeline (no I/O but the model)."""

    def __init__(
        self,
        policies: PolicySet,
        backends: Mapping[str, ModelBackend],
        app_backends: Mapping[str, ModelBackend],
        clock: Callable[[], datetime],
    ) -> None:
        self._ranks = {t.name: t.rank for t in policies.tiers}
        self._backends = backends
        # Per-application views of a shared backend (an OIP backend with the application's
        # tensor mapping), keyed by application id; they take precedence over ``backends``.
        self._app_backends = app_backends
        self._clock = clock

    @property
    def backends(self) -> Mapping[str, ModelBackend]:
        """The model backends by name this evaluator calls."""
        return self._backends

    async def evaluate(
        self, app: ApplicationPolicy, cmd: DecideCommand, model: ModelInUse
    ) -> Outcome:
        out = await self._evaluate_model(app, cmd, model)
        return replace(out, model=model.ref)

    async def _evaluate_model(
        self, app: ApplicationPolicy, cmd: DecideCommand, model: ModelInUse
    ) -> Outcome:
        labels = dict(cmd.labels)
        try:
            with child_span("classify", application=app.id):
                cls = app.classify(cmd.input, labels, model.ref)
        except PolicyEvalError as exc:
            # The request might have escalated: hold it at the strictest tier it could reach,
            # and ask for what that tier asks.
            tier = _strictest_reviewable(app)
            check_requester(app, tier, cmd)
            return self._fail_closed(app, tier, (), f"{exc.rule} failed: {exc}", None)
        tier = cls.tier
        check_requester(app, tier, cmd)
        if tier.reject:
            rule = f"tier:{tier.name}"
            return Outcome(tier, Status.REJECTED, rule, cls.reasons, None, False)

        # Why this decision may not be automatic, by the model inventory (None: it may).
        barred = model_check(model.record, app.backend, tier, self._clock(), self._ranks)
        if model.record is not None and model.record.status is ModelStatus.RETIRED:
            # Withdrawn for good: its answers are no evidence any more, so it is not called.
            assert barred is not None
            return self._model_barred(app, tier, cls.reasons, barred, None)

        backend = self._app_backends.get(app.id) or self._backends[app.backend.name]
        started = time.perf_counter()
        try:
            with child_span("model", backend=app.backend.name, tier=tier.name):
                async with asyncio.timeout(app.backend.timeout):
                    output = await backend.predict(cmd.input, timeout=app.backend.timeout)
            metrics.model_latency(app.backend.name, "ok", time.perf_counter() - started)
        except (ModelError, TimeoutError) as exc:
            metrics.model_latency(app.backend.name, "error", time.perf_counter() - started)
            why = "model timed out" if isinstance(exc, TimeoutError) else f"model error: {exc}"
            reasons = (*cls.reasons, barred) if barred else cls.reasons
            out = self._fail_closed(app, tier, reasons, why, None, model_failed=True)
            if isinstance(exc, ModelVersionMismatch):
                out = replace(out, mismatch=exc)
            return out
        except Exception as exc:  # a backend bug must fail closed too, and be visible
            log.exception("model.unexpected_error", backend=app.backend.name)
            why = f"model error: {type(exc).__name__}"
            return self._fail_closed(app, tier, cls.reasons, why, None, model_failed=True)

        if has_non_finite(output):
            why = "model error: output holds NaN or infinity"
            return self._fail_closed(app, tier, cls.reasons, why, None, model_failed=True)
        try:
            route = app.route(cmd.input, output, tier, labels, model.ref)
        except PolicyEvalError as exc:
            held = (*cls.reasons, barred) if barred else cls.reasons
            return self._fail_closed(app, tier, held, f"{exc.rule} failed: {exc}", output)
        reasons = (*cls.reasons, route.reason) if route.reason else cls.reasons
        if barred is not None:
            return self._model_barred(app, tier, reasons, barred, output)
        if tier.require_explanation and not has_explanation(output):
            # Held whatever ``on_model_error`` says: a reviewer must see that it is missing.
            why = (
                f"model output has no explanation, which tier {tier.name!r} requires: "
                "held for review"
            )
            return Outcome(
                tier, Status.PENDING_REVIEW, "require_explanation", (*reasons, why), output, False
            )
        return Outcome(tier, _ROUTE_STATUS[route.action], route.rule, reasons, output, False)

    def _model_barred(
        self,
        app: ApplicationPolicy,
        tier: TierSpec,
        reasons: tuple[str, ...],
        why: str,
        output: JSONObject | None,
    ) -> Outcome:
        """The inventory does not allow this model version to decide automatically: fail
        closed as on a model error (held, or rejected per ``on_model_error``)."""
        out = self._fail_closed(app, tier, reasons, why, output)
        return replace(out, rule="model_risk")

    async def paused(
        self, app: ApplicationPolicy, cmd: DecideCommand, backend_paused: bool, model: ModelInUse
    ) -> Outcome:
        """Kill switch on: refuse, or hold for review whatever the route rules would say.

        A paused application's model still answers (reviewers see its output); a paused
        backend is not called at all, and reviewers override or reject.
        """
        if app.on_pause is Action.REJECT:
            raise FailedPrecondition(f"application {app.id!r} is paused; try again later")
        if backend_paused:
            try:
                tier = app.classify(cmd.input, dict(cmd.labels)).tier
            except PolicyEvalError:
                tier = _strictest_reviewable(app)
            check_requester(app, tier, cmd)
            why = f"backend {app.backend.name!r} paused: held for review without calling it"
            if tier.reject:
                return Outcome(tier, Status.REJECTED, f"tier:{tier.name}", (), None, False)
            return Outcome(
                tier, Status.PENDING_REVIEW, "paused", (why,), None, False, model=model.ref
            )
        out = await self.evaluate(app, cmd, model)
        if out.tier.reject:  # a prohibited request stays rejected
            return out
        reasons = (*out.reasons, "application paused: every decision is held for review")
        return replace(out, status=Status.PENDING_REVIEW, rule="paused", reasons=reasons)

    def _fail_closed(
        self,
        app: ApplicationPolicy,
        tier: TierSpec,
        reasons: tuple[str, ...],
        why: str,
        output: JSONObject | None,
        *,
        model_failed: bool = False,
    ) -> Outcome:
        status = Status.REJECTED if app.on_model_error is Action.REJECT else Status.PENDING_REVIEW
        rule = "on_model_error" if model_failed else "on_policy_error"
        return Outcome(tier, status, rule, (*reasons, why), output, model_failed)


def _strictest_reviewable(app: ApplicationPolicy) -> TierSpec:
    candidates = [app.base_tier, *(e.tier for e in app.escalations)]
    reviewable = [t for t in candidates if not t.reject] or [app.base_tier]
    return min(reviewable, key=lambda t: t.rank)
