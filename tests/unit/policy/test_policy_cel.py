from __future__ import annotations

import pytest

from gateway.policy import PolicyEvalError
from gateway.policy.cel import CelCompileError, activation, compile_condition


def test_compile_error_is_one_short_line() -> None:
    """A compile error is the first diagnostic with its column, without cel-cpp's decoration."""
    with pytest.raises(CelCompileError) as caught:
        compile_condition("route[0]", "inptu.amount > 1")
    assert caught.value.message == "undeclared reference to 'inptu.amount' (column 6)"


def test_multiline_condition_error_names_line() -> None:
    """An error on a later line of a condition names line and column."""
    with pytest.raises(CelCompileError) as caught:
        compile_condition("route[0]", "input.a > 1 &&\n  nope")
    assert "line 2" in caught.value.message


def test_empty_condition_is_refused() -> None:
    """A blank condition does not compile."""
    with pytest.raises(CelCompileError):
        compile_condition("route[0]", "  ")


def test_dynamic_condition_is_accepted_and_checked_at_runtime() -> None:
    """A dyn-typed condition compiles; a bool value evaluates, anything else raises."""
    condition = compile_condition("route[0]", "input.flag")
    assert condition.evaluate(activation({"input": {"flag": True}})) is True
    with pytest.raises(PolicyEvalError, match="not a bool"):
        condition.evaluate(activation({"input": {"flag": 1.0}}))


def test_unconvertible_value_is_an_eval_error() -> None:
    """A value CEL cannot represent makes evaluation fail, not crash."""
    condition = compile_condition("route[0]", "input.x == 1")
    with pytest.raises(PolicyEvalError):
        condition.evaluate(activation({"input": {"x": {1, 2}}}))
