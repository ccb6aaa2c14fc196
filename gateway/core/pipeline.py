"""The decision pipeline: check, evaluate (`gateway.core.evaluation`: classify, call the model,
route by policy), persist, answer, and wait for people where the caller asked to.

Fail closed everywhere: an error while evaluating a condition or calling the model never
approves; it follows the application's ``on_model_error`` (review or reject).

Model risk (`gateway.modelrisk.gate`): a decision whose model version the inventory does not
allow to decide automatically (missing, not approved, validation expired, above its tier ceiling,
escalated by monitoring) is never automatic: it fails closed like a model error, with the reason
in the decision and its ``decision.created`` event. The model is still called, so reviewers see
its output, except for a retired version: withdrawn for good, it is not called at all. A tier
with ``require_explanation`` holds for review an output that does not explain itself. An OIP
server that answers under another version than the pinned one is a model error, and the
decision's trail gets a ``model.version_mismatch`` event with it.

Idempotency (`gateway.core.idempotency`): a call with a key gets the decision made for it only
when it asks the same thing. The check runs where the key is found: the lookup before the model
call, and the writer's own duplicate detection (a concurrent call, or another replica, that
recorded the key first).
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType, current_trace_ids
from gateway.audit.events import event as audit_event
from gateway.core.admission import Admission, Slot
from gateway.core.auth import Principal
from gateway.core.command import DecideCommand, check_callback
from gateway.core.evaluation import ModelInUse, Outcome
from gateway.core.idempotency import check_same_request, request_digest
from gateway.core.ids import new_decision_id
from gateway.core.notifier import Notifier
from gateway.core.policy_in_force import PolicyInForce
from gateway.core.record import created_payload, review_task, version_mismatch_event
from gateway.core.shadow import ShadowObserver
from gateway.core.vault import Vault
from gateway.core.waiting import follow, wait_final, wait_for_verdict
from gateway.errors import (
    ModelUnavailable,
    NotFound,
)
from gateway.modelrisk.gate import model_key, validation_of
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.policy import ApplicationPolicy, PolicySet
from gateway.store.protocol import Store
from gateway.telemetry import metrics
from gateway.telemetry.spans import child_span
from gateway.types import (
    Decision,
    ReviewTask,
    Status,
    TaskKind,
)

log = structlog.get_logger("gateway.pipeline")


async def _nothing_paused() -> Mapping[str, bool]:
    return {}


async def _empty_inventory() -> Mapping[ModelKey, ModelRecord]:
    return {}


class DecisionPipeline:
    def __init__(
        self,
        *,
        policies: PolicyInForce,
        store: Store,
        notifier: Notifier,
        sampler: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        paused: Callable[[], Awaitable[Mapping[str, bool]]] = _nothing_paused,
        models: Callable[[], Awaitable[Mapping[ModelKey, ModelRecord]]] = _empty_inventory,
        vault: Vault | None = None,
        shadow: ShadowObserver | None = None,
        admission: Admission | None = None,
    ) -> None:
        """``paused`` gives the kill switch's paused application ids (in memory while the
        fleet's state is confirmed), each to True when its backend is paused too, so the model
        must not be called; it raises `StoreUnavailable` when the state cannot be confirmed.
        ``models`` gives the model inventory the same way (`gateway.modelrisk.gate.ModelGate`);
        without one, no decision is automatic.
        ``vault`` seals each application's ``sensitive_fields`` before they are stored.
        ``policies`` gives the version each decision is made under, whole (a swap never reaches
        a decision under way); ``shadow`` evaluates it under the shadow version, if one is set."""
        self._vault = vault
        self._in_force = policies
        self._shadow = shadow
        self._admission = admission or Admission()
        self._paused = paused
        self._models = models
        self._store = store
        self._notifier = notifier
        self._sampler = sampler
        self._clock = clock

    @property
    def policies(self) -> PolicySet:
        """The enforced policy set now (for lookups outside a decision)."""
        return self._in_force.policies

    async def decide(self, cmd: DecideCommand, principal: Principal) -> Decision:
        decision, made_here = await self._decide(cmd, principal)
        if made_here:
            # This call holds the input in clear: no need to open what it just sealed.
            return decision if decision.input is cmd.input else replace(decision, input=cmd.input)
        return self._reveal(decision)

    async def _decide(self, cmd: DecideCommand, principal: Principal) -> tuple[Decision, bool]:
        """The decision, and whether this call made it (False: an earlier one's, by key)."""
        slot = self._admission.enter()  # before any work; given back before waiting for people
        try:
            return await self._make(cmd, principal, slot)
        finally:
            slot.release()

    async def _make(
        self, cmd: DecideCommand, principal: Principal, slot: Slot
    ) -> tuple[Decision, bool]:
        compiled = await self._in_force.enforced()
        policies = compiled.policies
        app = policies.application(cmd.application)
        principal.require_application(app.id)
        check_callback(app, cmd)
        if app.input_schema is not None:
            app.input_schema.check(cmd.input)
        # Only a decision with a key stores a digest: without one it would never be compared,
        # and it is a digest of personal data.
        digest = request_digest(cmd) if cmd.idempotency_key else ""
        if cmd.idempotency_key:
            existing = await self._store.find_by_idempotency_key(app.id, cmd.idempotency_key)
            if existing is not None:
                check_same_request(existing, cmd, digest)
                slot.release()
                return await wait_for_verdict(
                    self._store, self._notifier, existing, cmd.wait
                ), False

        backend_paused = (await self._paused()).get(app.id)
        record = (await self._models()).get(model_key(app.backend))
        model = ModelInUse(replace(app.backend.ref(), validation=validation_of(record)), record)
        evaluator = compiled.evaluator
        if backend_paused is not None:
            outcome = await evaluator.paused(app, cmd, backend_paused, model)
        else:
            outcome = await evaluator.evaluate(app, cmd, model)
        decision_id = new_decision_id()
        with self._notifier.subscribe(decision_id) as changes:
            decision, created = await self._persist(
                decision_id, app, cmd, outcome, principal, digest, policies.version
            )
            if created:
                shadow = self._in_force.shadow
                if shadow is not None and self._shadow is not None:
                    self._shadow.schedule(shadow, policies.version, decision, cmd.input)
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
                slot.release()
                return await wait_for_verdict(
                    self._store, self._notifier, decision, cmd.wait
                ), False
            if outcome.model_failed and decision.status is Status.REJECTED:
                raise ModelUnavailable("model unavailable; rejected by policy", decision.id)
            if decision.status.is_final or cmd.wait <= 0:
                return decision, True
            slot.release()
            with child_span("review.wait", decision_id=decision.id):
                return await wait_final(decision, changes, cmd.wait), True

    async def _persist(
        self,
        decision_id: str,
        app: ApplicationPolicy,
        cmd: DecideCommand,
        out: Outcome,
        principal: Principal,
        digest: str,
        policy_version: str,
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
            model=out.model if not out.tier.reject else None,
            model_output=out.model_output,
            final_output=final_output,
            reasons=out.reasons,
            rule=out.rule,
            created_at=now,
            updated_at=now,
            trace_id=trace_id,
            policy_version=policy_version,
            subject_ref=cmd.subject_ref,
            idempotency_key=cmd.idempotency_key,
            labels=dict(cmd.labels),
            approvals_needed=out.tier.approvals if held else 0,
            review_deadline=deadline,
            reject_approvals_needed=out.tier.reject_approvals if held else 0,
            blind=held and out.tier.blind,
            requested_by=cmd.requested_by,
            request_digest=digest,
            callback_url=cmd.callback_url,
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
        events = [event]
        if out.mismatch is not None:
            events.append(version_mismatch_event(decision_id, out.mismatch, now))
        with child_span("commit"):
            return await self._store.create_decision(decision, events, tasks)

    async def get(self, decision_id: str, principal: Principal) -> Decision:
        decision = await self._store.get_decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        principal.require_application(decision.application)
        return self._reveal(decision)

    def _reveal(self, decision: Decision) -> Decision:
        """The decision with its sealed sensitive fields opened, for its own application."""
        app = self._in_force.policies.applications.get(decision.application)
        if self._vault is None or app is None or not app.sensitive_fields:
            return decision
        opened = self._vault.open(decision.input, app.sensitive_fields, decision.id)
        return replace(decision, input=opened)

    def watch(self, decision_id: str, principal: Principal) -> AsyncGenerator[Decision, None]:
        """Yield the current state, then each change, ending after a final state (or at
        shutdown). A generator, so a caller that stops early can close it at once."""
        return follow(
            self._notifier, decision_id, lambda: self.get(decision_id, principal), self._reveal
        )
