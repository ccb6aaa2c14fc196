"""Early warning on two replicas of one PostgreSQL database: a model version whose reviewers
override and whose QA reviewers disagree is escalated once, by one replica, with the figures in
the trail; clearing it is audited; too few reviews never escalate."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.client import AsyncGatewayClient
from gateway.core.reviews import Reviewer
from gateway.errors import FailedPrecondition
from gateway.modelrisk.record import ModelKey
from gateway.telemetry import metrics
from gateway.testing import create_api_key
from gateway.types import AuditEvent, Status, Verdict
from tests.integration.replicas import replicas
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

MONITORED = """
backends:
  - name: watched
    kind: builtin
    model: echo
    version: "1"
  - name: watched-few
    kind: builtin
    model: echo
    version: "1"
    monitor:
      override_rate: {above: 0.15, min_reviews: 50, window: 7d, action: escalate}
applications:
  - id: t-watched
    tier: limited
    backend: watched
    route:
      - {when: "output.score >= 0.8", action: approve}
    sample_for_review: 1.0
    monitor:
      override_rate: {above: 0.15, min_reviews: 50, window: 7d, action: escalate}
      qa_disagreement_rate: {above: 0.15, min_reviews: 20, window: 7d, action: escalate}
      error_rate: {above: 0.05, min_reviews: 20, window: 1d, action: alert}
  - id: t-watched-few
    tier: limited
    backend: watched-few
    route:
      - {when: "output.score >= 0.8", action: approve}
"""
WATCHED = ModelKey("watched", "echo", "1")
FEW = ModelKey("watched-few", "echo", "1")


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The test policies plus two monitored model versions."""
    (policies_dir / "t-monitored.yaml").write_text(MONITORED)
    return policies_dir


async def _by_hand(*gateways: Gateway) -> None:
    """Stop the replicas' own timers: the test runs the evaluator itself, at known moments."""
    for gw in gateways:
        assert gw.early_warning is not None
        await gw.early_warning.stop()


async def _decide(gw: Gateway, key: str, app: str, score: float, n: int) -> list[str]:
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        return [(await client.decide(app, {"score": score})).id for _ in range(n)]


async def _review(gw: Gateway, ids: list[str], overridden: int) -> None:
    """Final verdicts on held decisions: the first ``overridden`` overridden, the rest approved."""
    for i, decision_id in enumerate(ids):
        who = Reviewer(f"r{i % 7}", "reviewer")
        if i < overridden:
            await gw.reviews.submit(
                decision_id, who, Verdict.OVERRIDE, "score too high", {"score": 0.1}
            )
        else:
            await gw.reviews.submit(decision_id, who, Verdict.APPROVE, "fine")


async def _qa(gw: Gateway, ids: list[str], disagree: int) -> None:
    for i, decision_id in enumerate(ids):
        agree = i >= disagree
        payload = {"reviewer": "qa", "role": "senior", "agree": agree, "reason": ""}
        event = audit_event(EventType.DECISION_QA_REVIEWED, decision_id, "user:qa", payload)
        await gw.store.record_qa(
            decision_id,
            reviewer="qa",
            role="senior",
            agree=agree,
            reason="" if agree else "wrong",
            at=datetime.now(UTC),
            event=event,
        )


async def _model_events(gw: Gateway, after: int = 0) -> list[AuditEvent]:
    events = await gw.store.audit_events(after_seq=after, limit=100_000)
    return [e for e in events if e.type.startswith("model.") and e.type != "model.registered"]


