"""Policy replay: what a candidate policy would have decided on decisions already made.

Each stored decision is classified and routed again under the candidate with its stored model
output (no model is called), and compared with what was decided then. Everything here is pure:
`prepare` turns a stored row into a `StoredDecision` (opening sealed fields with the data key),
`replay` gives one `ReplayOutcome`, and `ReplayReport` adds outcomes up. The store read is
`gateway.store.decision_range`; the CLI is `gateway.cli_replay`.

What "then" means: the action the policy took when the decision was made, not where the
decision ended. A decision held for review and later approved by a person was ``review``. Some
decisions had no routing outcome to compare with (the application or its backend was paused,
the model failed, the model inventory barred the version, a rule failed to evaluate): they are
counted apart as not comparable, with the reason. A held decision the review SLA escalated
since is compared in the tier it was made in (its first ``decision.escalated`` event's
``from_tier``). Erased decisions (their input overwritten
with ``{}`` by a subject erasure) are skipped and counted.

Not replayed: the model inventory's gate at replay time (``model_risk``) and QA sampling, which
depend on the state of the world, not on the policy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.core.vault import SEALED, Vault, VaultError
from gateway.modelrisk.gate import has_explanation
from gateway.policy import ApplicationPolicy, PolicyEvalError, PolicySet, TierSpec
from gateway.store.decision_range import DecisionRow
from gateway.store.erasure import ERASED_INPUT
from gateway.types import Action, JSONObject, ModelRef, Status, Validation

EXAMPLES = 5
"""Example decision ids kept for each kind of change."""

# Rules recorded when no route decided; their decisions are not comparable.
_NOT_ROUTED = {
    "paused": "paused",
    "on_model_error": "model error",
    "model_risk": "model barred by the inventory",
    "on_policy_error": "policy rule failed to evaluate",
}
_MADE_FINAL = {Status.APPROVED: Action.APPROVE, Status.REJECTED: Action.REJECT}
_SEALED_MARK = f'"{SEALED}"'

Readable = frozenset[tuple[str, ...]] | None
"""Input field paths conditions read (`readable_fields`); None: any."""
ALL_READABLE: Readable = None


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A stored decision with its input in clear."""

    id: str
    application: str
    tier: str
    status: Status
    rule: str
    input: JSONObject
    model: ModelRef | None
    model_output: JSONObject | None
    labels: dict[str, str]
    approvals_needed: int
    unreadable: str = ""
    """Why the input could not be opened (then ``input`` is empty and the decision is not
    comparable)."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """One decision then and under the candidate. ``old_action`` and ``new_action`` are
    None when the decision is not comparable (``reason`` says why)."""

    decision_id: str
    application: str
    old_action: str | None
    new_action: str | None
    old_tier: str
    new_tier: str
    old_rule: str
    new_rule: str
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.reason == "" and (
            self.old_action != self.new_action
            or self.old_tier != self.new_tier
            or self.old_rule != self.new_rule
        )


def is_erased(row: DecisionRow) -> bool:
    """Whether a subject erasure overwrote this decision's input (see `gateway.store.erasure`):
    erasure only reaches decisions with a subject, and leaves exactly ``{}``."""
    return row.subject_ref != "" and row.input == ERASED_INPUT


def prepare(
    row: DecisionRow, vault: Vault | None, readable: Readable = ALL_READABLE
) -> StoredDecision:
    """The decision of ``row`` with the sealed values of its input opened with ``vault``: those
    the candidate's conditions may read (``readable``, see `readable_fields`), every one by
    default.

    Sealed values are found where they are, not by the candidate's ``sensitive_fields``: the
    policy that sealed them may have named other fields.
    """
    data: JSONObject = orjson.loads(row.input)
    unreadable = ""
    if _SEALED_MARK in row.input:
        if vault is None:
            data, unreadable = {}, "sealed input and no data key"
        else:
            try:
                paths = _sealed_paths(data, "")
                if readable is not None:
                    paths = [p for p in paths if _may_read(readable, tuple(p.split(".")))]
                data = vault.open(data, paths, row.id)
            except VaultError as exc:
                data, unreadable = {}, f"sealed input does not open ({exc})"
    model = None
    if row.model_backend is not None:
        model = ModelRef(
            row.model_backend,
            row.model_name or "",
            row.model_version or "",
            Validation(row.model_validation or Validation.UNREGISTERED.value),
        )
    tier = row.tier
    if row.escalated is not None:
        # Escalated by the review SLA after it was made: compare with the tier it was made in.
        made_in = orjson.loads(row.escalated).get("from_tier") if row.escalated else None
        if isinstance(made_in, str):
            tier = made_in
        else:
            unreadable = unreadable or "escalated by the review SLA; the tier when made is erased"
    return StoredDecision(
        id=row.id,
        application=row.application,
        tier=tier,
        status=Status(row.status),
        rule=row.rule,
        input=data,
        model=model,
        model_output=orjson.loads(row.model_output) if row.model_output is not None else None,
        labels=orjson.loads(row.labels) if row.labels != "{}" else {},
        approvals_needed=row.approvals_needed,
        unreadable=unreadable,
    )


def _sealed_paths(data: Any, prefix: str) -> list[str]:
    out: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict) and len(v) == 1 and isinstance(v.get(SEALED), str):
                out.append(path)
            elif isinstance(v, dict):
                out.extend(_sealed_paths(v, path + "."))
    return out


def old_action(d: StoredDecision) -> tuple[str | None, str]:
    """The action taken when ``d`` was made, or None and why it had no routing outcome."""
    if d.rule in _NOT_ROUTED:
        return None, _NOT_ROUTED[d.rule]
    if d.rule.startswith("tier:"):
        return Action.REJECT.value, ""
    made = _MADE_FINAL.get(d.status)
    if made is not None and d.approvals_needed == 0:
        return made.value, ""
    # Held when made: pending, in review, or decided by people since (approved, rejected,
    # overridden, expired) after a hold, which ``approvals_needed`` records.
    return Action.REVIEW.value, ""


def replay(d: StoredDecision, policies: PolicySet) -> ReplayOutcome:
    """``d`` classified and routed under ``policies`` with its stored model output."""
    before, why = old_action(d)
    app = policies.applications.get(d.application)
    if before is None or app is None or d.unreadable:
        why = why or d.unreadable or "application not in the candidate policy"
        return ReplayOutcome(d.id, d.application, None, None, d.tier, d.tier, d.rule, d.rule, why)
    try:
        tier = app.classify(d.input, d.labels, d.model).tier
    except PolicyEvalError:
        return _new(d, before, _strictest_reviewable(app), _fail_closed(app), "on_policy_error")
    if tier.reject:
        return _new(d, before, tier, Action.REJECT.value, f"tier:{tier.name}")
    output = d.model_output
    if output is None:
        why = "no stored model output (the model was not called then)"
        return ReplayOutcome(d.id, d.application, None, None, d.tier, tier.name, d.rule, "", why)
    try:
        route = app.route(d.input, output, tier, d.labels, d.model or app.backend.ref())
    except PolicyEvalError:
        return _new(d, before, tier, _fail_closed(app), "on_policy_error")
    if tier.require_explanation and not has_explanation(output):
        return _new(d, before, tier, Action.REVIEW.value, "require_explanation")
    return _new(d, before, tier, route.action.value, route.rule)


def _new(d: StoredDecision, before: str, tier: TierSpec, action: str, rule: str) -> ReplayOutcome:
    return ReplayOutcome(d.id, d.application, before, action, d.tier, tier.name, d.rule, rule)


def _fail_closed(app: ApplicationPolicy) -> str:
    return (Action.REJECT if app.on_model_error is Action.REJECT else Action.REVIEW).value


def _strictest_reviewable(app: ApplicationPolicy) -> TierSpec:
    """As `gateway.core.evaluation`: where a request is held when classification fails."""
    candidates = [app.base_tier, *(e.tier for e in app.escalations)]
    reviewable = [t for t in candidates if not t.reject] or [app.base_tier]
    return min(reviewable, key=lambda t: t.rank)


@dataclass
class AppReport:
    """One application's replay, added up."""

    replayed: int = 0
    changed: int = 0
    erased: int = 0
    actions: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(old action, new action) -> decisions, unchanged pairs included."""
    tiers: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(old tier, new tier) -> decisions whose tier changes."""
    new_rules: Counter[str] = field(default_factory=Counter)
    """Rule -> decisions it decides under the candidate where another rule decided before."""
    not_comparable: Counter[str] = field(default_factory=Counter)
    """Reason -> decisions with no routing outcome to compare."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Kind of change (``action approve->review``, ``tier …``, ``rule …``, ``not comparable
    …``) -> up to `EXAMPLES` decision ids."""

    def _example(self, kind: str, decision_id: str) -> None:
        ids = self.examples.setdefault(kind, [])
        if len(ids) < EXAMPLES:
            ids.append(decision_id)


