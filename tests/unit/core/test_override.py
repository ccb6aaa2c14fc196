"""Parsing a reviewer's override form against the model's output."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.core.overrides import parse_override
from gateway.errors import InvalidInput

OUTPUT: dict[str, Any] = {
    "score": 0.42,
    "limit": 5000,
    "approved": False,
    "band": "B",
    "explanation": {"income": 0.3},
    "tags": ["a"],
}


def test_changed_fields_keep_their_types_and_the_rest_is_untouched() -> None:
    """Numbers, booleans and strings are parsed by the model's type; other fields stay."""
    out = parse_override(
        OUTPUT, {"score": " 0.9 ", "limit": "7000.0", "approved": "true", "band": "A"}
    )
    assert out == {**OUTPUT, "score": 0.9, "limit": 7000, "approved": True, "band": "A"}
    assert isinstance(out["limit"], int)
    assert OUTPUT["score"] == 0.42  # the model's output itself is not modified


def test_a_fractional_value_for_an_integer_field_stays_fractional() -> None:
    """An int field given 7000.5 keeps the fraction rather than silently rounding."""
    assert parse_override(OUTPUT, {"limit": "7000.5"})["limit"] == 7000.5


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({}, "output", "at least one field"),
        ({"score": "lots"}, "output.score", "expected a number"),
        ({"score": "nan"}, "output.score", "finite"),
        ({"score": "inf"}, "output.score", "finite"),
        ({"approved": "yes"}, "output.approved", "true or false"),
        ({"band": "x" * 1001}, "output.band", "1000"),
        ({"nope": "1"}, "output.nope", "no such field"),
        ({"explanation": "{}"}, "output.explanation", "only numbers"),
        ({"tags": "a"}, "output.tags", "only numbers"),
        ({"score": "0.42", "band": "B"}, "output", "changes nothing"),
    ],
)
def test_bad_overrides_name_the_field(fields: dict[str, str], field: str, message: str) -> None:
    """Each refused override says which field is wrong and why."""
    with pytest.raises(InvalidInput, match=message) as err:
        parse_override(OUTPUT, fields)
    assert err.value.field == field


def test_no_model_output_has_nothing_to_override() -> None:
    """Without a model output every named field is unknown."""
    with pytest.raises(InvalidInput) as err:
        parse_override(None, {"score": "1"})
    assert err.value.field == "output.score"