async def test_a_model_reviewers_override_is_escalated_once_on_two_replicas(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """30% overrides and 30% QA disagreement: below min_reviews nothing happens; once the
    Wilson bound clears the threshold both replicas evaluate at once and exactly one breach
    per rate and one escalation are recorded, with the figures; then every decision on the
    version is held on both replicas, and clearing it is audited."""
    a, b = replicas
    await _by_hand(a, b)
    key = await create_api_key(a)
    held_a = await _decide(a, key, "t-watched", 0.5, 10)
    held_b = await _decide(b, key, "t-watched", 0.5, 10)
    await _review(a, held_a + held_b, overridden=6)  # 30% of 20: too few reviews
    assert await asyncio.gather(a.early_warning.run(), b.early_warning.run()) == [[], []]
    assert not (await a.store.get_model(WATCHED)).escalated

    held = await _decide(a, key, "t-watched", 0.5, 20) + await _decide(b, key, "t-watched", 0.5, 20)
    await _review(b, held, overridden=12)  # now 18 of 60 overridden
    sampled = await _decide(b, key, "t-watched", 0.9, 30)  # auto-approved, each sampled for QA
    await _qa(a, sampled, disagree=9)  # 30% disagreement
    before = a.store.chain_head()[0]

    acted_a, acted_b = await asyncio.gather(a.early_warning.run(), b.early_warning.run())
    assert sorted(f.rule.metric for f in acted_a + acted_b) == [
        "override_rate",
        "qa_disagreement_rate",
    ]
    for gw in (a, b):
        record = await gw.store.get_model(WATCHED)
        assert record is not None and record.escalated
        assert "override_rate" in record.escalation_reason or "qa_" in record.escalation_reason
    events = await _model_events(a, before)
    breaches = [e for e in events if e.type == EventType.MODEL_BREACH]
    assert sorted(e.payload["metric"] for e in breaches) == [  # type: ignore[index]
        "override_rate",
        "qa_disagreement_rate",
    ]
    assert [e.type for e in events].count(EventType.MODEL_ESCALATED) == 1
    override = next(e.payload for e in breaches if e.payload["metric"] == "override_rate")  # type: ignore[index]
    assert override is not None
    assert (override["events"], override["trials"]) == (18, 60)
    assert override["rate"] == pytest.approx(0.3)
    assert 0.15 < override["lower_bound"] < 0.3 < override["upper_bound"]
    assert (override["threshold"], override["min_reviews"]) == (0.15, 50)
    assert override["window_seconds"] == 7 * 86400 and override["action"] == "escalate"
    assert all(e.actor == "system" and e.trace_id == "" for e in events)
    exported = metrics.render().decode()
    labels = 'backend="watched",model="echo",rate="override_rate",version="1"'
    assert f"hitl_model_rate{{{labels}}} 0.3" in exported
    assert f'hitl_model_breaches_total{{action="escalate",{labels}}} 1.0' in exported
    assert 'hitl_model_escalated{backend="watched",model="echo",version="1"} 1.0' in exported
    # A later run on either replica finds the breaches open: nothing more is recorded.
    assert await asyncio.gather(a.early_warning.run(), b.early_warning.run()) == [[], []]
    assert len(await _model_events(a, before)) == len(events)

    # Every decision on the escalated version is held, on both replicas (within a second).
    for gw in (a, b):
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            [decision_id] = await _decide(gw, key, "t-watched", 0.95, 1)
            decision = await gw.store.get_decision(decision_id)
            assert decision is not None
            if decision.status is Status.PENDING_REVIEW:
                break
            assert asyncio.get_running_loop().time() < deadline, "not held after 5 s"
            await asyncio.sleep(0.2)

    with pytest.raises(FailedPrecondition):
        await b.escalations.clear(FEW, actor="user:ada", reason="not escalated")
    cleared = await b.escalations.clear(WATCHED, actor="user:ada", reason="INC-7: reviewed")
    assert not cleared.escalated
    [event] = [e for e in await _model_events(a, before) if e.type == EventType.MODEL_CLEARED]
    assert event.actor == "user:ada" and event.payload is not None
    assert event.payload["reason"] == "INC-7: reviewed"
    assert (
        "override_rate" in event.payload["escalation_reason"] or event.payload["escalation_reason"]
    )
    # The evidence already judged does not escalate it again at once.
    assert await a.early_warning.run() == []
    assert not (await a.store.get_model(WATCHED)).escalated
    assert (await a.audit.verify()).result.ok


async def test_a_model_with_too_few_reviews_is_not_escalated(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """Every held output overridden, but only 10 reviews against min_reviews 50: no breach."""
    a, b = replicas
    await _by_hand(a, b)
    key = await create_api_key(a)
    held = await _decide(a, key, "t-watched-few", 0.5, 10)
    await _review(b, held, overridden=10)
    counts = await a.store.model_counts(FEW, "2000-01-01T00:00:00.000000Z")
    assert (counts["reviewed"], counts["review_overridden"]) == (10, 10)
    assert await asyncio.gather(a.early_warning.run(), b.early_warning.run()) == [[], []]
    record = await a.store.get_model(FEW)
    assert record is not None and not record.escalated
    assert not [e for e in await _model_events(a) if e.type == EventType.MODEL_BREACH]


async def test_the_cli_clears_an_escalation_with_a_reason(gateway: Gateway) -> None:
    """`models clear KEY --reason` on the store clears it as cli:<user>, audited; clearing a
    version that is not escalated fails with exit code 2 and records nothing."""
    figures = {"backend": FEW.backend, "name": FEW.name, "version": FEW.version}
    breach = audit_event(EventType.MODEL_BREACH, "", "system", figures)
    escalated = audit_event(EventType.MODEL_ESCALATED, "", "system", figures)
    assert await gateway.store.record_breach(FEW, "reject_rate", breach, ("x", escalated)) == (
        True,
        True,
    )
    s = gateway.settings
    where = ["--data-dir", str(s.data_dir), "--policies", str(s.policies)]
    if s.store:
        where += ["--store", s.store]
    done = await asyncio.to_thread(
        cli, "models", "clear", str(FEW), "--reason", "INC-12: data fixed", *where
    )
    assert done.returncode == 0, done.stderr
    record = await gateway.store.get_model(FEW)
    assert record is not None and not record.escalated
    [event] = [e for e in await _model_events(gateway) if e.type == EventType.MODEL_CLEARED]
    assert event.actor.startswith("cli:") and event.payload is not None
    assert event.payload["reason"] == "INC-12: data fixed" and len(event.trace_id) == 32
    again = await asyncio.to_thread(cli, "models", "clear", str(FEW), "--reason", "x", *where)
    assert again.returncode == 2 and "not escalated" in again.stderr
    blank = await asyncio.to_thread(cli, "models", "clear", str(FEW), "--reason", " ", *where)
    assert blank.returncode == 2 and "--reason" in blank.stderr
    assert len([e for e in await _model_events(gateway) if e.type == "model.cleared"]) == 1
