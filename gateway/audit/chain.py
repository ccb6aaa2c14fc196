"""Canonical encoding and the hash chain of audit events.

Each event is hashed as ``sha256(prev_hash || canonical)``, where ``canonical`` is the compact,
key-sorted UTF-8 JSON of the event's identifying fields. The payload itself is not in the
canonical bytes, only its digest: a payload holding personal data can be erased after its
retention period and the chain still verifies.

The canonical bytes are stored with each event, so verification hashes stored bytes instead of
re-serialising every event (several times faster), and then checks that those bytes agree with
the event's own columns, so editing a column is caught as well (`gateway.audit.verifier`).

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring as _encode_str
from typing import Any

import orjson

from gateway.timefmt import format_ts
from gateway.types import JSONObject

GENESIS = "0" * 64
"""``prev_hash`` of the first event of a chain."""

_DIGEST_PREFIX = "sha256:"


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, no whitespace, UTF-8, no NaN/Infinity.

    Raises:
        TypeError: ``value`` holds something JSON cannot represent.
        ValueError: ``value`` holds NaN or an infinity.
    """
    # orjson writes NaN and infinities as null instead of refusing them; refuse them ourselves
    # only when a float is present at all, which the fast path below makes cheap to find out.
    out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if _NON_FINITE in out and has_non_finite(value):
        raise ValueError("NaN and infinities cannot be represented in JSON")
    return out


_NON_FINITE = b"null"


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_non_finite(v) for v in value)
    return False


def payload_digest(payload: JSONObject) -> str:
    """Digest of an event payload: ``"sha256:"`` + hex SHA-256 of its canonical JSON."""
    return digest_of_canonical(canonical_json(payload))


def digest_of_canonical(canonical_payload: bytes) -> str:
    """Digest of a payload that is already in canonical JSON (see `payload_digest`)."""
    return _DIGEST_PREFIX + hashlib.sha256(canonical_payload).hexdigest()


def canonical_bytes(
    seq: int,
    ts: datetime,
    decision_id: str,
    type: str,
    actor: str,
    payload_digest: str,
    trace_id: str,
    span_id: str,
) -> bytes:
    """The bytes an event's hash covers (everything but the payload and the chain links).

    Canonical JSON (see `canonical_json`) of an object with the keys ``actor``, ``decision_id``,
    ``payload_digest``, ``seq``, ``span_id``, ``trace_id``, ``ts`` (`format_ts`) and ``type``.
    """
    return canonical_bytes_text_ts(
        seq, format_ts(ts), decision_id, type, actor, payload_digest, trace_id, span_id
    )


def canonical_bytes_text_ts(
    seq: int,
    ts: str,
    decision_id: str,
    type: str,
    actor: str,
    payload_digest: str,
    trace_id: str,
    span_id: str,
) -> bytes:
    """`canonical_bytes` with ``ts`` already formatted by `format_ts`.

    Writes the JSON directly, with the keys in sorted order and the strings escaped by the
    same C encoder ``json.dumps(..., ensure_ascii=False)`` uses: byte-identical to
    `canonical_json` of the same object and about four times faster, which matters on the
    write path.
    """
    if isinstance(seq, bool) or not isinstance(seq, int):  # ``True`` would encode as True
        raise TypeError(f"seq must be an int, not {seq!r}")
    e = _encode_str
    return (
        f'{{"actor":{e(actor)},"decision_id":{e(decision_id)},'
        f'"payload_digest":{e(payload_digest)},"seq":{seq},"span_id":{e(span_id)},'
        f'"trace_id":{e(trace_id)},"ts":{e(ts)},"type":{e(type)}}}'
    ).encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """Hex SHA-256 of the previous hash's raw 32 bytes followed by ``canonical``."""
    h = hashlib.sha256(bytes.fromhex(prev_hash))
    h.update(canonical)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of verifying a run of chained events."""

    ok: bool
    checked: int
    """Events verified good; on failure, every event before ``first_bad_seq``."""
    first_bad_seq: int | None
    """Chain position where verification failed: the seq that was expected there."""
    reason: str
    """What mismatched, in words; empty when ``ok``."""
    head_seq: int = 0
    """Seq of the last good event (``start_seq - 1`` when none was good)."""
    head_hash: str = GENESIS
    """Hash of the last good event (``start_prev_hash`` when none was good)."""
    processes: int = field(default=0, compare=False)
    """Worker processes that verified segments; 0 when this process verified alone (how the
    work was split, not part of the outcome: results of either way compare equal)."""
