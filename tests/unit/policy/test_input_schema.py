"""Per-application JSON Schema: compiled at load with located errors, checked with field paths."""

from __future__ import annotations

import pytest
from policy_samples import WritePolicies

from gateway.errors import InvalidInput, PolicyError
from gateway.policy import load_policies

APP = """\
applications:
  - id: credit
    tier: limited
    backend: scorer
    input_schema:
{schema}
"""

INLINE = """\
      type: object
      required: [customer]
      properties:
        amount: {type: number, minimum: 0}
        customer:
          type: object
          properties:
            age: {type: integer, minimum: 18}
            tags: {type: array, items: {type: string}}
"""


def _check(write_policies: WritePolicies, schema: str, data: dict[str, object]) -> None:
    app = load_policies(write_policies(applications=APP.format(schema=schema))).applications
    schema_ = app["credit"].input_schema
    assert schema_ is not None
    schema_.check(data)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"customer": {"age": "x"}}, "input.customer.age", "must be of type 'integer'"),
        ({"customer": {"age": 17}}, "input.customer.age", "must be at least 18"),
        ({"customer": {"tags": ["a", 1]}}, "input.customer.tags[1]", "must be of type 'string'"),
        ({"amount": 1}, "input", "'customer' is a required property"),
        ({"customer": {"age": 17}, "amount": -1}, "input.amount", "must be at least 0"),
        ({"customer": "Jane"}, "input.customer", "must be of type 'object'"),
    ],
)
def test_a_mismatch_names_the_field_path(
    write_policies: WritePolicies, data: dict[str, object], field: str, message: str
) -> None:
    """An input that breaks the schema raises InvalidInput naming the shallowest bad field."""
    with pytest.raises(InvalidInput) as err:
        _check(write_policies, INLINE, data)
    assert str(err.value) == f"{field}: {message}"
    assert "Jane" not in str(err.value)  # values sent never appear: they may be personal data


def test_a_matching_input_passes(write_policies: WritePolicies) -> None:
    """An input that fits the schema passes without error."""
    _check(write_policies, INLINE, {"customer": {"age": 30, "tags": ["vip"]}, "amount": 5.5})


def test_an_application_without_schema_has_none(write_policies: WritePolicies) -> None:
    """No input_schema key means no schema check."""
    assert load_policies(write_policies()).applications["credit"].input_schema is None


def test_a_schema_file_is_read_relative_to_the_policy_directory(
    write_policies: WritePolicies,
) -> None:
    """``input_schema: <path>`` loads a JSON file, and its bytes change the policy version."""
    directory = write_policies(applications=APP.format(schema="      schemas/credit.json"))
    (directory / "schemas").mkdir()
    (directory / "schemas" / "credit.json").write_text('{"required": ["amount"]}')
    first = load_policies(directory)
    schema = first.applications["credit"].input_schema
    assert schema is not None
    with pytest.raises(InvalidInput, match="'amount' is a required property"):
        schema.check({})
    (directory / "schemas" / "credit.json").write_text('{"required": ["total"]}')
    assert load_policies(directory).version != first.version


@pytest.mark.parametrize(
    ("schema", "location", "field", "message"),
    [
        (
            "      type: object\n      properties:\n        age: {type: integr}\n",
            "applications.yaml:8",
            "applications[0].input_schema.properties.age.type",
            "invalid JSON Schema",
        ),
        (
            "      properties:\n        a: {$ref: 'https://example.com/x.json'}\n",
            "applications.yaml:7",
            "applications[0].input_schema.properties.a.$ref",
            "does not resolve",
        ),
        (
            "      missing.json",
            "applications.yaml:5",
            "applications[0].input_schema",
            "cannot read",
        ),
    ],
)
def test_a_bad_schema_stops_loading_naming_file_line_and_field(
    write_policies: WritePolicies, schema: str, location: str, field: str, message: str
) -> None:
    """An invalid schema, a $ref that does not resolve or a missing file is a located error."""
    with pytest.raises(PolicyError) as err:
        load_policies(write_policies(applications=APP.format(schema=schema)))
    assert (err.value.location, err.value.field) == (location, field)
    assert message in str(err.value)
