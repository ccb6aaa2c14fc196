"""The one verifier of the audit chain, over stored rows, and of the signed checkpoints on it.

Rows are checked as stored, which is several times faster than decoding them into events
first: the expected canonical bytes are rebuilt from the columns
with the same encoder the writer used and compared byte for byte (only on a mismatch is the
canonical decoded, to name the field that differs); the payload is hashed as stored (it is
stored as the canonical JSON its digest covers); and the chain hash is computed on raw digests,
without hex round trips.

Rows are tuples in `gateway.store.codec.EVENT_COLUMNS` order with ``ts`` as stored text
(`gateway.audit.drafts.EventRow`). Events already decoded (a decision's trail held by the
service, events built by tests) go through the same checks by `verify_events`, which turns
each back into its stored row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from hashlib import sha256
from typing import Any

import orjson

from gateway.audit.chain import (
    GENESIS,
    VerifyResult,
    canonical_bytes_text_ts,
    canonical_json,
    payload_digest,
)
from gateway.timefmt import format_ts
from gateway.types import AuditEvent

_FIELDS = ("actor", "decision_id", "payload_digest", "seq", "span_id", "trace_id", "ts", "type")
_PREFIX = "sha256:"
_BACKSLASH = b"\\"


def verify_rows(
    rows: Iterable[tuple[Any, ...]],
    *,
    start_prev_hash: str = GENESIS,
    start_seq: int = 1,
    checkpoints: Mapping[int, str] | None = None,
) -> VerifyResult:
    """Recompute the chain over stored rows in seq order and stop at the first mismatch.

    Checks the same things as `gateway.audit.chain.verify` (seq continuity, links, hashes,
    columns against the hashed bytes, payloads against their digests), and, for every seq in
    ``checkpoints`` (seq -> signed hash, signatures already verified), that the event there has
    the signed hash: a rewritten stretch of chain, even one consistently re-hashed, is caught at
    the first checkpoint after it.

    A checkpoint beyond the last row means events were cut off the end; that is reported as a
    failure at the first missing seq.
    """
    cps = checkpoints or {}
    prev = start_prev_hash
    prev_raw = bytes.fromhex(prev)
    expected = start_seq
    checked = 0
    rebuild = canonical_bytes_text_ts
    for row in rows:
        (
            seq,
            ts,
            decision_id,
            type_,
            actor,
            payload,
            digest,
            trace_id,
            span_id,
            prev_hash,
            hash_,
            canonical,
        ) = row
        reason = ""
        if seq != expected:
            reason = _seq_reason(seq, expected)
        elif prev_hash != prev:
            reason = (
                f"seq {expected}: prev_hash {prev_hash} does not match the previous event's "
                f"hash {prev}"
            )
        else:
            if type(canonical) is not bytes:
                canonical = bytes(canonical)
            h = sha256(prev_raw)
            h.update(canonical)
            raw = h.digest()
            computed = raw.hex()
            if computed != hash_:
                reason = (
                    f"seq {expected}: stored hash {hash_} does not match the hash of its "
                    f"canonical bytes {computed}"
                )
            else:
                if _BACKSLASH in canonical or type(seq) is not int:
                    try:
                        same = canonical == rebuild(
                            seq, ts, decision_id, type_, actor, digest, trace_id, span_id
                        )
                    except TypeError:
                        same = False
                else:
                    # No backslash: no string in the canonical bytes has an escape, so the same
                    # object without escaping is byte-identical, and equality still pins every
                    # column (each key appears once, so no value can swallow a separator).
                    same = (
                        canonical
                        == (
                            f'{{"actor":"{actor}","decision_id":"{decision_id}",'
                            f'"payload_digest":"{digest}","seq":{seq},"span_id":"{span_id}",'
                            f'"trace_id":"{trace_id}","ts":"{ts}","type":"{type_}"}}'
                        ).encode()
                    )
                if not same:
                    reason = _column_reason(expected, row, canonical)
                elif (
                    payload is not None
                    and _PREFIX
                    + sha256(
                        payload
                        if type(payload) is bytes
                        else payload.encode()
                        if type(payload) is str
                        else bytes(payload)
                    ).hexdigest()
                    != digest
                ):
                    reason = _payload_reason(expected, payload, digest)
                elif expected in cps and cps[expected] != hash_:
                    reason = (
                        f"seq {expected}: hash {hash_} differs from the signed checkpoint's "
                        f"{cps[expected]} (the chain was rewritten up to here)"
                    )
                else:
                    prev_raw = raw
        if reason:
            return VerifyResult(False, checked, expected, reason, expected - 1, prev)
        prev = hash_
        expected += 1
        checked += 1
    beyond = [s for s in cps if s >= expected]
    if beyond:
        signed = max(beyond)
        missing = f"{expected}" if signed == expected else f"{expected}..{signed}"
        return VerifyResult(
            False,
            checked,
            expected,
            f"chain ends at seq {expected - 1} but a signed checkpoint covers seq {signed} "
            f"(missing: {missing}; the tail was cut off)",
            expected - 1,
            prev,
        )
    return VerifyResult(True, checked, None, "", expected - 1, prev)


def verify_events(
    events: Iterable[AuditEvent],
    *,
    start_prev_hash: str = GENESIS,
    start_seq: int = 1,
) -> VerifyResult:
    """`verify_rows` over decoded events (in chain order), consumed lazily.

    To verify a segment, pass the hash and seq of the event before it as ``start_prev_hash``
    and ``start_seq``. Truncation at the end of the chain cannot be seen from the events
    alone; signed checkpoints of the head catch it.
    """
    unstorable: list[str] = []

    def rows() -> Iterator[tuple[Any, ...]]:
        for ev in events:
            try:
                yield _event_row(ev)
            except (TypeError, ValueError) as exc:
                unstorable.append(str(exc))
                return

    result = verify_rows(rows(), start_prev_hash=start_prev_hash, start_seq=start_seq)
    if result.ok and unstorable:
        at = result.head_seq + 1
        return VerifyResult(
            False,
            result.checked,
            at,
            f"seq {at}: {unstorable[0]}",
            result.head_seq,
            result.head_hash,
        )
    return result


def _event_row(ev: AuditEvent) -> tuple[Any, ...]:
    """``ev`` as its stored row; raises ValueError or TypeError for one no store could hold."""
    try:
        ts = format_ts(ev.ts)
    except ValueError as exc:
        raise ValueError(f"ts {exc}") from exc
    payload: bytes | None = None
    if ev.payload is not None:
        try:
            payload = canonical_json(ev.payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload cannot be encoded as canonical JSON ({exc})") from exc
    return (
        ev.seq,
        ts,
        ev.decision_id,
        ev.type,
        ev.actor,
        payload,
        ev.payload_digest,
        ev.trace_id,
        ev.span_id,
        ev.prev_hash,
        ev.hash,
        ev.canonical,
    )


def _seq_reason(seq: int, expected: int) -> str:
    if seq > expected:
        missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
        return f"seq {expected} expected, found seq {seq} (missing: {missing})"
    return f"seq {expected} expected, found seq {seq} (duplicated or out of order event)"


def _payload_reason(expected: int, payload: str | bytes, digest: str) -> str:
    # The stored text is not the canonical form its digest covers; re-encoding it tells a
    # harmless re-serialisation apart from changed content.
    try:
        recomputed = payload_digest(orjson.loads(payload))
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return f"seq {expected}: payload is not valid canonical JSON ({exc})"
    if recomputed == digest:
        return f"seq {expected}: payload is not stored in canonical form"
    return (
        f"seq {expected}: payload digest {recomputed} does not match the stored "
        f"payload_digest {digest}"
    )


def _column_reason(expected: int, row: tuple[Any, ...], canonical: bytes) -> str:
    """Name the column that disagrees with the hashed canonical bytes (the slow path)."""
    try:
        doc = json.loads(canonical)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"seq {expected}: canonical bytes are not valid JSON ({exc})"
    if not isinstance(doc, dict) or sorted(doc) != list(_FIELDS):
        return f"seq {expected}: canonical bytes do not hold exactly the fields {_FIELDS}"
    columns = dict(
        zip(
            ("seq", "ts", "decision_id", "type", "actor", "payload", "payload_digest"),
            row[:7],
            strict=True,
        )
    )
    columns["trace_id"], columns["span_id"] = row[7], row[8]
    for name in _FIELDS:
        if doc[name] != columns[name] or type(doc[name]) is not type(columns[name]):
            return (
                f"seq {expected}: field {name!r} is {columns[name]!r} but the hashed canonical "
                f"bytes say {doc[name]!r}"
            )
    return f"seq {expected}: canonical bytes are not in canonical form"
