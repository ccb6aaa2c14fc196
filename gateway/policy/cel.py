"""CEL conditions: compiled once when policies load, evaluated per decision.

Conditions see ``input``, ``output``, ``tier``, ``app``, ``model`` and ``labels``. Escalation rules
run before the model is called, so their environment has no ``output``: a reference to it is a
compile error instead of a runtime surprise.

Evaluation is lean on purpose: one ``Activation`` (the only conversion of the request data into
CEL values) per classify or route call, shared by all the rules evaluated in that call, and one
CEL evaluation per call for all of its rules (`FirstMatch`, `AllMatches`): each evaluation has a
fixed cost of a few microseconds whatever the expression, which per-rule evaluation paid once
per rule. The combined expression keeps the rules' meaning exactly (CEL's ``?:`` evaluates its
condition strictly and its branches lazily, so later rules are not evaluated after a match, and
an error in a rule is an error of the whole); when it errs, the rules are evaluated one by one to
say which rule failed and how.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from cel_expr_python import cel

from gateway.policy.errors import PolicyEvalError

__all__ = [
    "AllMatches",
    "CelCompileError",
    "Condition",
    "FirstMatch",
    "activation",
    "compile_condition",
]

_MAX_COMBINED = 62
"""Most rules one `AllMatches` expression combines (one bit each of a CEL int)."""


class CelCompileError(Exception):
    """A condition does not compile, or does not yield a bool."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@cache
def _env(with_output: bool) -> Any:
    strings = cel.Type.Map(cel.Type.STRING, cel.Type.STRING)
    variables: dict[str, Any] = {
        "input": cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
        "tier": cel.Type.STRING,
        "app": cel.Type.STRING,
        "model": strings,
        "labels": strings,
    }
    if with_output:
        variables["output"] = cel.Type.Map(cel.Type.STRING, cel.Type.DYN)
    return cel.NewEnv(variables=variables)


_LOCATED = re.compile(r"ERROR: <input>:(\d+):(\d+): (.*)")


def _short_compile_message(text: str) -> str:
    """Reduce cel-cpp's multi-line diagnostic to its first error and column."""
    match = _LOCATED.search(text)
    if match is None:
        first = text.strip().splitlines()[0] if text.strip() else "invalid expression"
        return first.removeprefix("INVALID_ARGUMENT: ")
    line, column, message = match.groups()
    message = message.replace(" (in container '')", "")
    message = message.split(" expecting {", 1)[0]
    where = f"column {column}" if line == "1" else f"line {line}, column {column}"
    return f"{message} ({where})"


class Condition:
    """A compiled boolean CEL expression; ``rule`` names it in errors (``route[1]``)."""

    __slots__ = ("_expr", "rule", "source")

    def __init__(self, rule: str, source: str, expr: Any) -> None:
        self.rule = rule
        self.source = source
        self._expr = expr

    def evaluate(self, activation: Any) -> bool:
        """True or False; anything else (a missing key, a type error) raises PolicyEvalError."""
        value = self._expr.eval(activation=activation)
        result = value.value()
        if result is True:
            return True
        if result is False:
            return False
        if value.type() == cel.Type.ERROR:
            raise PolicyEvalError(self.rule, f"{self.source!r} failed: {result}")
        raise PolicyEvalError(
            self.rule, f"{self.source!r} returned {value.type().name().lower()}, not a bool"
        )

    def __repr__(self) -> str:
        return f"Condition({self.rule!r}, {self.source!r})"


def _combined(source: str, count: int, with_output: bool) -> Any:
    """``source`` (combining ``count`` conditions) compiled; None when it does not compile or
    combines nothing (the rules then run one by one)."""
    if not 0 < count <= _MAX_COMBINED:
        return None
    try:
        return _env(with_output).compile(source)
    except RuntimeError:
        return None


def _own_lines(source: str) -> str:
    """A condition on lines of its own, so that a ``//`` comment in it ends with it."""
    return f"(\n{source}\n)"


class FirstMatch:
    """The index of the first of ``conditions`` that holds (-1: none), in one evaluation."""

    __slots__ = ("_conditions", "_expr")

    def __init__(self, conditions: Sequence[Condition], *, with_output: bool) -> None:
        self._conditions = tuple(conditions)
        arms = "".join(f"{_own_lines(c.source)} ? {i} : " for i, c in enumerate(conditions))
        self._expr = _combined(arms + "-1", len(self._conditions), with_output)

    def first(self, activation: Any) -> int:
        """Raises PolicyEvalError naming the first rule that cannot be evaluated."""
        if self._expr is not None:
            value = self._expr.eval(activation=activation).value()
            if type(value) is int:
                return value
        for i, condition in enumerate(self._conditions):
            if condition.evaluate(activation):
                return i
        return -1


class AllMatches:
    """The indexes of every one of ``conditions`` that holds, in one evaluation."""

    __slots__ = ("_conditions", "_expr")

    def __init__(self, conditions: Sequence[Condition], *, with_output: bool) -> None:
        self._conditions = tuple(conditions)
        bits = " + ".join(
            f"({_own_lines(c.source)} ? {1 << i} : 0)" for i, c in enumerate(conditions)
        )
        self._expr = _combined(bits, len(self._conditions), with_output)

    def matching(self, activation: Any) -> list[int]:
        """Raises PolicyEvalError naming the first rule that cannot be evaluated."""
        if self._expr is not None:
            bits = self._expr.eval(activation=activation).value()
            if type(bits) is int:
                return [i for i in range(len(self._conditions)) if bits >> i & 1]
        return [i for i, c in enumerate(self._conditions) if c.evaluate(activation)]


def compile_condition(rule: str, source: str, *, with_output: bool = True) -> Condition:
    """Compile ``source``; raises CelCompileError with a short message and column."""
    if not source.strip():
        raise CelCompileError("empty condition")
    try:
        expr = _env(with_output).compile(source)
    except RuntimeError as exc:
        message = _short_compile_message(str(exc))
        if not with_output and "'output" in message:
            message += "; escalation rules run before the model, so output is not available"
        raise CelCompileError(message) from None
    return_type = expr.return_type()
    if not (return_type == cel.Type.BOOL or return_type == cel.Type.DYN):
        raise CelCompileError(f"condition must be a bool, this one is {return_type.name().lower()}")
    return Condition(rule, source, expr)


def activation(data: Mapping[str, object], *, with_output: bool = True) -> Any:
    """Convert one request's variables for evaluation; raises PolicyEvalError if it cannot."""
    try:
        return _env(with_output).Activation(data=data)
    except Exception as exc:  # conversion problems normally surface lazily, as CEL errors
        raise PolicyEvalError("activation", str(exc)) from None
