"""A reviewer's override, read from the fields they changed in the model's output."""

from __future__ import annotations

import math
from typing import Any

from gateway.errors import InvalidInput
from gateway.types import JSONObject


def parse_override(model_output: JSONObject | None, fields: dict[str, str]) -> JSONObject:
    """The model's output with the reviewer's changed fields, each checked against its type.

    Only top-level numbers, strings and booleans of the model's output can be changed; the
    result keeps every other field (e.g. the explanation) as the model gave it.

    Raises:
        InvalidInput: ``output.<field>`` names a field that cannot be changed or a bad value.
    """
    base = dict(model_output or {})
    if not fields:
        raise InvalidInput("output", "an override must change at least one field")
    changed = False
    for name, text in fields.items():
        where = f"output.{name}"
        if name not in base:
            raise InvalidInput(where, "the model's output has no such field")
        old = base[name]
        text = text.strip()
        value: Any
        if isinstance(old, bool):
            if text not in ("true", "false"):
                raise InvalidInput(where, "expected true or false")
            value = text == "true"
        elif isinstance(old, int | float):
            try:
                value = float(text)
            except ValueError:
                raise InvalidInput(where, f"expected a number, got {text[:40]!r}") from None
            if not math.isfinite(value):
                raise InvalidInput(where, "expected a finite number")
            if isinstance(old, int) and value.is_integer():
                value = int(value)
        elif isinstance(old, str):
            if len(text) > 1000:
                raise InvalidInput(where, "at most 1000 characters")
            value = text
        else:
            raise InvalidInput(where, "only numbers, strings and booleans can be overridden")
        changed = changed or value != old
        base[name] = value
    if not changed:
        raise InvalidInput("output", "the override changes nothing; approve instead")
    return base
