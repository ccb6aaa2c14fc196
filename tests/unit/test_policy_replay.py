"""Policy replay: stored decisions re-routed under a candidate policy, on both stores."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.core.vault import SEALED, Vault
from gateway.policy import PolicySet
from gateway.policy.cel import compile_condition
from gateway.policy_replay import (
    ReplayOutcome,
    ReplayReport,
    is_erased,
    old_action,
    prepare,
    readable_fields,
    replay,
)
from gateway.store import decision_range
from gateway.store.decision_range import read_decisions
from tests.pgserver import pg_dsn, pg_server
from tests.replay_builders import (
    APP,
    T0,
    WATCHED,
    Made,
    expected_changes,
    load,
    make_decisions,
    policy_dirs,
    row_of,
    store_decisions,
)

__all__ = ["pg_dsn", "pg_server"]

N = 10_000


@pytest.fixture
def vault() -> Vault:
    return Vault([base64.b64decode(base64.b64encode(bytes(range(32))))])


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "gateway.db")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


async def test_replay_reports_exactly_the_directly_evaluated_changes(
    location: str, tmp_path: Path, vault: Vault
) -> None:
    """Over 10,000 stored decisions, the replay changes exactly the decisions a direct
    evaluation of the candidate's rules says would change, and skips the erased ones."""
    base_dir, cand_dir = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), vault, N)
    await store_decisions(location, made)
    candidate = load(cand_dir)
    expected = expected_changes(made, candidate)
    assert len(expected) > 100

    seen, changed, report = await asyncio.to_thread(_replay_all, location, candidate, vault)

    assert sorted(seen) == sorted(m.decision.id for m in made)  # no page skipped or repeated
    assert changed == expected
    app = report.apps[APP]
    assert app.erased == sum(m.erased for m in made)
    assert app.changed == len(expected)
    moved = Counter(v for v in expected.values() if v[0] != v[1])
    assert {k: n for k, n in app.actions.items() if k[0] != k[1]} == moved
    assert app.not_comparable == Counter(
        {
            "paused": sum(m.decision.rule == "paused" and not m.erased for m in made),
            "model error": sum(m.decision.rule == "on_model_error" and not m.erased for m in made),
        }
    )
    assert all(len(ids) <= 5 for ids in app.examples.values())


def _replay_all(
    location: str, candidate: PolicySet, vault: Vault
) -> tuple[list[str], dict[str, tuple[str | None, str | None]], ReplayReport]:
    """Every decision read, the changed ones (old, new action), and the report; run off the
    event loop, as the CLI runs it."""
    report = ReplayReport()
    changed: dict[str, tuple[str | None, str | None]] = {}
    seen: list[str] = []
    for row in read_decisions(location, T0, T0 + timedelta(days=1)):
        seen.append(row.id)
        if is_erased(row):
            report.add_erased(row.application)
            continue
        out = replay(prepare(row, vault), candidate)
        report.add(out)
        if out.changed:
            changed[out.decision_id] = (out.old_action, out.new_action)
    return seen, changed, report


async def test_a_rule_on_a_sealed_field_sees_the_clear_value(tmp_path: Path, vault: Vault) -> None:
    """A candidate rule on a sensitive field escalates the watched customer, whose name is
    stored sealed; the same row without the key is not comparable rather than misrouted."""
    base_dir, cand_dir = policy_dirs(tmp_path)
    made = [m for m in make_decisions(load(base_dir), vault, 300) if m.comparable]
    watched = next(
        m for m in made if m.clear["customer"]["name"] == WATCHED and m.decision.tier == "limited"
    )
    location = str(tmp_path / "gateway.db")
    await store_decisions(location, [watched])
    (row,) = read_decisions(location, T0, T0 + timedelta(days=1))
    assert WATCHED not in row.input

    out = replay(prepare(row, vault), load(cand_dir))
    assert (out.new_tier, out.new_rule) == ("high", "route[2]")
    blind = replay(prepare(row, None), load(cand_dir))
    assert blind.new_action is None and blind.reason == "sealed input and no data key"


def test_the_action_then_is_where_the_policy_routed_not_where_people_took_it(
    tmp_path: Path, vault: Vault
) -> None:
    """A decision held and later approved by a person was a review; one approved at once an
    approval; a paused or failed one has no routing outcome."""
    base_dir, _ = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), vault, 400)

    def then(m: Made) -> tuple[str | None, str]:
        return old_action(prepare(row_of(m.decision), vault))

    held_approved = next(
        m for m in made if m.decision.approvals_needed and m.decision.status.value == "APPROVED"
    )
    assert then(held_approved) == ("review", "")
    auto = next(m for m in made if not m.decision.approvals_needed and m.comparable)
    assert then(auto)[0] in ("approve", "reject")
    paused = next(m for m in made if m.decision.rule == "paused")
    assert then(paused) == (None, "paused")
    failed = next(m for m in made if m.decision.rule == "on_model_error")
    assert then(failed) == (None, "model error")


