from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.backends.builtin.models import OFFERS, credit_v3, fraud_v2, offer_v1
from gateway.backends.protocol import ModelError

CREDIT = {"income": 55_000, "debt_ratio": 0.35, "past_delinquencies": 0, "amount": 11_000}
FRAUD = {"amount": 60.0, "merchant_risk": 0.2, "country_mismatch": False, "velocity_1h": 1}
OFFER = {"age": 42, "tenure_months": 48, "balance": 3_000.0}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def test_credit_score_rises_with_income() -> None:
    """More income, all else equal, gives a higher repayment score."""
    scores = [credit_v3(_with(CREDIT, income=i))["score"] for i in (20_000, 40_000, 80_000)]
    assert scores[0] < scores[1] < scores[2]


def test_credit_score_falls_with_delinquencies() -> None:
    """More past delinquencies give a lower repayment score."""
    scores = [credit_v3(_with(CREDIT, past_delinquencies=n))["score"] for n in (0, 1, 3)]
    assert scores[0] > scores[1] > scores[2]


def test_credit_score_falls_with_debt_ratio_and_amount() -> None:
    """A higher debt ratio or a larger requested amount gives a lower repayment score."""
    by_debt = [credit_v3(_with(CREDIT, debt_ratio=d))["score"] for d in (0.1, 0.4, 0.9)]
    by_amount = [credit_v3(_with(CREDIT, amount=a))["score"] for a in (2_000, 10_000, 30_000)]
    assert by_debt[0] > by_debt[1] > by_debt[2]
    assert by_amount[0] > by_amount[1] > by_amount[2]


def test_credit_recommended_limit_never_exceeds_request() -> None:
    """The recommended limit is a multiple of 100, at most the requested amount."""
    generous = credit_v3(_with(CREDIT, income=500_000, amount=5_000))
    stretched = credit_v3(_with(CREDIT, income=30_000, amount=50_000))
    assert generous["recommended_limit"] == 5_000
    assert 0 <= stretched["recommended_limit"] < 50_000
    assert stretched["recommended_limit"] % 100 == 0


def test_credit_income_below_floor_does_not_divide_by_zero() -> None:
    """Zero income scores (poorly) instead of failing, and recommends no limit."""
    out = credit_v3(_with(CREDIT, income=0))
    assert out["score"] < 0.5
    assert out["recommended_limit"] == 0


def test_fraud_score_rises_with_merchant_risk() -> None:
    """A riskier merchant gives a higher fraud score."""
    scores = [fraud_v2(_with(FRAUD, merchant_risk=r))["score"] for r in (0.0, 0.3, 0.9)]
    assert scores[0] < scores[1] < scores[2]


def test_fraud_score_rises_with_mismatch_velocity_and_amount() -> None:
    """A country mismatch, more recent transactions or a larger amount each raise the score."""
    base = fraud_v2(FRAUD)["score"]
    assert fraud_v2(_with(FRAUD, country_mismatch=True))["score"] > base
    assert fraud_v2(_with(FRAUD, velocity_1h=8))["score"] > base
    assert fraud_v2(_with(FRAUD, amount=5_000))["score"] > base


@pytest.mark.parametrize(
    ("age", "tenure", "balance", "offer"),
    [
        (16, 12, 50_000.0, "youth_saver"),
        (50, 36, 30_000.0, "premium_account"),
        (50, 6, 30_000.0, "savings_boost"),
        (25, 6, 500.0, "starter_card"),
        (55, 90, 500.0, "loyalty_reward"),
        (45, 12, -200.0, "cashback_card"),
    ],
)
def test_offer_rules(age: int, tenure: int, balance: float, offer: str) -> None:
    """The offer is the first rule that matches age, tenure and balance."""
    out = offer_v1({"age": age, "tenure_months": tenure, "balance": balance})
    assert out["offer"] == offer
    assert out["offer"] in OFFERS


@pytest.mark.parametrize(
    ("model", "inputs"),
    [
        (credit_v3, CREDIT),
        (credit_v3, {"income": 0, "debt_ratio": 5.0, "past_delinquencies": 40, "amount": 1e9}),
        (credit_v3, {"income": 1e15, "debt_ratio": 0, "past_delinquencies": 0, "amount": 0}),
        (fraud_v2, FRAUD),
        (fraud_v2, {"amount": 0, "merchant_risk": 0, "country_mismatch": False, "velocity_1h": 0}),
        (
            fraud_v2,
            {"amount": 1e12, "merchant_risk": 1, "country_mismatch": True, "velocity_1h": 1e6},
        ),
        (offer_v1, OFFER),
        (offer_v1, {"age": 0, "tenure_months": 1e6, "balance": 1e12}),
        (offer_v1, {"age": 120, "tenure_months": 0, "balance": -1e12}),
    ],
)
def test_scores_stay_strictly_between_zero_and_one(model: Any, inputs: dict[str, Any]) -> None:
    """Scores are strictly inside (0, 1), even for extreme inputs."""
    score = model(inputs)["score"]
    assert isinstance(score, float)
    assert 0.0 < score < 1.0


