"""An application's optional JSON Schema for decision inputs, compiled once at load.

The schema's ``$schema`` picks the draft (2020-12 when absent). Format assertions are off, as
the drafts specify by default. Remote ``$ref`` are never fetched: the `referencing` registry
starts empty, so a schema can only refer inside itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

from gateway.errors import InvalidInput

_MAX_MESSAGE = 200
_MESSAGES = {
    "type": "must be of type {value}",
    "enum": "must be one of {value}",
    "const": "must be {value}",
    "minimum": "must be at least {value}",
    "maximum": "must be at most {value}",
    "exclusiveMinimum": "must be more than {value}",
    "exclusiveMaximum": "must be less than {value}",
    "minLength": "must have at least {value} characters",
    "maxLength": "must have at most {value} characters",
    "pattern": "must match the pattern {value}",
    "minItems": "must have at least {value} items",
    "maxItems": "must have at most {value} items",
    "additionalProperties": "has a key the schema does not allow",
}


class InputSchemaError(ValueError):
    """A schema that cannot be used; ``path`` is where in the schema document."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class InputSchema:
    """A compiled schema; `check` raises `InvalidInput` naming the first offending field."""

    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile ``schema``.

        Raises:
            InputSchemaError: Not a valid schema of its draft, or a ``$ref`` that does not resolve.
        """
        cls: Any = validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except SchemaError as exc:
            raise InputSchemaError(tuple(exc.absolute_path), exc.message) from None
        # An empty registry: a $ref is never fetched from the network, only looked up inside.
        self._validator: Any = cls(schema, registry=Registry())
        for path, ref in _refs(schema, ()):
            try:
                self._validator._resolver.lookup(ref)
            except Unresolvable:
                raise InputSchemaError(path, f"$ref {ref!r} does not resolve") from None

    def check(self, data: dict[str, Any]) -> None:
        """Raise `InvalidInput` with a field path like ``input.customer.age`` on the first error.

        Errors are ordered by where they are in the input, so the answer does not depend on the
        order jsonschema happens to check keywords in.
        """
        errors: Iterable[ValidationError] = self._validator.iter_errors(data)
        first = min(errors, key=lambda e: (len(e.absolute_path), _path(e)), default=None)
        if first is None:
            return
        raise InvalidInput(_path(first), _message(first))


def _refs(node: Any, at: tuple[str | int, ...]) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield (*at, key), value
            else:
                yield from _refs(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, (*at, i))


def _message(error: ValidationError) -> str:
    """What the schema asks for, never the value sent: error messages reach logs, and the value
    may be personal data (jsonschema's own messages quote it)."""
    if error.validator == "required":  # names the missing key only
        return str(error.message)
    template = _MESSAGES.get(str(error.validator), "fails the schema's {rule!r} rule: {value}")
    value = repr(error.validator_value)
    if len(value) > _MAX_MESSAGE:
        value = value[:_MAX_MESSAGE] + "…"
    return template.format(rule=error.validator, value=value)


def _path(error: ValidationError) -> str:
    out = "input"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
