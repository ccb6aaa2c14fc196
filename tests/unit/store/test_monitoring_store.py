"""Monitoring per model version in the store: counts written with the events they count, output
histograms, references, and the breach and escalation compare-and-sets, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.audit.events import EventType, event
from gateway.modelrisk.monitor import bucket
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.modelrisk.stats import output_bin
from gateway.timefmt import format_ts
from gateway.types import (
    AuditDraft,
    Decision,
    ModelRef,
    Review,
    ReviewTask,
    Status,
    TaskKind,
    Verdict,
)
from tests.unit.store.conftest import AnyStore
from tests.unit.store.store_factories import created_event, decision_task, make_decision

KEY = ModelKey("credit-scorer", "credit_v3", "3")
REF = ModelRef("credit-scorer", "credit_v3", "3")
EPOCH = "2000-01-01T00:00:00.000000Z"
"""A bucket before every count: a window covering all of them."""


def _made(**changes: object) -> Decision:
    return make_decision(**{"model": REF, **changes})


async def _create(store: AnyStore, *decisions: Decision, qa: bool = False) -> None:
    async def one(d: Decision) -> None:
        tasks: list[ReviewTask] = []
        if d.status is Status.PENDING_REVIEW:
            tasks = [decision_task(d)]
        elif qa:
            tasks = [decision_task(d, kind=TaskKind.QA, deadline=None)]
        await store.create_decision(d, [created_event(d)], tasks)

    await asyncio.gather(*(one(d) for d in decisions))  # one batch where the writer can


def _inventory(escalated: bool = False) -> ModelRecord:
    t = datetime(2026, 1, 5, tzinfo=UTC)
    return ModelRecord(
        key=KEY,
        owner="olga",
        validator="vic",
        intended_use="credit limits",
        max_tier="limited",
        status=ModelStatus.APPROVED,
        validated_at=t,
        validation_expires_at=t + timedelta(days=365),
        documentation_url="",
        limitations="",
        registered_at=t,
        updated_at=t,
        updated_by="cli:olga",
        escalated=escalated,
    )


def _key_payload() -> dict[str, str]:
    return {"backend": KEY.backend, "name": KEY.name, "version": KEY.version}


async def test_created_decisions_are_counted_by_outcome_with_their_outputs(
    store: AnyStore,
) -> None:
    """Auto-approved, auto-rejected, held, failed and timed-out decisions each count once per
    model version, numeric outputs land in their bins, and a retried idempotency key counts
    nothing more."""
    await _create(
        store,
        _made(status=Status.APPROVED, model_output={"score": 0.91, "flag": True}, rule="route[0]"),
        _made(status=Status.APPROVED, model_output={"score": 0.96}, idempotency_key="k1"),
        _made(status=Status.REJECTED, model_output={"score": 0.05}, rule="route[1]"),
        _made(status=Status.PENDING_REVIEW, model_output={"score": 0.5, "limit": 5000}),
        _made(rule="on_model_error", model_output=None, reasons=("model timed out",)),
        _made(rule="on_model_error", model_output=None, reasons=("model error: boom",)),
        _made(status=Status.REJECTED, model=None, model_output=None, rule="tier:prohibited"),
    )
    retry = _made(status=Status.APPROVED, model_output={"score": 0.2}, idempotency_key="k1")
    await _create(store, retry)

    counts = await store.model_counts(KEY, EPOCH)
    assert counts == {
        "decided": 6,
        "auto_approved": 2,
        "auto_rejected": 1,
        "held": 3,
        "model_timeout": 1,
        "model_error": 1,
    }
    hist = await store.model_histogram(KEY, EPOCH)
    assert hist == {
        "score": {
            output_bin(0.91): 1,
            output_bin(0.96): 1,
            output_bin(0.05): 1,
            output_bin(0.5): 1,
        },
        "limit": {output_bin(5000): 1},
    }
    series = await store.model_count_series(KEY, EPOCH)
    assert {b for b, _, _ in series} == {bucket(format_ts(datetime.now(UTC)))}


async def test_a_final_verdict_and_a_qa_opinion_count_in_their_own_transaction(
    store: AnyStore,
) -> None:
    """Only the verdict that makes a held decision final counts (reviewed and its outcome); a
    QA opinion counts as agree or disagree for the decision's model version."""
    held = _made(approvals_needed=2)
    overridden = _made()
    sampled = _made(status=Status.APPROVED, model_output={"score": 0.9})
    await _create(store, held, overridden)
    await _create(store, sampled, qa=True)
    now = datetime.now(UTC)

    def review(who: str, verdict: Verdict = Verdict.APPROVE) -> Review:
        return Review(who, "reviewer", verdict, "because", now)

    def reviewed(d_id: str) -> AuditDraft:
        return event(EventType.DECISION_REVIEWED, d_id, "user:r", {})

    pending = Status.PENDING_REVIEW
    await store.record_review(held.id, review("ann"), pending, None, reviewed(held.id), pending)
    assert "reviewed" not in await store.model_counts(KEY, EPOCH)
    await store.record_review(
        overridden.id,
        review("bob", Verdict.OVERRIDE),
        Status.OVERRIDDEN,
        {"score": 0.1},
        reviewed(overridden.id),
        pending,
    )
    await store.record_qa(
        sampled.id,
        reviewer="qa1",
        role="senior",
        agree=False,
        reason="too generous",
        at=now,
        event=event(EventType.DECISION_QA_REVIEWED, sampled.id, "user:qa1", {}),
    )
    counts = await store.model_counts(KEY, EPOCH)
    assert (counts["reviewed"], counts["review_overridden"], counts["qa_disagree"]) == (1, 1, 1)
    assert "review_approved" not in counts and "qa_agree" not in counts