@pytest.mark.parametrize(
    ("model", "inputs", "fields"),
    [
        (credit_v3, CREDIT, {"income", "debt_ratio", "past_delinquencies", "amount"}),
        (
            credit_v3,
            {"income": 30_000, "debt_ratio": 0.6, "past_delinquencies": 2, "amount": 12_000},
            {"income", "debt_ratio", "past_delinquencies", "amount"},
        ),
        (fraud_v2, FRAUD, {"amount", "merchant_risk", "country_mismatch", "velocity_1h"}),
        (
            fraud_v2,
            {"amount": 900, "merchant_risk": 0.5, "country_mismatch": True, "velocity_1h": 3},
            {"amount", "merchant_risk", "country_mismatch", "velocity_1h"},
        ),
        (offer_v1, OFFER, {"age", "tenure_months", "balance"}),
        (
            offer_v1,
            {"age": 23, "tenure_months": 3, "balance": 40_000},
            {"age", "tenure_months", "balance"},
        ),
    ],
)
def test_explanation_sums_to_logit_minus_baseline(
    model: Any, inputs: dict[str, Any], fields: set[str]
) -> None:
    """Per-feature contributions plus the baseline reproduce the logit behind the score."""
    out = model(inputs)
    assert set(out["explanation"]) == fields
    logit = out["baseline"] + sum(out["explanation"].values())
    # Every reported number is rounded to 4 decimals, so compare on the probability scale.
    assert 1.0 / (1.0 + math.exp(-logit)) == pytest.approx(out["score"], abs=1e-4)
    assert _logit(out["score"]) == pytest.approx(logit, abs=0.01)


@pytest.mark.parametrize(
    ("model", "inputs", "field", "problem"),
    [
        (credit_v3, _with(CREDIT, income=None), "income", "must be a number"),
        (
            credit_v3,
            {k: v for k, v in CREDIT.items() if k != "income"},
            "income",
            "must be a number",
        ),
        (credit_v3, _with(CREDIT, income="55000"), "income", "must be a number"),
        (credit_v3, _with(CREDIT, debt_ratio=True), "debt_ratio", "must be a number"),
        (credit_v3, _with(CREDIT, amount=float("nan")), "amount", "must be a finite number"),
        (credit_v3, _with(CREDIT, income=10**400), "income", "must be a finite number"),
        (
            credit_v3,
            _with(CREDIT, past_delinquencies=-1),
            "past_delinquencies",
            "must not be negative",
        ),
        (fraud_v2, _with(FRAUD, merchant_risk=1.5), "merchant_risk", "must be between 0 and 1"),
        (fraud_v2, _with(FRAUD, country_mismatch=1), "country_mismatch", "must be a boolean"),
        (
            fraud_v2,
            _with(FRAUD, velocity_1h=float("inf")),
            "velocity_1h",
            "must be a finite number",
        ),
        (offer_v1, _with(OFFER, balance=[1]), "balance", "must be a number"),
        (offer_v1, _with(OFFER, age=-3), "age", "must not be negative"),
    ],
)
def test_bad_input_raises_model_error_naming_the_field(
    model: Any, inputs: dict[str, Any], field: str, problem: str
) -> None:
    """A missing, mistyped or out-of-range field raises ModelError naming model and field."""
    with pytest.raises(ModelError) as caught:
        model(inputs)
    assert str(caught.value) == f"{model.__name__}: input field {field!r} {problem}"


def test_credit_error_message_matches_documented_form() -> None:
    """A non-numeric income reads exactly as documented."""
    with pytest.raises(ModelError, match=r"^credit_v3: input field 'income' must be a number$"):
        credit_v3(_with(CREDIT, income="lots"))


def test_extra_input_fields_are_ignored() -> None:
    """Fields a model does not use do not change its output."""
    assert credit_v3(_with(CREDIT, customer_id="c-1", note=None)) == credit_v3(CREDIT)


def test_integer_inputs_score_like_floats() -> None:
    """Integer and float inputs of equal value give the same output."""
    as_float = {k: float(v) for k, v in CREDIT.items()}
    assert credit_v3(CREDIT) == credit_v3(as_float)


def test_explanation_has_no_negative_zero() -> None:
    """A feature at its mean contributes 0.0, not -0.0."""
    contributions = offer_v1(OFFER)["explanation"].values()
    assert all(math.copysign(1.0, c) > 0 for c in contributions if c == 0.0)
