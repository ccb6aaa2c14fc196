"""Conversion between domain objects and SQL rows.

Kept apart from the connection handling so it is plain, synchronous and testable, and so it
runs wherever it is cheapest: rows are built in the caller's coroutine (a value that cannot be
stored fails there, for that caller alone), decoded wherever they are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from json.encoder import encode_basestring as _encode_str
from typing import Any

import orjson

from gateway.audit.chain import has_non_finite
from gateway.timefmt import format_ts, parse_ts
from gateway.types import (
    Account,
    ApiKey,
    AuditEvent,
    Decision,
    ModelRef,
    Review,
    ReviewTask,
    Role,
    Status,
    SwitchState,
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
    "reject_approvals_needed",
    "blind",
    "requested_by",
    "request_digest",
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
        d.reject_approvals_needed,
        int(d.blind),
        d.requested_by,
        d.request_digest,
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
        reject_approvals_needed,
        blind,
        requested_by,
        request_digest,
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
        reject_approvals_needed=reject_approvals_needed,
        blind=bool(blind),
        requested_by=requested_by,
        request_digest=request_digest,
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


ACCOUNT_COLUMNS = ("name", "role", "groups", "password_hash", "created_at", "disabled")
SWITCH_COLUMNS = ("kind", "name", "paused", "changed_by", "changed_at", "reason")


def account_row(a: Account) -> tuple[Any, ...]:
    return (
        a.name,
        a.role.value,
        dumps(list(a.groups)),
        a.password_hash,
        format_ts(a.created_at),
        int(a.disabled),
    )


def account_from_row(row: Sequence[Any]) -> Account:
    name, role, groups, password_hash, created_at, disabled = row
    return Account(
        name=name,
        role=Role(role),
        groups=tuple(loads_opt(groups)),
        password_hash=password_hash,
        created_at=parse_ts(created_at),
        disabled=bool(disabled),
    )


def switch_row(s: SwitchState) -> tuple[Any, ...]:
    return (s.kind, s.name, int(s.paused), s.changed_by, format_ts(s.changed_at), s.reason)


def switch_from_row(row: Sequence[Any]) -> SwitchState:
    kind, name, paused, changed_by, changed_at, reason = row
    return SwitchState(kind, name, bool(paused), changed_by, parse_ts(changed_at), reason)
