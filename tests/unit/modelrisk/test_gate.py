"""The model inventory at decision time: the rule (`model_check`), the explanation test, the
follower (`ModelGate`) on real stores, and the registration of the built-in demo models."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.errors import StoreUnavailable
from gateway.modelrisk.gate import (
    BUILTIN_ACTOR,
    ModelGate,
    has_explanation,
    model_check,
    model_key,
    register_builtin_models,
    validation_of,
)
from gateway.modelrisk.record import ModelKey, ModelStatus
from gateway.policy import PolicySet, load_policies
from gateway.store import SQLiteStore
from gateway.types import Validation
from tests.modelrisk_helpers import model_record, register_model, set_status
from tests.unit.store.conftest import AnyStore, db_path, location, pg_dsn, pg_server, store

__all__ = ["db_path", "location", "pg_dsn", "pg_server", "store"]

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "policies")


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


def _check(policies: PolicySet, status: ModelStatus, tier: str = "limited", **kw: object) -> str:
    backend = policies.backends["credit-scorer"]
    record = model_record(model_key(backend), status, now=NOW - timedelta(days=1))
    record = replace(record, **kw)  # type: ignore[arg-type]
    ranks = {t.name: t.rank for t in policies.tiers}
    return model_check(record, backend, policies.tier(tier), NOW, ranks) or ""


def test_an_approved_valid_version_within_its_ceiling_may_decide(policies: PolicySet) -> None:
    """Approved, valid and at or below its ceiling: no reason, on its ceiling tier and below."""
    assert _check(policies, ModelStatus.APPROVED, "high") == ""
    assert _check(policies, ModelStatus.APPROVED, "minimal") == ""


def test_a_version_missing_from_the_inventory_may_not(policies: PolicySet) -> None:
    """No record: the reason says the version is not in the inventory, naming it."""
    backend = policies.backends["credit-scorer"]
    why = model_check(None, backend, policies.tier("minimal"), NOW, {"minimal": 3})
    assert why == "model credit-scorer/credit_v3@3 is not in the model inventory"


@pytest.mark.parametrize(
    "status",
    [ModelStatus.REGISTERED, ModelStatus.VALIDATED, ModelStatus.SUSPENDED, ModelStatus.RETIRED],
)
def test_every_status_but_approved_bars_automatic_decisions(
    policies: PolicySet, status: ModelStatus
) -> None:
    """Registered, validated, suspended and retired versions may not decide automatically."""
    assert f"is {status.value} in the model inventory, not approved" in _check(policies, status)


def test_an_expired_validation_bars_it(policies: PolicySet) -> None:
    """A validation that expired at or before the decision's time bars it."""
    why = _check(policies, ModelStatus.APPROVED, validation_expires_at=NOW)
    assert "validation expired at 2026-06-01T12:00:00+00:00" in why
    assert _check(policies, ModelStatus.APPROVED, validation_expires_at=NOW + timedelta(0, 1)) == ""


def test_a_tier_above_the_ceiling_bars_it(policies: PolicySet) -> None:
    """A version whose ceiling is ``limited`` may serve limited and minimal, not high."""
    why = _check(policies, ModelStatus.APPROVED, "high", max_tier="limited")
    assert "may serve tiers up to 'limited'" in why and "'high'" in why
    assert _check(policies, ModelStatus.APPROVED, "limited", max_tier="limited") == ""
    assert _check(policies, ModelStatus.APPROVED, "minimal", max_tier="limited") == ""


def test_an_unknown_ceiling_bars_it(policies: PolicySet) -> None:
    """A ceiling that names no tier of the policies fails closed."""
    assert "is not a tier of the policies" in _check(policies, ModelStatus.APPROVED, max_tier="x")


def test_an_escalation_by_monitoring_bars_it(policies: PolicySet) -> None:
    """An escalated version is barred, with monitoring's reason."""
    why = _check(
        policies, ModelStatus.APPROVED, escalated=True, escalation_reason="override rate 40%"
    )
    assert why.endswith("escalated by monitoring: override rate 40%")


def test_the_decision_records_the_inventory_status() -> None:
    """A decision's model validation is the record's status, or ``unregistered`` without one."""
    key = ModelKey("b", "m", "1")
    assert validation_of(None) is Validation.UNREGISTERED
    assert validation_of(model_record(key, ModelStatus.SUSPENDED)) is Validation.SUSPENDED
    assert Validation("pending") is Validation.PENDING  # decisions from before the inventory


