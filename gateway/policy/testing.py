"""Policy test cases: expected outcomes for sample requests, checked without calling any model.

Cases live in ``<policy dir>/tests/*.yaml``::

    cases:
      - name: large amount escalates to high and is held
        application: credit-limit
        input: {amount: 250000, income: 90000}
        output: {score: 0.95}            # the model output to assume
        labels: {}                       # optional
        expect: {tier: high, action: review, rule: route[2]}

``expect`` takes any subset of ``tier``, ``action``, ``rule`` and ``reason`` (exact matches), or
``error``: a text the policy evaluation error must contain (to pin down fail-closed behaviour).
A request in a reject tier (prohibited) has action ``reject`` and rule ``tier:<name>``, and needs no
``output``. Numbers in ``input`` and ``output`` are given to the conditions as doubles, as they
arrive from JSON in production.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import PolicyError
from gateway.policy.errors import PolicyEvalError
from gateway.policy.loader import load_policies, policy_files, validation_error
from gateway.policy.model import PolicySet
from gateway.policy.source import Loc, SourceDoc, parse_yaml
from gateway.types import Action

__all__ = ["CaseResult", "format_results", "run_policy_tests", "uncovered_rules"]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one policy test case."""

    file: str
    """Path relative to the policy directory, e.g. ``tests/credit-limit.yaml``."""
    name: str
    passed: bool
    message: str
    """Why it failed; empty when it passed."""
    line: int = 0
    application: str = ""
    rules: tuple[str, ...] = ()
    """The escalation and route rules this case exercised (for coverage)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Expect(_Model):
    tier: str | None = None
    action: Action | None = None
    rule: str | None = None
    reason: str | None = None
    error: str | None = None

    @model_validator(mode="after")
    def _something_expected(self) -> _Expect:
        if not self.model_fields_set:
            raise ValueError("expect needs at least one of tier, action, rule, reason, error")
        if self.error is not None and len(self.model_fields_set) > 1:
            raise ValueError("expect error stands alone: a failed evaluation has no outcome")
        return self


class _Case(_Model):
    name: str = Field(min_length=1)
    application: str
    input: dict[str, Any]
    output: dict[str, Any] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    expect: _Expect


class _CaseFile(_Model):
    cases: list[_Case] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class _Outcome:
    tier: str
    action: Action
    rule: str
    reason: str
    rules: tuple[str, ...]

    def describe(self) -> str:
        return f"tier={self.tier} action={self.action} rule={self.rule} reason={self.reason!r}"


def run_policy_tests(directory: Path, policies: PolicySet | None = None) -> list[CaseResult]:
    """Run every case in ``directory/tests/*.yaml`` against the policies in ``directory``.

    Raises PolicyError (naming ``tests/file.yaml:LINE``) when the policies or a test file are
    malformed; a case that runs but does not match its expectation is a failed CaseResult.
    """
    if policies is None:
        policies = load_policies(directory)
    tests_dir = directory / "tests"
    if not tests_dir.is_dir():
        return []
    results: list[CaseResult] = []
    for path in policy_files(tests_dir):
        name = f"tests/{path.name}"
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(name, "", f"cannot read: {exc}") from None
        doc = parse_yaml(text, name)
        for index, case in enumerate(_parse(doc).cases):
            results.append(_run(policies, doc, index, case))
    return results


def _parse(doc: SourceDoc) -> _CaseFile:
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping with a list of cases")
    try:
        return _CaseFile.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc.errors(), lambda loc: (doc, loc)) from None


def _run(policies: PolicySet, doc: SourceDoc, index: int, case: _Case) -> CaseResult:
    at: Loc = ("cases", index)

    def result(passed: bool, message: str, rules: tuple[str, ...] = ()) -> CaseResult:
        return CaseResult(
            doc.name, case.name, passed, message, doc.line(at), case.application, rules
        )

    app = policies.applications.get(case.application)
    if app is None:
        return result(False, f"unknown application {case.application!r}")
    expect = case.expect
    try:
        outcome = _evaluate(policies, case)
    except PolicyEvalError as exc:
        if expect.error is not None and expect.error in str(exc):
            return result(True, "", (exc.rule,))
        return result(False, f"policy evaluation failed: {exc}", (exc.rule,))
    except _NeedsOutput as exc:
        return result(False, str(exc))
    if expect.error is not None:
        return result(
            False,
            f"expected an evaluation error containing {expect.error!r}, got {outcome.describe()}",
            outcome.rules,
        )
    wrong = [
        f"expected {key} {want!r}, got {got!r}"
        for key, want, got in (
            ("tier", expect.tier, outcome.tier),
            ("action", expect.action.value if expect.action else None, outcome.action.value),
            ("rule", expect.rule, outcome.rule),
            ("reason", expect.reason, outcome.reason),
        )
        if want is not None and want != got
    ]
    if wrong:
        return result(False, f"{'; '.join(wrong)} ({outcome.describe()})", outcome.rules)
    return result(True, "", outcome.rules)


class _NeedsOutput(Exception):
    pass


def _evaluate(policies: PolicySet, case: _Case) -> _Outcome:
    app = policies.application(case.application)
    data = _as_json_numbers(case.input)
    classification = app.classify(data, case.labels)
    tier = classification.tier
    if tier.reject:
        reason = "; ".join(classification.reasons) or f"tier {tier.name} rejects"
        return _Outcome(tier.name, Action.REJECT, f"tier:{tier.name}", reason, classification.rules)
    if case.output is None:
        raise _NeedsOutput(f"tier {tier.name!r} calls the model: the case needs an output")
    routed = app.route(data, _as_json_numbers(case.output), tier, case.labels, app.backend.ref())
    return _Outcome(
        tier.name, routed.action, routed.rule, routed.reason, (*classification.rules, routed.rule)
    )


def _as_json_numbers(value: Any) -> Any:
    """Integers become floats, as every number does when a request arrives as JSON."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, Mapping):
        return {k: _as_json_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json_numbers(v) for v in value]
    return value


def uncovered_rules(policies: PolicySet, results: Iterable[CaseResult]) -> list[str]:
    """``application:rule`` for every escalation and route rule no passing case exercised."""
    covered = {(r.application, rule) for r in results if r.passed for rule in r.rules}
    missing: list[str] = []
    for app in policies.applications.values():
        for rule_id in [e.id for e in app.escalations] + [r.id for r in app.routes]:
            if (app.id, rule_id) not in covered:
                missing.append(f"{app.id}:{rule_id}")
    return missing


def format_results(results: Iterable[CaseResult], policies: PolicySet | None = None) -> str:
    """A plain-text report: one line per case, a summary, and (given ``policies``) the rules no
    passing case covered."""
    results = list(results)
    lines: list[str] = []
    for r in results:
        where = f"{r.file}:{r.line}" if r.line else r.file
        if r.passed:
            lines.append(f"PASS {where} {r.name}")
        else:
            lines.append(f"FAIL {where} {r.name}: {r.message}")
    failed = sum(1 for r in results if not r.passed)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    if policies is not None:
        missing = uncovered_rules(policies, results)
        if missing:
            lines.append(f"rules no passing case covers: {', '.join(missing)}")
    return "\n".join(lines) + "\n"
