"""The early warning on a real store: drift against a stored or lazily taken reference, an
alert that records one breach, and a breach that closes when the rate falls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit.events import EventType
from gateway.modelrisk.early_warning import EarlyWarning
from gateway.modelrisk.record import ModelKey
from gateway.policy import PolicySet, load_policies
from gateway.store import SQLiteStore
from gateway.types import Decision, ModelRef, Status
from tests.unit.store.store_factories import created_event, make_decision

KEY = ModelKey("scorer", "credit_v3", "3")
POLICY = """\
tiers:
  - {name: minimal}
backends:
  - name: scorer
    kind: builtin
    model: credit_v3
    version: "3"
    monitor:
      psi: {above: 0.25, min_reviews: 20, window: 1d, action: alert}
      error_rate: {above: 0.1, min_reviews: 20, window: 1d, action: alert}
applications:
  - {id: credit, tier: minimal, backend: scorer, route: [{when: "true", action: approve}]}
"""


@pytest.fixture
def policies(tmp_path: Path) -> PolicySet:
    (tmp_path / "p.yaml").write_text(POLICY)
    return load_policies(tmp_path)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    await s.start()
    yield s
    await s.stop()


async def _decide(store: SQLiteStore, scores: list[float], **changes: object) -> None:
    for score in scores:
        d: Decision = make_decision(
            **{
                "model": ModelRef("scorer", "credit_v3", "3"),
                "status": Status.APPROVED,
                "model_output": {"score": score},
                "rule": "route[0]",
                **changes,
            }
        )
        await store.create_decision(d, [created_event(d)], [])


async def _breaches(store: SQLiteStore) -> list[dict[str, object]]:
    events = await store.audit_events(limit=10_000)
    return [e.payload or {} for e in events if e.type == EventType.MODEL_BREACH]


async def test_a_shifted_output_breaches_its_psi_threshold_once(
    store: SQLiteStore, policies: PolicySet
) -> None:
    """Scores moved from around 0.9 to around 0.3 breach psi > 0.25 against the stored
    reference: one alert with the PSI and the field, and later runs add nothing."""
    start = datetime.now(UTC) - timedelta(minutes=5)
    await _decide(store, [0.9, 0.91, 0.92, 0.93] * 10)
    await store.set_model_reference(KEY, start, datetime.now(UTC), "user:ada")
    warning = EarlyWarning(store, lambda: policies)
    assert [f.rule.metric for f in await warning.run()] == []  # the window is the reference
    await _decide(store, [0.3, 0.31, 0.32] * 30)
    [finding] = await warning.run()
    assert finding.rule.metric == "psi" and finding.field == "score" and finding.value > 0.25
    assert await warning.run() == []
    [payload] = await _breaches(store)
    assert payload["metric"] == "psi" and payload["field"] == "score"
    assert payload["psi"] == pytest.approx(finding.value, abs=1e-6)
    assert (payload["threshold"], payload["trials"], payload["action"]) == (0.25, 130, "alert")


async def test_without_a_reference_the_first_days_become_it(
    store: SQLiteStore, policies: PolicySet
) -> None:
    """No reference is stored while the first 7 days run; after them, those days are kept."""
    await _decide(store, [0.5] * 25)
    now = datetime.now(UTC)
    assert (
        await EarlyWarning(store, lambda: policies, clock=lambda: now).reference(KEY, now) is None
    )
    later = now + timedelta(days=8)
    ref = await EarlyWarning(store, lambda: policies).reference(KEY, later)
    assert ref is not None and ref.set_by == "system" and sum(ref.histogram["score"].values()) == 25
    assert await store.get_model_reference(KEY) == ref


async def test_a_breach_closes_when_the_rate_falls_back_and_a_new_one_is_recorded(
    store: SQLiteStore, policies: PolicySet
) -> None:
    """Errors above 10% breach; enough clean decisions close it; errors again breach anew."""
    warning = EarlyWarning(store, lambda: policies)
    failed = {"rule": "on_model_error", "model_output": None, "reasons": ("model error: x",)}
    await _decide(store, [0.0] * 20, **failed)
    assert [f.rule.metric for f in await warning.run()] == ["error_rate"]
    await _decide(store, [0.5] * 400)
    assert await warning.run() == []
    [state] = [s for s in await store.model_breach_states() if s.metric == "error_rate"]
    assert not state.open
    await _decide(store, [0.0] * 200, **failed)
    assert [f.rule.metric for f in await warning.run()] == ["error_rate"]
    assert [p["metric"] for p in await _breaches(store)] == ["error_rate", "error_rate"]
    payload = (await _breaches(store))[-1]
    assert (payload["events"], payload["trials"]) == (220, 620)
