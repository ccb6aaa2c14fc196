"""The audit event types and the one constructor every audit event goes through.

An event names what happened (`EventType`), who did it (``app:<key id>``, ``user:<name>``,
``cli:<os user>`` or ``system``) and, when a request caused it, that request's trace: the trace
and span ids of the current OpenTelemetry span, so an auditor can go from an event to the logs
and spans of the call that made it. Building every event here keeps that from being forgotten at
one site: the gRPC handlers, the HTTP app and the CLI commands each run in a span (see
`gateway.api.handlers`, `gateway.api.http`, `gateway.telemetry.tracing.command_span`), and
`event` reads it.

Types in `SYSTEM_ONLY` are made by the gateway on its own (the SLA sweeper acting on a passed
deadline, the early warning acting on a breach): no request caused them, so they never carry a
trace id, even when one happens to be current.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from opentelemetry import trace

from gateway.types import AuditDraft, JSONObject


class EventType(StrEnum):
    """What an audit event records; the value is the string stored in the trail."""

    DECISION_CREATED = "decision.created"
    DECISION_REVIEWED = "decision.reviewed"
    """A verdict: approve (one of several approvals, or the last), reject or override."""
    DECISION_QA_REVIEWED = "decision.qa_reviewed"
    DECISION_UNMASKED = "decision.unmasked"
    """Personal data of the input was shown to a reviewer."""
    DECISION_ESCALATED = "decision.escalated"
    DECISION_EXPIRED = "decision.expired"
    SUBJECT_ERASED = "subject.erased"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_DISABLED = "account.disabled"
    """Its UI sessions were ended and its review leases released in the same transaction."""
    ACCOUNT_ENABLED = "account.enabled"
    ACCOUNT_ROLE_CHANGED = "account.role_changed"
    ACCOUNT_GROUPS_CHANGED = "account.groups_changed"
    SWITCH_PAUSED = "switch.paused"
    SWITCH_RESUMED = "switch.resumed"
    MODEL_REGISTERED = "model.registered"
    """A model version entered the inventory (payload: its key and record)."""
    MODEL_VALIDATED = "model.validated"
    MODEL_APPROVED = "model.approved"
    MODEL_SUSPENDED = "model.suspended"
    MODEL_RESUMED = "model.resumed"
    """A suspended model version approved again."""
    MODEL_RETIRED = "model.retired"
    MODEL_VERSION_MISMATCH = "model.version_mismatch"
    """A model server answered a decision's call under another version than the pinned one
    (the decision's event, in its transaction, with the request's trace)."""
    MODEL_BREACH = "model.breach"
    """Monitoring found a rate (or drift) of a model version past its policy threshold; the
    payload carries the figures (counts, rate, bound, threshold, window) and the action."""
    MODEL_ESCALATED = "model.escalated"
    """After a breach whose action is ``escalate``: every decision on the version is held."""
    MODEL_CLEARED = "model.cleared"
    """An admin cleared a model version's escalation, with a justification."""
    OUTBOX_RESENT = "outbox.resent"
    """An admin had an outbox message (a webhook, a reviewer notice) sent again, same id
    (payload: message id, channel, topic)."""
    POLICY_LOADED = "policy.loaded"
    """The gateway loaded a policy version other than the one loaded last (payload: digest,
    source, previous digest); its texts are stored under the digest."""
    EVIDENCE_PERSONAL_DATA = "evidence.personal_data"
    """An evidence pack of a decision was made with the subject's personal data opened
    (payload: the fields opened); recorded before the pack is handed out."""
    POLICY_SHADOWED = "policy.shadowed"
    """A policy version is evaluated alongside the enforced one on every live decision, without
    acting (payload: digest, or "" when the shadow was removed; previous shadow digest)."""


SYSTEM_ONLY: frozenset[EventType] = frozenset(
    {
        EventType.DECISION_ESCALATED,
        EventType.DECISION_EXPIRED,
        EventType.MODEL_BREACH,
        EventType.MODEL_ESCALATED,
    }
)
"""Types the gateway makes on its own, never traced: the SLA sweeper's when a review deadline
passes, and the early warning's when a model version's monitoring breaches a threshold. (A
``policy.loaded`` at start or on SIGHUP has no trace because no request caused it; one applied
through AdminService carries the request's.)"""


def current_trace_ids() -> tuple[str, str]:
    """``(trace id, span id)`` of the current span in W3C hex, or empty strings without one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def event(
    type: EventType,
    decision_id: str,
    actor: str,
    payload: JSONObject,
    *,
    ts: datetime | None = None,
) -> AuditDraft:
    """An audit event of ``type``, stamped with the current span's trace unless system-only.

    Args:
        type: What happened.
        decision_id: The decision it concerns; empty for events about keys, accounts,
            switches, models or data subjects.
        actor: Who did it.
        payload: The event's details (erasable: the chain keeps their digest).
        ts: When it happened; the commit time when None.
    """
    trace_id, span_id = ("", "") if type in SYSTEM_ONLY else current_trace_ids()
    return AuditDraft(
        decision_id=decision_id,
        # The plain string, so stored rows and hashed bytes are what they always were.
        type=type.value,
        actor=actor,
        payload=payload,
        trace_id=trace_id,
        span_id=span_id,
        ts=ts,
    )
