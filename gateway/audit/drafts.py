"""Audit drafts made ready to store, and chained after a head into stored rows.

A draft's payload is encoded and digested in the caller's coroutine (`prepare_draft`), so a
payload that cannot be encoded fails there, for that caller alone. The store's writer then
chains the prepared drafts after the head it holds inside its transaction (`chain_rows`). Both
stores append through `chain_rows`, so their events hash to the same bytes, and the bytes
hashed are the bytes stored (see `gateway.audit.chain`).

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from gateway.audit.chain import canonical_bytes_text_ts, canonical_json, digest_of_canonical
from gateway.timefmt import format_ts
from gateway.types import AuditDraft

EventRow = tuple[Any, ...]
"""An event as stored: ``seq, ts, decision_id, type, actor, payload, payload_digest, trace_id,
span_id, prev_hash, hash, canonical`` (``gateway.store.codec.EVENT_COLUMNS``)."""


@dataclass(frozen=True, slots=True)
class PreparedDraft:
    """An audit draft with its payload encoded and digested, ready to be chained."""

    decision_id: str
    type: str
    actor: str
    payload: str
    """Canonical JSON of the payload: what is stored, and what the digest covers."""
    payload_digest: str
    trace_id: str
    span_id: str
    ts: str | None
    """`format_ts` of the draft's ts, or None for the commit time."""


def prepare_draft(draft: AuditDraft) -> PreparedDraft:
    """Encode and digest ``draft``'s payload; raises ValueError for one JSON cannot hold."""
    payload = canonical_json(draft.payload)
    return PreparedDraft(
        decision_id=draft.decision_id,
        type=draft.type,
        actor=draft.actor,
        payload=payload.decode("utf-8"),
        payload_digest=digest_of_canonical(payload),
        trace_id=draft.trace_id,
        span_id=draft.span_id,
        ts=None if draft.ts is None else format_ts(draft.ts),
    )


def chain_rows(
    drafts: Sequence[PreparedDraft], head: tuple[int, str], now: str
) -> tuple[list[EventRow], tuple[int, str]]:
    """Chain ``drafts`` after ``head`` (``(seq, hash)``): their rows and the new head.

    A draft without a ts gets ``now``, the transaction's time, already formatted.
    """
    seq, prev = head
    rows: list[EventRow] = []
    for d in drafts:
        seq += 1
        ts = d.ts or now
        canonical = canonical_bytes_text_ts(
            seq, ts, d.decision_id, d.type, d.actor, d.payload_digest, d.trace_id, d.span_id
        )
        # `chain_hash` inlined: hashing is most of this loop's time on the write path.
        h = sha256(bytes.fromhex(prev))
        h.update(canonical)
        digest = h.hexdigest()
        rows.append(
            (
                seq,
                ts,
                d.decision_id,
                d.type,
                d.actor,
                d.payload,
                d.payload_digest,
                d.trace_id,
                d.span_id,
                prev,
                digest,
                canonical,
            )
        )
        prev = digest
    return rows, (seq, prev)
