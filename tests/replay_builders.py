"""Stored decisions for policy replay tests, as the gateway records them, and what a candidate
policy would change about them, computed by evaluating its rules directly."""

from __future__ import annotations

import random
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from gateway.core.vault import Vault
from gateway.modelrisk.gate import has_explanation
from gateway.policy import ApplicationPolicy, PolicyEvalError, PolicySet, load_policies
from gateway.store import is_postgres_url, open_store
from gateway.store.codec import DECISION_COLUMNS, decision_row
from gateway.store.decision_range import DecisionRow
from gateway.store.sql import INSERT_DECISION, numbered
from gateway.types import Decision, ModelRef, Status, Validation

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
APP = "credit-limit"
WATCHED = "Mallory Watch"
"""A customer name the candidate escalates on: sealed at rest, so replay must open it."""
MODEL = ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED)


def policy_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """(baseline, candidate): the repository's policies, and a copy whose credit-limit
    auto-approve line is lowered from 0.8 to 0.7 and which escalates `WATCHED` to high."""
    base = tmp_path / "baseline"
    cand = tmp_path / "candidate"
    for d in (base, cand):
        d.mkdir()
        for f in (ROOT / "policies").glob("*.yaml"):
            shutil.copy(f, d / f.name)
    text = (cand / "applications.yaml").read_text()
    lowered = text.replace("output.score >= 0.8", "output.score >= 0.7", 1)
    watched = lowered.replace(
        "    escalate:\n",
        f"    escalate:\n      - when: \"input.customer.name == '{WATCHED}'\"\n"
        "        tier: high\n        reason: watch list\n",
        1,
    )
    assert watched.count("0.7") >= 1 and WATCHED in watched
    (cand / "applications.yaml").write_text(watched)
    return base, cand


@dataclass(frozen=True)
class Made:
    """A decision as stored, with its input in clear and whether replay can compare it."""

    decision: Decision
    clear: dict[str, Any]
    comparable: bool
    erased: bool = False


def direct(
    app: ApplicationPolicy, clear: dict[str, Any], output: dict[str, Any]
) -> tuple[str, str, str]:
    """(action, tier, rule) by calling the policy's classify and route as the pipeline does."""
    try:
        tier = app.classify(clear, {}, MODEL).tier
    except PolicyEvalError:
        raise AssertionError("test inputs always evaluate") from None
    if tier.reject:
        return "reject", tier.name, f"tier:{tier.name}"
    route = app.route(clear, output, tier, {}, MODEL)
    if tier.require_explanation and not has_explanation(output):
        return "review", tier.name, "require_explanation"
    return route.action.value, tier.name, route.rule


def make_decisions(policies: PolicySet, vault: Vault, n: int) -> list[Made]:
    """``n`` credit-limit decisions decided by ``policies``, some held and then decided by
    people, some paused or failed (not comparable), some erased; sensitive fields sealed."""
    rng = random.Random(7)
    app = policies.application(APP)
    names = ["Ana", "Ben", "Chloe", "Dev", WATCHED]
    out: list[Made] = []
    for i in range(n):
        did = f"dec-{i:06d}"
        clear = {
            "amount": rng.choice([500, 5000, 20000, 90000, 150000]),
            "past_delinquencies": rng.choice([0, 0, 0, 1, 3]),
            "customer": {"name": rng.choice(names), "national_id": f"N{i}"},
        }
        output: dict[str, Any] | None = {"score": round(rng.random(), 3)}
        if rng.random() < 0.9:
            output = {**output, "explanation": {"income": 0.4, "history": -0.1}}
        action, tier, rule = direct(app, clear, output)
        status = {"approve": Status.APPROVED, "reject": Status.REJECTED}.get(action)
        approvals = 0
        comparable = True
        if action == "review":
            approvals = policies.tier(tier).approvals
            # Held when made; people may have decided since.
            status = rng.choice(
                [Status.PENDING_REVIEW, Status.APPROVED, Status.REJECTED, Status.OVERRIDDEN]
            )
        if i % 97 == 5:
            rule, status, approvals, comparable = "paused", Status.PENDING_REVIEW, 1, False
        elif i % 89 == 3 and tier != "prohibited":
            rule, output, status, approvals = "on_model_error", None, Status.PENDING_REVIEW, 1
            comparable = False
        assert status is not None
        erased = i % 101 == 7
        stored = {} if erased else vault.seal(clear, app.sensitive_fields, did)
        d = Decision(
            id=did,
            application=APP,
            tier=tier,
            status=status,
            input=stored,
            model=MODEL,
            model_output=output,
            final_output=None,
            reasons=(),
            rule=rule,
            # Several decisions share a timestamp: paging must neither skip nor repeat them.
            created_at=T0 + timedelta(milliseconds=i // 3),
            updated_at=T0 + timedelta(milliseconds=i // 3),
            trace_id="0af7651916cd43dd8448eb211c80319c",
            policy_version=policies.version,
            subject_ref=f"cust-{i}" if erased or i % 2 else "",
            approvals_needed=approvals,
        )
        out.append(Made(d, clear, comparable and not erased, erased))
    return out


def expected_changes(made: list[Made], candidate: PolicySet) -> dict[str, tuple[str, str]]:
    """Decision id -> (old action, new action) of every comparable decision whose action,
    tier or deciding rule differs under ``candidate`` (evaluated directly on clear inputs)."""
    app = candidate.application(APP)
    changes = {}
    for m in made:
        if not m.comparable:
            continue
        assert m.decision.model_output is not None
        old = "review" if m.decision.approvals_needed else _final(m.decision.status)
        if m.decision.rule.startswith("tier:"):
            old = "reject"
        new = direct(app, m.clear, m.decision.model_output)
        if (old, m.decision.tier, m.decision.rule) != new:
            changes[m.decision.id] = (old, new[0])
    return changes


def _final(status: Status) -> str:
    return {Status.APPROVED: "approve", Status.REJECTED: "reject"}[status]


async def store_decisions(location: str, made: list[Made]) -> None:
    """Create the store's schema at ``location`` and insert the decisions in bulk."""
    store = open_store(location)
    await store.start()
    await store.stop()
    rows = [decision_row(m.decision) for m in made]
    for m, row in zip(made, rows, strict=True):
        if m.erased:
            assert row[4] == "{}"  # what erasure leaves: see gateway.store.erasure
    if is_postgres_url(location):
        conn = await asyncpg.connect(location)
        try:
            await conn.executemany(numbered(INSERT_DECISION), rows)
        finally:
            await conn.close()
        return
    with sqlite3.connect(location) as conn:
        conn.executemany(INSERT_DECISION, rows)


def load(directory: Path) -> PolicySet:
    return load_policies(directory)


def row_of(d: Decision) -> DecisionRow:
    """``d`` as `gateway.store.decision_range` reads it back."""
    cols = dict(zip(DECISION_COLUMNS, decision_row(d), strict=True))
    return DecisionRow(**{n: cols[n] for n in DecisionRow.__dataclass_fields__ if n in cols})
