"""Errors raised while evaluating a loaded policy."""

from __future__ import annotations


class PolicyEvalError(Exception):
    """A policy condition could not be evaluated for one request.

    Deliberately not a ``GatewayError``: it never reaches a caller as such. The pipeline catches it
    and fails closed (review or reject, as the application's ``on_model_error`` says).
    ``rule`` names the condition, e.g. ``escalate[0]`` or ``route[1]``.
    """

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message