class ReplayReport:
    """Outcomes added up per application, in bounded memory."""

    def __init__(self) -> None:
        self.apps: dict[str, AppReport] = {}

    def _app(self, app: str) -> AppReport:
        rep = self.apps.get(app)
        if rep is None:
            rep = self.apps[app] = AppReport()
        return rep

    def add_erased(self, app: str) -> None:
        self._app(app).erased += 1

    def add(self, out: ReplayOutcome) -> None:
        rep = self._app(out.application)
        if out.old_action is None or out.new_action is None:
            rep.not_comparable[out.reason] += 1
            rep._example(f"not comparable: {out.reason}", out.decision_id)
            return
        rep.replayed += 1
        rep.actions[out.old_action, out.new_action] += 1
        if not out.changed:
            return
        rep.changed += 1
        if out.old_action != out.new_action:
            rep._example(f"action {out.old_action}->{out.new_action}", out.decision_id)
        if out.old_tier != out.new_tier:
            rep.tiers[out.old_tier, out.new_tier] += 1
            rep._example(f"tier {out.old_tier}->{out.new_tier}", out.decision_id)
        if out.old_rule != out.new_rule:
            rep.new_rules[out.new_rule] += 1
            rep._example(f"rule {out.new_rule}", out.decision_id)

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.apps.values())

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON values, applications in name order."""
        return {
            "changed": self.changed,
            "applications": {
                name: {
                    "replayed": r.replayed,
                    "changed": r.changed,
                    "erased_skipped": r.erased,
                    "actions": {f"{a}->{b}": n for (a, b), n in sorted(r.actions.items())},
                    "tiers": {f"{a}->{b}": n for (a, b), n in sorted(r.tiers.items())},
                    "new_rules": dict(sorted(r.new_rules.items())),
                    "not_comparable": dict(sorted(r.not_comparable.items())),
                    "examples": dict(sorted(r.examples.items())),
                }
                for name, r in sorted(self.apps.items())
            },
        }


_BARE_INPUT = re.compile(r"\binput\b(?!\s*\.\s*[A-Za-z_])")
_CHAIN = re.compile(r"\binput((?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)+)")


def readable_fields(app: ApplicationPolicy | None) -> Readable:
    """The field paths an application's conditions read (None: any field).

    Opening a sealed field costs more than the rules that read it, and most rules read none: a
    sealed field is opened only when a condition reads it, a map holding it
    (``input.customer``, then also ``input.customer[...]``) or something inside it. Each
    ``input.a.b...`` chain counts as read whole (a method called on it, ``.size()``, is one
    more name in the chain and changes nothing). Conservative: a condition using ``input``
    other than as ``input.name`` (``input[...]``, ``size(input)``, ``dyn(input)``) may read
    anything.
    """
    if app is None:
        return frozenset()
    sources = [r.condition.source for r in app.escalations]
    sources += [r.condition.source for r in app.routes]
    if any(_BARE_INPUT.search(s) for s in sources):
        return None
    return frozenset(
        tuple(part.strip() for part in chain.split(".")[1:])
        for s in sources
        for chain in _CHAIN.findall(s)
    )


def _may_read(readable: frozenset[tuple[str, ...]], path: tuple[str, ...]) -> bool:
    """A read chain reaches ``path``: one is a prefix of the other."""
    return any(c[: len(path)] == path or path[: len(c)] == c for c in readable)


def replay_rows(
    rows: Iterable[DecisionRow], policies: PolicySet, vault: Vault | None
) -> ReplayReport:
    """The report of ``rows`` replayed under ``policies``; erased decisions are counted apart."""
    report = ReplayReport()
    add = report.add
    readable: dict[str, Readable] = {}
    for row in rows:
        if is_erased(row):
            report.add_erased(row.application)
            continue
        fields = readable.get(row.application, ALL_READABLE)
        if row.application not in readable:
            fields = readable[row.application] = readable_fields(
                policies.applications.get(row.application)
            )
        add(replay(prepare(row, vault, fields), policies))
    return report
