"""Bounds on what one request may carry, so no caller can exhaust memory or CPU."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import InvalidInput, TooLarge


@dataclass(frozen=True, slots=True)
class InputLimits:
    max_depth: int = 16
    """Deepest nesting of objects and lists in ``input``.

    The protobuf parser itself stops at about 33 levels of Struct; requests deeper than that are
    refused while parsing, with the same status.
    """
    max_keys: int = 10_000
    """Total number of object keys and list items in ``input``."""
    max_string: int = 65_536
    """Longest string value or key, in characters."""
    max_labels: int = 64
    """Number of labels on one request."""
    max_id_length: int = 256
    """Longest application id, subject reference, idempotency key, requester, label key or
    value."""
    max_wait_seconds: float = 3600.0
    """Longest ``wait`` a caller may ask for."""


def requester(value: str, field: str, limits: InputLimits) -> str:
    """``requested_by`` as recorded: surrounding whitespace removed; empty when not given.

    It is compared with reviewers' names (a requester never decides their own request), so it
    must be one visible line: control characters, line breaks and other invisible characters
    are refused rather than silently dropped.

    Raises:
        InvalidInput: it holds a character that is not printable; ``field`` names it.
        TooLarge: it is longer than ``limits.max_id_length``.
    """
    if len(value) > limits.max_id_length:
        raise TooLarge(field, f"longer than {limits.max_id_length} characters")
    value = value.strip()
    if not value.isprintable():
        raise InvalidInput(field, "must be printable text on one line (a user name or id)")
    return value