@pytest.mark.parametrize(
    ("output", "explained"),
    [
        ({"score": 0.9, "explanation": {"income": 0.4, "debt_ratio": -0.1}}, True),
        ({"score": 0.9, "explanation": ["R01 low debt", "R07 long tenure"]}, True),
        ({"score": 0.9}, False),
        ({"score": 0.9, "explanation": {}}, False),
        ({"score": 0.9, "explanation": []}, False),
        ({"score": 0.9, "explanation": "good customer"}, False),
        ({"score": 0.9, "explanation": {"income": "high"}}, False),
        ({"score": 0.9, "explanation": [""]}, False),
    ],
)
def test_an_explanation_is_contributions_or_reason_codes(
    output: dict[str, object], explained: bool
) -> None:
    """Only a non-empty object of numeric contributions or list of reason codes explains."""
    assert has_explanation(output) is explained  # type: ignore[arg-type]


async def test_a_status_change_reaches_the_follower_within_a_second(store: AnyStore) -> None:
    """A suspension written by another writer reaches `current()` within a second (the
    PostgreSQL announcement or the half-second re-read), and so does the approval back."""
    key = ModelKey("credit-scorer", "credit_v3", "3")
    await register_model(store, model_record(key))
    gate = ModelGate(store)
    await gate.start()
    try:
        assert (await gate.current())[key].status is ModelStatus.APPROVED
        loop = asyncio.get_running_loop()
        for status in (ModelStatus.SUSPENDED, ModelStatus.APPROVED):
            await set_status(store, key, status)
            deadline = loop.time() + 1.0
            while (await gate.current())[key].status is not status:
                assert loop.time() < deadline, f"{status} not followed within 1 s"
                await asyncio.sleep(0.02)
    finally:
        await gate.stop()
    await gate.stop()  # idempotent


async def test_an_unconfirmed_inventory_is_trusted_for_a_second_then_refuses(
    sqlite: SQLiteStore, tmp_path: Path
) -> None:
    """When the inventory cannot be read, the last state holds for trust_for seconds; then
    every decision is refused as UNAVAILABLE and readiness says so; a read that works again
    confirms it."""
    key = ModelKey("b", "m", "1")
    await register_model(sqlite, model_record(key))
    clock = Clock()
    gate = ModelGate(sqlite, monotonic=clock)
    await gate.load()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("ALTER TABLE models RENAME TO models_away")
    clock.now += 0.9
    with pytest.raises(Exception, match="models"):
        await gate.refresh()
    assert key in await gate.current()
    clock.now += 0.2
    with pytest.raises(StoreUnavailable) as err:
        await gate.current()
    assert "model inventory not confirmed" in err.value.message
    assert not gate.confirmed()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("ALTER TABLE models_away RENAME TO models")
    await gate.refresh()
    assert gate.confirmed() and key in await gate.current()


def test_refreshing_must_be_quicker_than_the_trust(tmp_path: Path) -> None:
    """A re-read interval that could let the inventory go stale between reads is refused."""
    with pytest.raises(ValueError, match="refresh_every"):
        ModelGate(SQLiteStore(tmp_path / "x.db"), refresh_every=1.0, trust_for=1.0)


async def test_builtin_models_are_registered_approved_and_audited_once(
    store: AnyStore, tmp_path: Path
) -> None:
    """Every builtin backend's version is registered approved, by ``system:builtin``, with the
    gateway as owner and validator; OIP backends are not; a second start adds nothing and a
    suspended builtin version stays suspended."""
    policy_dir = tmp_path / "p"
    policy_dir.mkdir()
    (policy_dir / "all.yaml").write_text(
        (ROOT / "policies" / "tiers.yaml").read_text()
        + """
backends:
  - {name: scorer, kind: builtin, model: credit_v3, version: "3"}
  - {name: bank, kind: oip, target: "127.0.0.1:1", model: risk, version: "9"}
applications:
  - id: a
    tier: limited
    backend: scorer
  - id: b
    tier: limited
    backend: bank
    oip:
      model_name: risk
      inputs: [{name: x, datatype: FP64, field: x}]
      outputs: [{name: y, datatype: FP64, field: score}]
"""
    )
    policies = load_policies(policy_dir)
    added = await register_builtin_models(store, policies)
    assert added == [ModelKey("scorer", "credit_v3", "3")]
    [record] = await store.list_models()
    assert record.status is ModelStatus.APPROVED
    assert record.max_tier == "prohibited"
    assert record.owner == record.validator and "hitl-gateway" in record.owner
    assert record.updated_by == BUILTIN_ACTOR
    [event] = await store.model_events(record.key)
    assert (event.type, event.actor) == ("model.registered", BUILTIN_ACTOR)
    await set_status(store, record.key, ModelStatus.SUSPENDED)
    assert await register_builtin_models(store, policies) == []
    [again] = await store.list_models()
    assert again.status is ModelStatus.SUSPENDED
