"""Conversion between domain objects and SQL rows.

Kept apart from the connection handling so it is plain, synchronous and testable, and so it
runs wherever it is cheapest: rows are built in the caller's coroutine (a value that cannot be
stored fails there, for that caller alone), decoded wherever they are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from json.encoder import encode_basestring as _encode_str
from typing import Any

import orjson

from gateway.audit.chain import (
    canonical_bytes_text_ts,
    canonical_json,
    digest_of_canonical,
    format_ts,
    has_non_finite,
    parse_ts,
)
from gateway.types import (
    ApiKey,
    AuditDraft,
    AuditEvent,
    Decision,
    ModelRef,
    Review,
    ReviewTask,
    Status,
    TaskKind,
    Validation,
    Verdict,
)

DECISION_COLUMNS = (
    "id",
    "application",
    "tier",
    "status",
    "input",
    "model_backend",
    "model_name",
    "model_version",
    "model_validation",
    "model_output",
    "final_output",
    "reasons",
    "rule",
    "created_at",
    "updated_at",
    "trace_id",
    "policy_version",
    "subject_ref",
    "idempotency_key",
    "labels",
    "approvals_needed",
    "review_deadline",
)

TASK_COLUMNS = (
    "decision_id",
    "kind",
    "application",
    "tier",
    "groups",
    "deadline",
    "created_at",
    "tier_rank",
)

EVENT_COLUMNS = (
    "seq",
    "ts",
    "decision_id",
    "type",
    "actor",
    "payload",
    "payload_digest",
    "trace_id",
    "span_id",
    "prev_hash",
    "hash",
    "canonical",
)

API_KEY_COLUMNS = ("key_id", "secret_hash", "applications", "created_at", "revoked", "role")


def _dumps(value: Any) -> str:
    # orjson is several times faster than the json module on this hot path; it writes NaN as
    # null, so non-finite floats are refused by the same check the audit chain uses.
    out = orjson.dumps(value)
    if b"null" in out and has_non_finite(value):
        raise ValueError("NaN and infinities cannot be represented in JSON")
    return out.decode()


def dumps(value: Any) -> str:
    """Compact JSON for a JSON column (key order kept; NaN and infinities refused)."""
    return _dumps(value)


def dumps_str_list(items: Sequence[str]) -> str:
    """JSON array of strings; several times faster than the generic encoder for short lists.

    Raises:
        TypeError: An item is not a str.
    """
    return "[" + ",".join(map(_encode_str, items)) + "]"


def dumps_str_map(mapping: dict[str, str]) -> str:
    """JSON object for a ``dict[str, str]``, with a fast path for the common empty one."""
    return _dumps(mapping) if mapping else "{}"


def dumps_opt(value: Any | None) -> str | None:
    return None if value is None else _dumps(value)


def loads_opt(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def ts_opt(ts: datetime | None) -> str | None:
    return None if ts is None else format_ts(ts)


def parse_ts_opt(text: str | None) -> datetime | None:
    return None if text is None else parse_ts(text)


def decision_row(d: Decision) -> tuple[Any, ...]:
    """Row for ``decisions`` in `DECISION_COLUMNS` order (reviews are rows of their own)."""
    m = d.model
    return (
        d.id,
        d.application,
        d.tier,
        d.status.value,
        _dumps(d.input),
        None if m is None else m.backend,
        None if m is None else m.name,
        None if m is None else m.version,
        None if m is None else m.validation.value,
        dumps_opt(d.model_output),
        dumps_opt(d.final_output),
        dumps_str_list(d.reasons),
        d.rule,
        format_ts(d.created_at),
        format_ts(d.updated_at),
        d.trace_id,
        d.policy_version,
        d.subject_ref,
        d.idempotency_key,
        dumps_str_map(d.labels),
        d.approvals_needed,
        ts_opt(d.review_deadline),
    )


def review_values(r: Review) -> tuple[Any, ...]:
    """``(reviewer, role, verdict, reason, output, at)`` for a ``reviews`` row."""
    return (r.reviewer, r.role, r.verdict.value, r.reason, dumps_opt(r.output), format_ts(r.at))


def decision_from_row(row: Sequence[Any], reviews_json: str | None) -> Decision:
    """Inverse of `decision_row`; ``reviews_json`` is the `REVIEWS_SUBQUERY` column."""
    (
        id_,
        application,
        tier,
        status,
        input_,
        backend,
        name,
        version,
        validation,
        model_output,
        final_output,
        reasons,
        rule,
        created_at,
        updated_at,
        trace_id,
        policy_version,
        subject_ref,
        idempotency_key,
        labels,
        approvals_needed,
        review_deadline,
    ) = row
    model = None if backend is None else ModelRef(backend, name, version, Validation(validation))
    reviews: tuple[Review, ...] = ()
    if reviews_json:
        items = sorted(orjson.loads(reviews_json), key=lambda item: item[0])
        reviews = tuple(
            Review(
                reviewer=reviewer,
                role=role,
                verdict=Verdict(verdict),
                reason=reason,
                at=parse_ts(at),
                output=output,
            )
            for _seq, reviewer, role, verdict, reason, output, at in items
        )
    return Decision(
        id=id_,
        application=application,
        tier=tier,
        status=Status(status),
        input=orjson.loads(input_),
        model=model,
        model_output=loads_opt(model_output),
        final_output=loads_opt(final_output),
        reasons=tuple(orjson.loads(reasons)),
        rule=rule,
        created_at=parse_ts(created_at),
        updated_at=parse_ts(updated_at),
        trace_id=trace_id,
        policy_version=policy_version,
        subject_ref=subject_ref,
        idempotency_key=idempotency_key,
        labels=orjson.loads(labels),
        reviews=reviews,
        approvals_needed=approvals_needed,
        review_deadline=parse_ts_opt(review_deadline),
    )


REVIEWS_SUBQUERY = (
    "(SELECT json_group_array(json_array(r.seq, r.reviewer, r.role, r.verdict, r.reason,"
    " json(r.output), r.at)) FROM reviews r WHERE r.decision_id = d.id)"
)
"""Every review of decision ``d`` as one JSON text, so a decision is read in one query."""

# Assembled only from the constant column tuples above; values are always bound parameters.
SELECT_DECISION = (
    "SELECT "  # noqa: S608
    + ", ".join(f"d.{c}" for c in DECISION_COLUMNS)
    + ", "
    + REVIEWS_SUBQUERY
    + " FROM decisions d"
)
"""Every column `decision_from_row` needs; append a WHERE clause."""


def task_row(t: ReviewTask) -> tuple[Any, ...]:
    return (
        t.decision_id,
        t.kind.value,
        t.application,
        t.tier,
        dumps_str_list(t.groups),
        ts_opt(t.deadline),
        format_ts(t.created_at),
        t.tier_rank,
    )


def task_from_row(row: Sequence[Any]) -> ReviewTask:
    decision_id, kind, application, tier, groups, deadline, created_at, tier_rank = row
    return ReviewTask(
        decision_id=decision_id,
        kind=TaskKind(kind),
        application=application,
        tier=tier,
        groups=tuple(orjson.loads(groups)),
        deadline=parse_ts_opt(deadline),
        created_at=parse_ts(created_at),
        tier_rank=tier_rank,
    )


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
    payload = canonical_json(draft.payload)
    return PreparedDraft(
        decision_id=draft.decision_id,
        type=draft.type,
        actor=draft.actor,
        payload=payload.decode("utf-8"),
        payload_digest=digest_of_canonical(payload),
        trace_id=draft.trace_id,
        span_id=draft.span_id,
        ts=ts_opt(draft.ts),
    )


def event_from_row(row: Sequence[Any]) -> AuditEvent:
    """An `AuditEvent` from a row in `EVENT_COLUMNS` order."""
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
    return AuditEvent(
        seq=seq,
        ts=parse_ts(ts),
        decision_id=decision_id,
        type=type_,
        actor=actor,
        payload=loads_opt(payload),
        payload_digest=digest,
        trace_id=trace_id,
        span_id=span_id,
        prev_hash=prev_hash,
        hash=hash_,
        canonical=bytes(canonical),
    )


def api_key_row(k: ApiKey) -> tuple[Any, ...]:
    return (
        k.key_id,
        k.secret_hash,
        dumps_str_list(k.applications),
        format_ts(k.created_at),
        int(k.revoked),
        k.role,
    )


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    key_id, secret_hash, applications, created_at, revoked, role = row
    return ApiKey(
        key_id=key_id,
        secret_hash=secret_hash,
        applications=tuple(orjson.loads(applications)),
        created_at=parse_ts(created_at),
        revoked=bool(revoked),
        role=role,
    )


SELECT_EVENTS = "SELECT " + ", ".join(EVENT_COLUMNS) + " FROM audit_events"  # noqa: S608


def chain_rows(
    drafts: Sequence[PreparedDraft], head: tuple[int, str], now: str
) -> tuple[list[tuple[Any, ...]], tuple[int, str]]:
    """Chain ``drafts`` after ``head``: rows in `EVENT_COLUMNS` order and the new head.

    Both stores append through this, so their events hash to the same bytes.
    """
    seq, prev = head
    rows: list[tuple[Any, ...]] = []
    for d in drafts:
        seq += 1
        ts = d.ts or now
        canonical = canonical_bytes_text_ts(
            seq, ts, d.decision_id, d.type, d.actor, d.payload_digest, d.trace_id, d.span_id
        )
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
