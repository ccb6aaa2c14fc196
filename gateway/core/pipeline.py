"""The decision pipeline: classify, call the model, route by policy, persist, answer.

Fail closed everywhere: an error while evaluating a condition or calling the model never
approves; it follows the application's ``on_model_error`` (review or reject).

Idempotency (`gateway.core.idempotency`): a call with a key gets the decision made for it only
when it asks the same thing. The check runs where the key is found: the lookup before the model
call, and the writer's own duplicate detection (a concurrent call, or another replica, that
recorded the key first).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from gateway.audit.chain import has_non_finite
from gateway.audit.events import EventType, current_trace_ids
from gateway.audit.events import event as audit_event
from gateway.backends.protocol import ModelBackend, ModelError
from gateway.core.auth import Principal
from gateway.core.command import DecideCommand
from gateway.core.idempotency import check_same_request, request_digest
from gateway.core.ids import new_decision_id
from gateway.core.notifier import Change, Notifier
from gateway.core.record import created_payload, review_task
from gateway.core.vault import Vault
from gateway.errors import (
    FailedPrecondition,
    InvalidInput,
    ModelUnavailable,
    NotFound,
)
from gateway.policy import ApplicationPolicy, PolicyEvalError, PolicySet, TierSpec
from gateway.store.protocol import Store
from gateway.telemetry import metrics
from gateway.telemetry.spans import child_span
from gateway.types import (
    Action,
    Decision,
    JSONObject,
    ReviewTask,
    Status,
    TaskKind,
)

log = structlog.get_logger("gateway.pipeline")

_ROUTE_STATUS = {
    Action.APPROVE: Status.APPROVED,
    Action.REJECT: Status.REJECTED,
    Action.REVIEW: Status.PENDING_REVIEW,
}


def _check_requester(app: ApplicationPolicy, tier: TierSpec, cmd: DecideCommand) -> None:
    """Refuse, before the model is called and before anything is written, a request without
    ``requested_by`` when its tier needs one (maker-checker needs to know the maker)."""
    if tier.require_requester and not cmd.requested_by:
        raise InvalidInput(
            "requested_by",
            f"is required: application {app.id!r} classified this request into tier "
            f"{tier.name!r}, which needs the person on whose behalf it is made",
        )


async def _nothing_paused() -> Mapping[str, bool]:
    return {}


@dataclass(frozen=True, slots=True)
class _Outcome:
    tier: TierSpec
    status: Status
    rule: str
    reasons: tuple[str, ...]
    model_output: JSONObject | None
    model_failed: bool


class DecisionPipeline:
    def __init__(
        self,
        *,
        policies: PolicySet,
        backends: Mapping[str, ModelBackend],
        app_backends: Mapping[str, ModelBackend] | None = None,
        store: Store,
        notifier: Notifier,
        sampler: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        paused: Callable[[], Awaitable[Mapping[str, bool]]] = _nothing_paused,
        vault: Vault | None = None,
    ) -> None:
        """``paused`` gives the kill switch's paused application ids (in memory while the
        fleet's state is confirmed), each to True when its backend is paused too, so the model
        must not be called; it raises `StoreUnavailable` when the state cannot be confirmed.
        ``vault`` seals each application's ``sensitive_fields`` before they are stored."""
        self._vault = vault
        self._policies = policies
        self._paused = paused
        self._backends = backends
        # Per-application views of a shared backend (an OIP backend with the application's
        # tensor mapping), keyed by application id; they take precedence over ``backends``.
        self._app_backends = app_backends or {}
        self._store = store
        self._notifier = notifier
        self._sampler = sampler
        self._clock = clock

    @property
    def policies(self) -> PolicySet:
        return self._policies

    async def decide(self, cmd: DecideCommand, principal: Principal) -> Decision:
        decision, made_here = await self._decide(cmd, principal)
        if made_here:
            # This call holds the input in clear: no need to open what it just sealed.
            return decision if decision.input is cmd.input else replace(decision, input=cmd.input)
        return self._reveal(decision)

    async def _decide(self, cmd: DecideCommand, principal: Principal) -> tuple[Decision, bool]:
        """The decision, and whether this call made it (False: an earlier one's, by key)."""
        app = self._policies.application(cmd.application)
        principal.require_application(app.id)
        if app.input_schema is not None:
            app.input_schema.check(cmd.input)
        # Only a decision with a key stores a digest: without one it would never be compared,
        # and it is a digest of personal data.
        digest = request_digest(cmd) if cmd.idempotency_key else ""
        if cmd.idempotency_key:
            existing = await self._store.find_by_idempotency_key(app.id, cmd.idempotency_key)
            if existing is not None:
                check_same_request(existing, cmd, digest)
                return await self._maybe_wait(existing, cmd.wait), False

        backend_paused = (await self._paused()).get(app.id)
        if backend_paused is not None:
            outcome = await self._paused_outcome(app, cmd, backend_paused)
        else:
            outcome = await self._evaluate(app, cmd)
        decision_id = new_decision_id()
        with self._notifier.subscribe(decision_id) as changes:
            decision, created = await self._persist(
                decision_id, app, cmd, outcome, principal, digest
            )
            if created:
                metrics.decision_created(app.id, decision.tier, decision.status.value)
                log.debug(
                    "decision.created",
                    decision_id=decision.id,
                    application=app.id,
                    tier=decision.tier,
                    status=decision.status.value,
                    rule=decision.rule,
                )
                self._notifier.publish(decision)
            else:
                # The writer found the key recorded meanwhile (a concurrent call, or another
                # replica): the same check as the lookup above.
                check_same_request(decision, cmd, digest)
                return await self._maybe_wait(decision, cmd.wait), False
            if outcome.model_failed and decision.status is Status.REJECTED:
                raise ModelUnavailable("model unavailable; rejected by policy", decision.id)
            if decision.status.is_final or cmd.wait <= 0:
                return decision, True
            with child_span("review.wait", decision_id=decision.id):
                return await _wait_final(decision, changes, cmd.wait), True

    async def _evaluate(self, app: ApplicationPolicy, cmd: DecideCommand) -> _Outcome:
        labels = dict(cmd.labels)
        try:
            with child_span("classify", application=app.id):
                cls = app.classify(cmd.input, labels)
        except PolicyEvalError as exc:
            # The request might have escalated: hold it at the strictest tier it could reach,
            # and ask for what that tier asks.
            tier = _strictest_reviewable(app)
            _check_requester(app, tier, cmd)
            return self._fail_closed(app, tier, (), f"{exc.rule} failed: {exc}", None)
        tier = cls.tier
        _check_requester(app, tier, cmd)
        if tier.reject:
            rule = f"tier:{tier.name}"
            return _Outcome(tier, Status.REJECTED, rule, cls.reasons, None, False)

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
            return self._fail_closed(app, tier, cls.reasons, why, None, model_failed=True)
        except Exception as exc:  # a backend bug must fail closed too, and be visible
            log.exception("model.unexpected_error", backend=app.backend.name)
            why = f"model error: {type(exc).__name__}"
            return self._fail_closed(app, tier, cls.reasons, why, None, model_failed=True)

        if has_non_finite(output):
            why = "model error: output holds NaN or infinity"
            return self._fail_closed(app, tier, cls.reasons, why, None, model_failed=True)
        try:
            route = app.route(cmd.input, output, tier, labels, backend.ref)
        except PolicyEvalError as exc:
            return self._fail_closed(app, tier, cls.reasons, f"{exc.rule} failed: {exc}", output)
        reasons = (*cls.reasons, route.reason) if route.reason else cls.reasons
        return _Outcome(tier, _ROUTE_STATUS[route.action], route.rule, reasons, output, False)

    async def _paused_outcome(
        self, app: ApplicationPolicy, cmd: DecideCommand, backend_paused: bool
    ) -> _Outcome:
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
            _check_requester(app, tier, cmd)
            why = f"backend {app.backend.name!r} paused: held for review without calling it"
            if tier.reject:
                return _Outcome(tier, Status.REJECTED, f"tier:{tier.name}", (), None, False)
            return _Outcome(tier, Status.PENDING_REVIEW, "paused", (why,), None, False)
        out = await self._evaluate(app, cmd)
        if out.tier.reject:  # a prohibited request stays rejected
            return out
        reasons = (*out.reasons, "application paused: every decision is held for review")
        return _Outcome(
            out.tier, Status.PENDING_REVIEW, "paused", reasons, out.model_output, out.model_failed
        )

    def _fail_closed(
        self,
        app: ApplicationPolicy,
        tier: TierSpec,
        reasons: tuple[str, ...],
        why: str,
        output: JSONObject | None,
        *,
        model_failed: bool = False,
    ) -> _Outcome:
        status = Status.REJECTED if app.on_model_error is Action.REJECT else Status.PENDING_REVIEW
        rule = "on_model_error" if model_failed else "on_policy_error"
        return _Outcome(tier, status, rule, (*reasons, why), output, model_failed)

    async def _persist(
        self,
        decision_id: str,
        app: ApplicationPolicy,
        cmd: DecideCommand,
        out: _Outcome,
        principal: Principal,
        digest: str,
    ) -> tuple[Decision, bool]:
        now = self._clock()
        trace_id, _ = current_trace_ids()
        held = out.status is Status.PENDING_REVIEW
        deadline = now + out.tier.sla if held and out.tier.sla is not None else None
        final_output = out.model_output if out.status is Status.APPROVED else None
        stored_input = cmd.input
        if self._vault is not None and app.sensitive_fields:
            stored_input = self._vault.seal(cmd.input, app.sensitive_fields, decision_id)
        decision = Decision(
            id=decision_id,
            application=app.id,
            tier=out.tier.name,
            status=out.status,
            input=stored_input,
            model=app.backend.ref() if not out.tier.reject else None,
            model_output=out.model_output,
            final_output=final_output,
            reasons=out.reasons,
            rule=out.rule,
            created_at=now,
            updated_at=now,
            trace_id=trace_id,
            policy_version=self._policies.version,
            subject_ref=cmd.subject_ref,
            idempotency_key=cmd.idempotency_key,
            labels=dict(cmd.labels),
            approvals_needed=out.tier.approvals if held else 0,
            review_deadline=deadline,
            reject_approvals_needed=out.tier.reject_approvals if held else 0,
            blind=held and out.tier.blind,
            requested_by=cmd.requested_by,
            request_digest=digest,
        )
        tasks: list[ReviewTask] = []
        if held:
            tasks.append(review_task(decision, TaskKind.DECISION, out.tier, deadline))
        elif out.rule.startswith("route") and self._sampler() < app.sample_for_review:
            tasks.append(review_task(decision, TaskKind.QA, out.tier, None))
        event = audit_event(
            EventType.DECISION_CREATED,
            decision_id,
            principal.actor,
            created_payload(decision, app, bool(tasks and not held)),
            ts=now,
        )
        with child_span("commit"):
            return await self._store.create_decision(decision, (event,), tasks)

    async def _maybe_wait(self, decision: Decision, wait: float) -> Decision:
        if decision.status.is_final or wait <= 0:
            return decision
        with self._notifier.subscribe(decision.id) as changes:
            current = await self._store.get_decision(decision.id)
            if current is None or current.status.is_final:
                return current or decision
            return await _wait_final(current, changes, wait)

    async def get(self, decision_id: str, principal: Principal) -> Decision:
        decision = await self._store.get_decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        principal.require_application(decision.application)
        return self._reveal(decision)

    def _reveal(self, decision: Decision) -> Decision:
        """The decision with its sealed sensitive fields opened, for its own application."""
        app = self._policies.applications.get(decision.application)
        if self._vault is None or app is None or not app.sensitive_fields:
            return decision
        opened = self._vault.open(decision.input, app.sensitive_fields, decision.id)
        return replace(decision, input=opened)

    async def watch(self, decision_id: str, principal: Principal) -> AsyncGenerator[Decision, None]:
        """Yield the current state, then each change, ending after a final state (or at
        shutdown). A generator, so a caller that stops early can close it at once."""
        with self._notifier.subscribe(decision_id) as changes:
            current = await self.get(decision_id, principal)
            yield current
            last = current.updated_at, len(current.reviews), current.status
            while not current.status.is_final:
                change = await changes.get()
                if change is None:  # shutting down: the caller re-watches elsewhere
                    return
                current = change
                key = current.updated_at, len(current.reviews), current.status
                if key != last:
                    last = key
                    yield self._reveal(current)


def _strictest_reviewable(app: ApplicationPolicy) -> TierSpec:
    candidates = [app.base_tier, *(e.tier for e in app.escalations)]
    reviewable = [t for t in candidates if not t.reject] or [app.base_tier]
    return min(reviewable, key=lambda t: t.rank)


async def _wait_final(decision: Decision, changes: asyncio.Queue[Change], wait: float) -> Decision:
    """Block until a published change makes the decision final, or ``wait`` seconds pass."""
    loop = asyncio.get_running_loop()
    until = loop.time() + wait
    current = decision
    while not current.status.is_final:
        remaining = until - loop.time()
        if remaining <= 0:
            break
        try:
            async with asyncio.timeout(remaining):
                change = await changes.get()
        except TimeoutError:
            break
        if change is None:  # shutting down: answer with the state as it is
            break
        current = change
    return current
