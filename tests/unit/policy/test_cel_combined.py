"""All rules of a classify or route call in one CEL evaluation: the same answers, and the same
errors naming the same rule, as evaluating the rules one by one (checked against that)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from gateway.policy import PolicyEvalError
from gateway.policy.cel import AllMatches, FirstMatch, activation, compile_condition

SOURCES = [
    "input.amount > 100",
    "input.name == 'x' // a comment ends at the end of its line",
    "has(input.flag) && input.flag",
    "input.missing > 1",  # an error whenever it is reached
    "input.amount",  # not a bool: an error too
    "true",
]
INPUTS: list[dict[str, Any]] = [
    {"amount": 5, "name": "y"},
    {"amount": 500, "name": "y"},
    {"amount": 5, "name": "x"},
    {"amount": 5, "name": "y", "flag": True},
]


def _one_by_one_first(conditions: list[Any], act: Any) -> int | str:
    try:
        return next((i for i, c in enumerate(conditions) if c.evaluate(act)), -1)
    except PolicyEvalError as exc:
        return exc.rule


def _one_by_one_all(conditions: list[Any], act: Any) -> list[int] | str:
    try:
        return [i for i, c in enumerate(conditions) if c.evaluate(act)]
    except PolicyEvalError as exc:
        return exc.rule


def _combined(fn: Any, act: Any) -> Any:
    try:
        return fn(act)
    except PolicyEvalError as exc:
        return exc.rule


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(SOURCES)), 3)))
def test_combined_rules_agree_with_rules_one_by_one(order: tuple[int, ...]) -> None:
    """Every ordered choice of three rules, on every input: first match, all matches and the
    failing rule's name agree."""
    conditions = [compile_condition(f"route[{i}]", SOURCES[i], with_output=False) for i in order]
    first = FirstMatch(conditions, with_output=False)
    every = AllMatches(conditions, with_output=False)
    for data in INPUTS:
        act = activation(
            {"input": data, "tier": "t", "app": "a", "model": {}, "labels": {}},
            with_output=False,
        )
        assert _combined(first.first, act) == _one_by_one_first(conditions, act)
        assert _combined(every.matching, act) == _one_by_one_all(conditions, act)


def test_more_rules_than_one_expression_holds_are_evaluated_one_by_one() -> None:
    """Seventy rules (past the bits of one CEL int) still give every match."""
    conditions = [
        compile_condition(f"escalate[{i}]", f"input.amount > {i}", with_output=False)
        for i in range(70)
    ]
    every = AllMatches(conditions, with_output=False)
    act = activation(
        {"input": {"amount": 65}, "tier": "t", "app": "a", "model": {}, "labels": {}},
        with_output=False,
    )
    assert every.matching(act) == list(range(65))
    assert FirstMatch(conditions, with_output=False).first(act) == 0
    assert FirstMatch([], with_output=False).first(act) == -1
    assert AllMatches([], with_output=False).matching(act) == []
