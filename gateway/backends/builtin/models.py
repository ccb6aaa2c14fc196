"""Demo decision models: small logistic scorecards in pure Python.

Each model standardises its features with fixed means and scales, multiplies by fixed
coefficients and adds an intercept to get a logit; the score is the logistic of that logit.
The output explains itself: ``baseline`` is the intercept (the logit of an applicant at the
feature means) and ``explanation`` maps each input field to its contribution to the logit
(``coefficient * (x - mean) / scale``), so ``baseline + sum(explanation.values())`` is the logit
behind ``score`` (up to the 4-decimal rounding of every reported number; ``+ 0.0`` below turns
a rounded ``-0.0`` into ``0.0``).

The coefficients are illustrative, not fitted to any real portfolio. A feature's weight below is
``coefficient / scale``, folded at import so a call costs a handful of float operations.

``credit_v3``: credit-limit scorer, ``score`` = probability that the customer repays.

================== ============================================== ======== ===== ===========
input field        feature                                        mean     scale coefficient
================== ============================================== ======== ===== ===========
income             ln(max(income, 1000)), annual income           ln 55000 0.65  +0.85
debt_ratio         debt_ratio (0..1, may exceed 1)                0.35     0.20  -0.90
past_delinquencies past_delinquencies (count)                     0.40     1.00  -0.75
amount             amount / max(income, 1000), limit-to-income    0.20     0.15  -0.55
================== ============================================== ======== ===== ===========

Intercept +2.2 (about 0.90 at the means). Extra output ``recommended_limit``: the requested
``amount``, capped at ``0.5 * income * max(0, 1 - debt_ratio) * score`` and rounded down to a
multiple of 100.

``fraud_v2``: transaction fraud scorer, ``score`` = probability that the transaction is fraud.

================ ================================== ===== ===== ===========
input field      feature                            mean  scale coefficient
================ ================================== ===== ===== ===========
amount             ln(1 + amount)                                 4.10     1.30  +0.45
merchant_risk    merchant_risk (0..1)               0.20  0.20  +1.00
country_mismatch 1 if true else 0 (boolean)         0.05  0.22  +0.55
velocity_1h      transactions in the last hour      1.00  1.50  +0.50
================ ================================== ===== ===== ===========

Intercept -4.2 (about 0.015 at the means).

``offer_v1``: marketing offer ranker, ``score`` = propensity to take up the offer.

============= ========================================== ====== ====== ===========
input field   feature                                    mean   scale  coefficient
============= ========================================== ====== ====== ===========
age           age in years                               42     15     -0.25
tenure_months months as a customer                       48     40     +0.35
balance       balance, clipped to [-5000, 100000]        8000   15000  +0.45
============= ========================================== ====== ====== ===========

Intercept -1.4 (about 0.20 at the means). Extra output ``offer``, the first rule that matches:
age under 18 → ``youth_saver``; balance ≥ 25000 and tenure ≥ 24 months → ``premium_account``;
balance ≥ 5000 → ``savings_boost``; age under 30 → ``starter_card``; tenure ≥ 60 months →
``loyalty_reward``; otherwise ``cashback_card``.
"""

from __future__ import annotations

import math

from gateway.backends.builtin._common import boolean, fraction, non_negative, number, probability
from gateway.types import JSONObject

_log = math.log
_log1p = math.log1p

# --- credit_v3 ---------------------------------------------------------------------------------

CREDIT_INTERCEPT = 2.2
CREDIT_INCOME_FLOOR = 1000.0
"""Incomes below this count as this much (keeps the log and the ratio defined at zero)."""
CREDIT_LIMIT_INCOME_SHARE = 0.5
"""At most this share of the debt-free part of income is recommended as a limit."""

_C_INCOME_MEAN = math.log(55_000.0)
_C_INCOME_W = 0.85 / 0.65
_C_DEBT_MEAN = 0.35
_C_DEBT_W = -0.90 / 0.20
_C_DELINQ_MEAN = 0.40
_C_DELINQ_W = -0.75 / 1.00
_C_RATIO_MEAN = 0.20
_C_RATIO_W = -0.55 / 0.15
_C_BASELINE = round(CREDIT_INTERCEPT, 4)


def credit_v3(inputs: JSONObject) -> JSONObject:
    """Score a credit-limit request; see the module docstring for the scorecard."""
    income = non_negative("credit_v3", inputs, "income")
    debt_ratio = non_negative("credit_v3", inputs, "debt_ratio")
    delinquencies = non_negative("credit_v3", inputs, "past_delinquencies")
    amount = non_negative("credit_v3", inputs, "amount")

    effective_income = income if income > CREDIT_INCOME_FLOOR else CREDIT_INCOME_FLOOR
    c_income = (_log(effective_income) - _C_INCOME_MEAN) * _C_INCOME_W
    c_debt = (debt_ratio - _C_DEBT_MEAN) * _C_DEBT_W
    c_delinq = (delinquencies - _C_DELINQ_MEAN) * _C_DELINQ_W
    c_amount = (amount / effective_income - _C_RATIO_MEAN) * _C_RATIO_W
    score = probability(CREDIT_INTERCEPT + c_income + c_debt + c_delinq + c_amount)

    free_share = 1.0 - debt_ratio if debt_ratio < 1.0 else 0.0
    cap = CREDIT_LIMIT_INCOME_SHARE * income * free_share * score
    limit = amount if amount < cap else cap
    return {
        "score": score,
        "recommended_limit": math.floor(limit / 100.0) * 100,
        "baseline": _C_BASELINE,
        "explanation": {
            "income": round(c_income, 4) + 0.0,
            "debt_ratio": round(c_debt, 4) + 0.0,
            "past_delinquencies": round(c_delinq, 4) + 0.0,
            "amount": round(c_amount, 4) + 0.0,
        },
    }