async def test_one_breach_and_one_escalation_however_many_try(store: AnyStore) -> None:
    """record_breach is a compare-and-set: of several concurrent attempts one records the
    breach and the escalation with their events; clearing is audited and restarts evidence."""
    await store.register_model(
        _inventory(), event(EventType.MODEL_REGISTERED, "", "cli:t", _key_payload())
    )
    figures = {**_key_payload(), "metric": "override_rate", "events": 40, "trials": 100}

    async def attempt() -> tuple[bool, bool]:
        breach = event(EventType.MODEL_BREACH, "", "system", figures)
        escalated = event(EventType.MODEL_ESCALATED, "", "system", figures)
        return await store.record_breach(KEY, "override_rate", breach, ("overrides", escalated))

    results = await asyncio.gather(*(attempt() for _ in range(5)))
    assert sorted(results) == [(False, False)] * 4 + [(True, True)]
    record = await store.get_model(KEY)
    assert record is not None and record.escalated and record.escalation_reason == "overrides"
    types = [e.type for e in await store.audit_events(limit=100)]
    assert types.count("model.breach") == 1 and types.count("model.escalated") == 1
    [state] = await store.model_breach_states()
    assert state.open and state.metric == "override_rate"

    cleared = event(EventType.MODEL_CLEARED, "", "user:ada", {**_key_payload(), "reason": "ok"})
    assert await store.clear_model_escalation(KEY, ["override_rate"], "2099-01-01T00", cleared)
    assert not await store.clear_model_escalation(KEY, ["override_rate"], "x", cleared)
    record = await store.get_model(KEY)
    assert record == replace(_inventory(), escalated=False)
    [state] = await store.model_breach_states()
    assert not state.open and state.not_before == "2099-01-01T00"
    types = [e.type for e in await store.audit_events(limit=100)]
    assert types.count("model.cleared") == 1


async def test_a_breach_on_a_version_outside_the_inventory_is_recorded_not_escalated(
    store: AnyStore,
) -> None:
    """Without an inventory row there is nothing to escalate: the breach alone is recorded."""
    breach = event(EventType.MODEL_BREACH, "", "system", _key_payload())
    escalated = event(EventType.MODEL_ESCALATED, "", "system", _key_payload())
    assert await store.record_breach(KEY, "error_rate", breach, ("x", escalated)) == (True, False)
    assert await store.close_breach(KEY, "error_rate")
    assert not await store.close_breach(KEY, "error_rate")


async def test_a_reference_keeps_the_histogram_of_its_window(store: AnyStore) -> None:
    """set_model_reference copies the window's histogram; replace=False keeps the first."""
    await _create(store, _made(status=Status.APPROVED, model_output={"score": 0.9}))
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=2), now + timedelta(hours=1)
    ref = await store.set_model_reference(KEY, since, until, "user:ada")
    assert ref.histogram == {"score": {output_bin(0.9): 1}} and ref.set_by == "user:ada"
    kept = await store.set_model_reference(KEY, since, since, "system", replace=False)
    assert kept == ref
    assert await store.model_first_output(KEY) == bucket(format_ts(now))
