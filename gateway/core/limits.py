"""Bounds on what one request may carry, so no caller can exhaust memory or CPU."""

from __future__ import annotations

from dataclasses import dataclass


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
    """Longest application id, subject reference, idempotency key, label key or value."""
    max_wait_seconds: float = 3600.0
    """Longest ``wait`` a caller may ask for."""
