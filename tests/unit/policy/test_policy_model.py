from __future__ import annotations

from pathlib import Path

import pytest
from policy_samples import APPLICATIONS, WritePolicies

from gateway.errors import NotFound, UnknownApplication
from gateway.policy import PolicyEvalError, PolicySet, load_policies
from gateway.types import Action, ModelRef, Validation

TWO_WAY = """\
applications:
  - id: offer
    tier: minimal
    backend: scorer
    escalate:
      - {when: "input.age < 21", tier: high, reason: young}
      - {when: "input.age < 18", tier: prohibited, reason: minor}
      - {when: "labels.vip == 'yes'", tier: limited, reason: vip}
    route:
      - {when: "output.score > 0.5", action: approve}
      - {when: "output.score > 0.2", action: reject, reason: low}
  - id: context
    tier: minimal
    backend: scorer
    route:
      - when: >-
          tier == 'minimal' && app == 'context' && model.name == 'credit_v3'
          && labels.k == 'v'
        action: approve
        reason: all variables seen
      - {when: "output.flag", action: reject, reason: flagged}
"""


@pytest.fixture
def policies(write_policies: WritePolicies) -> PolicySet:
    return load_policies(write_policies(applications=APPLICATIONS + TWO_WAY.split("\n", 1)[1]))


def test_classify_keeps_base_tier_when_nothing_matches(policies: PolicySet) -> None:
    """Without a matching escalation rule the request stays in the application's tier."""
    result = policies.application("credit").classify({"amount": 5000.0}, {})
    assert result.tier.name == "limited"
    assert result.reasons == ()
    assert result.rules == ()


def test_classify_escalates_on_json_numbers(policies: PolicySet) -> None:
    """A double from JSON compares with an integer literal and raises the tier."""
    result = policies.application("credit").classify({"amount": 200000.0}, {})
    assert result.tier.name == "high"
    assert result.reasons == ("large amount",)
    assert result.rules == ("escalate[0]",)


def test_escalation_only_raises_the_tier(policies: PolicySet) -> None:
    """Every matching rule is recorded, and the highest-risk target wins whatever the order."""
    app = policies.application("offer")
    result = app.classify({"age": 16.0}, {"vip": "yes"})
    assert result.tier.name == "prohibited"
    assert result.rules == ("escalate[0]", "escalate[1]", "escalate[2]")
    assert result.reasons == ("young", "minor", "vip")
    result = app.classify({"age": 19.0}, {"vip": "yes"})
    assert result.tier.name == "high"


def test_classify_eval_error_raises(policies: PolicySet) -> None:
    """A condition that cannot be evaluated (missing key) raises PolicyEvalError naming the rule."""
    with pytest.raises(PolicyEvalError) as caught:
        policies.application("credit").classify({"income": 1.0}, {})
    assert caught.value.rule == "escalate[0]"
    assert "amount" in caught.value.message


def test_route_first_match_wins(policies: PolicySet) -> None:
    """Route rules are tried in order; the first that matches decides."""
    app = policies.application("credit")
    tier = policies.tier("limited")
    model = app.backend.ref()
    result = app.route({"amount": 1.0}, {"score": 0.9}, tier, {}, model)
    assert (result.action, result.rule, result.reason) == (Action.APPROVE, "route[0]", "good score")
    result = app.route({"amount": 1.0}, {"score": 0.1}, tier, {}, model)
    assert (result.action, result.rule) == (Action.REJECT, "route[1]")
    result = app.route({"amount": 1.0}, {"score": 0.5}, tier, {}, model)
    assert (result.action, result.rule) == (Action.REVIEW, "route[2]")


def test_route_defaults_to_review(policies: PolicySet) -> None:
    """When no route rule matches, the decision is held for review."""
    app = policies.application("offer")
    result = app.route({}, {"score": 0.1}, policies.tier("minimal"), {}, app.backend.ref())
    assert (result.action, result.rule) == (Action.REVIEW, "route:default")
    assert result.reason == "no route rule matched"


def test_route_reason_defaults_to_condition(policies: PolicySet) -> None:
    """A route rule without a reason explains itself with its condition."""
    app = policies.application("offer")
    result = app.route({}, {"score": 0.9}, policies.tier("minimal"), {}, app.backend.ref())
    assert result.reason == "output.score > 0.5"


def test_route_sees_tier_app_model_and_labels(policies: PolicySet) -> None:
    """Conditions see the classified tier, the application id, the model and the labels."""
    app = policies.application("context")
    minimal = policies.tier("minimal")
    result = app.route({}, {"flag": False}, minimal, {"k": "v"}, app.backend.ref())
    assert result.rule == "route[0]"
    other = ModelRef("scorer", "credit_v4", "4", Validation.APPROVED)
    result = app.route({}, {"flag": False}, minimal, {"k": "v"}, other)
    assert result.rule == "route:default"
    result = app.route({}, {"flag": False}, policies.tier("high"), {"k": "v"}, app.backend.ref())
    assert result.rule == "route:default"


def test_route_eval_error_raises(policies: PolicySet) -> None:
    """A missing output field raises PolicyEvalError instead of routing."""
    app = policies.application("credit")
    with pytest.raises(PolicyEvalError) as caught:
        app.route({}, {}, policies.tier("limited"), {}, app.backend.ref())
    assert caught.value.rule == "route[0]"


def test_route_non_bool_result_raises(policies: PolicySet) -> None:
    """A dynamically typed condition that yields a non-bool raises PolicyEvalError."""
    app = policies.application("context")
    with pytest.raises(PolicyEvalError) as caught:
        app.route({}, {"flag": "yes"}, policies.tier("minimal"), {"k": "x"}, app.backend.ref())
    assert caught.value.rule == "route[1]"
    assert "not a bool" in caught.value.message


def test_eval_error_is_not_a_gateway_error() -> None:
    """PolicyEvalError is for the pipeline to handle, not a caller-facing error."""
    from gateway.errors import GatewayError

    assert not issubclass(PolicyEvalError, GatewayError)
    assert str(PolicyEvalError("route[0]", "boom")) == "route[0]: boom"


def test_unknown_application_and_tier(policies: PolicySet) -> None:
    """Looking up an unknown application raises UnknownApplication; an unknown tier NotFound."""
    with pytest.raises(UnknownApplication):
        policies.application("nope")
    with pytest.raises(NotFound):
        policies.tier("nope")


def test_escalation_target_skips_reject_tiers(policies: PolicySet) -> None:
    """On SLA escalation a tier hands over to the next higher tier that holds decisions."""
    assert policies.escalation_target(policies.tier("limited")) == policies.tier("high")
    assert policies.escalation_target(policies.tier("high")) is None


def test_application_attributes(policies: PolicySet) -> None:
    """Application attributes carry the policy's settings and defaults."""
    app = policies.application("credit")
    assert app.on_model_error is Action.REVIEW
    assert app.sample_for_review == 0.0
    assert app.sensitive_fields == ()
    assert [r.id for r in app.escalations] == ["escalate[0]"]
    assert [r.id for r in app.routes] == ["route[0]", "route[1]", "route[2]"]


def test_shipped_policies_load() -> None:
    """The default policies in the repository load."""
    root = Path(__file__).resolve().parents[3] / "policies"
    policies = load_policies(root)
    assert {"credit-limit", "fraud-alert", "marketing-offer"} <= set(policies.applications)
    assert policies.application("marketing-offer").backend.version == "1"
    assert policies.tier("high").require_explanation