# --- fraud_v2 ----------------------------------------------------------------------------------

FRAUD_INTERCEPT = -4.2

_F_AMOUNT_MEAN = 4.10
_F_AMOUNT_W = 0.45 / 1.30
_F_MERCHANT_MEAN = 0.20
_F_MERCHANT_W = 1.00 / 0.20
_F_MISMATCH_MEAN = 0.05
_F_MISMATCH_W = 0.55 / 0.22
_F_VELOCITY_MEAN = 1.00
_F_VELOCITY_W = 0.50 / 1.50
_F_BASELINE = round(FRAUD_INTERCEPT, 4)
_F_MISMATCH_YES = (1.0 - _F_MISMATCH_MEAN) * _F_MISMATCH_W
_F_MISMATCH_NO = (0.0 - _F_MISMATCH_MEAN) * _F_MISMATCH_W


def fraud_v2(inputs: JSONObject) -> JSONObject:
    """Score a card transaction for fraud; see the module docstring for the scorecard."""
    amount = non_negative("fraud_v2", inputs, "amount")
    merchant_risk = fraction("fraud_v2", inputs, "merchant_risk")
    mismatch = boolean("fraud_v2", inputs, "country_mismatch")
    velocity = non_negative("fraud_v2", inputs, "velocity_1h")

    c_amount = (_log1p(amount) - _F_AMOUNT_MEAN) * _F_AMOUNT_W
    c_merchant = (merchant_risk - _F_MERCHANT_MEAN) * _F_MERCHANT_W
    c_mismatch = _F_MISMATCH_YES if mismatch else _F_MISMATCH_NO
    c_velocity = (velocity - _F_VELOCITY_MEAN) * _F_VELOCITY_W
    return {
        "score": probability(FRAUD_INTERCEPT + c_amount + c_merchant + c_mismatch + c_velocity),
        "baseline": _F_BASELINE,
        "explanation": {
            "amount": round(c_amount, 4) + 0.0,
            "merchant_risk": round(c_merchant, 4) + 0.0,
            "country_mismatch": round(c_mismatch, 4) + 0.0,
            "velocity_1h": round(c_velocity, 4) + 0.0,
        },
    }


# --- offer_v1 ----------------------------------------------------------------------------------

OFFER_INTERCEPT = -1.4
OFFERS = (
    "youth_saver",
    "premium_account",
    "savings_boost",
    "starter_card",
    "loyalty_reward",
    "cashback_card",
)
"""Every offer ``offer_v1`` can name."""

_O_AGE_MEAN = 42.0
_O_AGE_W = -0.25 / 15.0
_O_TENURE_MEAN = 48.0
_O_TENURE_W = 0.35 / 40.0
_O_BALANCE_MIN = -5_000.0
_O_BALANCE_MAX = 100_000.0
_O_BALANCE_MEAN = 8_000.0
_O_BALANCE_W = 0.45 / 15_000.0
_O_BASELINE = round(OFFER_INTERCEPT, 4)


def offer_v1(inputs: JSONObject) -> JSONObject:
    """Rank a marketing offer for a customer; see the module docstring for the rules."""
    age = non_negative("offer_v1", inputs, "age")
    tenure = non_negative("offer_v1", inputs, "tenure_months")
    balance = number("offer_v1", inputs, "balance")

    clipped = (
        _O_BALANCE_MIN
        if balance < _O_BALANCE_MIN
        else (_O_BALANCE_MAX if balance > _O_BALANCE_MAX else balance)
    )
    c_age = (age - _O_AGE_MEAN) * _O_AGE_W
    c_tenure = (tenure - _O_TENURE_MEAN) * _O_TENURE_W
    c_balance = (clipped - _O_BALANCE_MEAN) * _O_BALANCE_W

    if age < 18.0:
        offer = "youth_saver"
    elif balance >= 25_000.0 and tenure >= 24.0:
        offer = "premium_account"
    elif balance >= 5_000.0:
        offer = "savings_boost"
    elif age < 30.0:
        offer = "starter_card"
    elif tenure >= 60.0:
        offer = "loyalty_reward"
    else:
        offer = "cashback_card"
    return {
        "score": probability(OFFER_INTERCEPT + c_age + c_tenure + c_balance),
        "offer": offer,
        "baseline": _O_BASELINE,
        "explanation": {
            "age": round(c_age, 4) + 0.0,
            "tenure_months": round(c_tenure, 4) + 0.0,
            "balance": round(c_balance, 4) + 0.0,
        },
    }
