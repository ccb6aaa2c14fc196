"""Input checks and the logistic link shared by the built-in models.

Every check raises ``ModelError`` with a message that names the model and the input field, so a
caller (and the audit trail) can see exactly which field was wrong.
"""

from __future__ import annotations

import math

from gateway.backends.protocol import ModelError
from gateway.types import JSONObject

SCORE_MIN = 0.0001
"""Lowest score a built-in model reports: scores stay strictly inside (0, 1) after rounding."""
SCORE_MAX = 0.9999
"""Highest score a built-in model reports."""

_exp = math.exp
_isfinite = math.isfinite


def number(model: str, inputs: JSONObject, field: str) -> float:
    """Return ``inputs[field]`` as a finite float; ``bool`` does not count as a number."""
    value = inputs.get(field)
    if value.__class__ is float and _isfinite(value):  # the common case (JSON numbers)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(f"{model}: input field {field!r} must be a number")
    try:
        result = float(value)
    except OverflowError:  # an int too large for a float
        result = math.inf
    if not _isfinite(result):
        raise ModelError(f"{model}: input field {field!r} must be a finite number")
    return result


def non_negative(model: str, inputs: JSONObject, field: str) -> float:
    """Like :func:`number`, and the value must be zero or more."""
    value = number(model, inputs, field)
    if value < 0.0:
        raise ModelError(f"{model}: input field {field!r} must not be negative")
    return value


def fraction(model: str, inputs: JSONObject, field: str) -> float:
    """Like :func:`number`, and the value must lie in [0, 1]."""
    value = number(model, inputs, field)
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"{model}: input field {field!r} must be between 0 and 1")
    return value


def boolean(model: str, inputs: JSONObject, field: str) -> bool:
    """Return ``inputs[field]``, which must be a JSON boolean."""
    value = inputs.get(field)
    if not isinstance(value, bool):
        raise ModelError(f"{model}: input field {field!r} must be a boolean")
    return value


def probability(logit: float) -> float:
    """Logistic function, overflow-free, rounded to 4 decimals and kept inside (0, 1)."""
    if logit >= 0.0:
        p = 1.0 / (1.0 + _exp(-logit))
    else:
        e = _exp(logit)
        p = e / (1.0 + e)
    p = round(p, 4)
    if p < SCORE_MIN:
        return SCORE_MIN
    if p > SCORE_MAX:
        return SCORE_MAX
    return p
