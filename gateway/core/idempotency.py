"""Idempotency that cannot mix customers.

A decision made with an idempotency key stores the digest of the request that made it
(`request_digest`). A later call with the key gets that decision only when its own digest is
the same; otherwise it is refused (`AlreadyExists`), so a key reused by mistake, say for another
customer, never hands out someone else's outcome. Decisions stored without a digest (made before
digests, or erased since: a digest of personal data could be searched) are returned as before.
"""

from __future__ import annotations

import hashlib
from typing import Any

from gateway.audit.chain import canonical_json
from gateway.core.command import DecideCommand
from gateway.errors import AlreadyExists
from gateway.types import Decision


def request_digest(cmd: DecideCommand) -> str:
    """What a decision's idempotency key is bound to: ``"sha256:"`` and the hex SHA-256 of the
    canonical JSON (sorted keys, no whitespace, UTF-8) of the object with the keys
    ``application``, ``input``, ``labels``, ``requested_by`` and ``subject_ref``.

    Numbers are compared as JSON numbers: a float with an integral value is encoded as that
    integer, so ``5.0`` from a protobuf Struct (which has only doubles) and ``5`` from an INT64
    tensor make the same digest. ``wait`` is not part of the request's content.

    The encoding is fixed: digests are stored and compared with those of later calls, so a
    change here would refuse retries of decisions made before it.
    """
    canonical = canonical_json(
        {
            "application": cmd.application,
            "input": _json_numbers(cmd.input),
            "labels": cmd.labels,
            "requested_by": cmd.requested_by,
            "subject_ref": cmd.subject_ref,
        }
    )
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


_EXACT_INT = 2**53
"""Floats below this in magnitude that have an integral value are exactly that integer."""


def _json_numbers(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() and -_EXACT_INT < value < _EXACT_INT:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    return value


def check_same_request(decision: Decision, cmd: DecideCommand, digest: str) -> None:
    """Refuse ``cmd`` when ``decision``, found by its idempotency key, was made for another
    request. A decision without a digest (older, or erased) answers any request, as before.

    Raises:
        AlreadyExists: the digests differ.
    """
    if decision.request_digest and decision.request_digest != digest:
        raise AlreadyExists(cmd.idempotency_key, decision.id)
