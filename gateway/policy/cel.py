"""CEL conditions: compiled once when policies load, evaluated per decision.

Conditions see ``input``, ``output``, ``tier``, ``app``, ``model`` and ``labels``. Escalation rules
run before the model is called, so their environment has no ``output``: a reference to it is a
compile error instead of a runtime surprise.

Evaluation is lean on purpose: one ``Activation`` (the only conversion of the request data into
CEL values) per classify or route call, shared by all the rules evaluated in that call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from cel_expr_python import cel

from gateway.policy.errors import PolicyEvalError

__all__ = [
    "CelCompileError",
    "Condition",
    "activation",
    "compile_condition",
]


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