async def test_pages_break_inside_a_run_of_equal_timestamps(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a page smaller than a run of decisions sharing a timestamp, every decision in the
    range is read once, and the range's end is exclusive."""
    monkeypatch.setattr(decision_range, "PAGE", 2)
    base_dir, _ = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), vault, 30)
    location = str(tmp_path / "gateway.db")
    await store_decisions(location, made)
    until = T0 + timedelta(milliseconds=9)  # decisions 0..26 (three per millisecond)
    ids = [r.id for r in read_decisions(location, T0, until)]
    assert ids == [f"dec-{i:06d}" for i in range(27)]


def test_examples_are_capped_and_unchanged_decisions_do_not_count() -> None:
    """The report keeps five example ids per kind of change and counts unchanged pairs in the
    action matrix only."""
    report = ReplayReport()
    for i in range(8):
        report.add(ReplayOutcome(f"d{i}", "a", "review", "approve", "t", "t", "r1", "r0"))
    report.add(ReplayOutcome("same", "a", "review", "review", "t", "t", "r1", "r1"))
    app = report.apps["a"]
    assert app.changed == 8 and report.changed
    assert app.examples["action review->approve"] == ["d0", "d1", "d2", "d3", "d4"]
    assert app.actions[("review", "review")] == 1
    assert app.new_rules == Counter({"r0": 8})


async def test_a_decision_escalated_by_the_review_sla_compares_in_the_tier_it_was_made_in(
    location: str, tmp_path: Path, vault: Vault
) -> None:
    """A held limited-tier decision that the review SLA later moved to high is unchanged under
    the policy that made it: replay compares with the tier it was made in."""
    from gateway.audit.events import EventType, event
    from gateway.store import open_store
    from gateway.types import ReviewTask, TaskKind

    base_dir, _ = policy_dirs(tmp_path)
    policies = load(base_dir)
    held = next(
        m
        for m in make_decisions(policies, vault, 300)
        if m.comparable
        and m.decision.tier == "limited"
        and m.decision.status.value == "PENDING_REVIEW"
    )
    d = held.decision
    store = open_store(location)
    await store.start()
    try:
        created = event(EventType.DECISION_CREATED, d.id, "app:k", {"status": "PENDING_REVIEW"})
        task = ReviewTask(d.id, TaskKind.DECISION, d.application, d.tier, ("reviewers",), None, T0)
        await store.create_decision(d, [created], [task])
        payload = {"from_tier": "limited", "to_tier": "high", "groups": ["senior"]}
        escalated = event(EventType.DECISION_ESCALATED, d.id, "system", payload)
        await store.escalate_decision(
            d.id,
            tier="high",
            tier_rank=1,
            groups=("senior",),
            approvals_needed=2,
            deadline=None,
            reason="review SLA passed",
            event=escalated,
            now=T0 + timedelta(hours=2),
        )
    finally:
        await store.stop()

    rows = await asyncio.to_thread(list, read_decisions(location, T0, T0 + timedelta(days=1)))
    (row,) = rows
    assert row.tier == "high"
    out = replay(prepare(row, vault), policies)
    assert (out.old_tier, out.new_tier, out.old_action) == ("limited", "limited", "review")
    assert not out.changed


async def test_only_the_sealed_fields_a_candidate_can_read_are_opened(
    tmp_path: Path, vault: Vault
) -> None:
    """The candidate reads ``customer.name`` (its watch rule): that field is opened, the
    national id is left sealed; a candidate reading ``input[...]`` may read anything, so
    everything is opened; the outcome is the same as opening all."""
    base_dir, cand_dir = policy_dirs(tmp_path)
    made = [m for m in make_decisions(load(base_dir), vault, 50) if m.comparable]
    candidate = load(cand_dir)
    readable = readable_fields(candidate.applications[APP])
    assert readable is not None and ("customer", "name") in readable
    assert not any("national_id" in chain for chain in readable)
    for m in made[:20]:
        row = row_of(m.decision)
        partly = prepare(row, vault, readable)
        assert partly.input["customer"]["name"] == m.clear["customer"]["name"]
        assert SEALED in partly.input["customer"]["national_id"]
        assert replay(partly, candidate) == replay(prepare(row, vault), candidate)

    app = candidate.applications[APP]
    indexing = compile_condition("route[0]", "input['customer']['national_id'] != ''")
    wide = replace(app, routes=(replace(app.routes[0], condition=indexing), *app.routes[1:]))
    assert readable_fields(wide) is None
    assert prepare(row_of(made[0].decision), vault, None).input == made[0].clear
