"""Erasure of a data subject's personal data on request, recorded in the audit trail.

What is erased: the stored input of every decision made about the subject, its request digest
(the SHA-256 its idempotency key is bound to, which a search over likely inputs could reverse),
and the payloads of those decisions' audit events (which carry the masked input, outputs and
review reasons). What
stays: the decision rows (status, outcome, who decided and when) as the record of what was
decided, and the hash chain, which covers each payload only by its digest and so still
verifies. The erasure itself is an audit event, ``subject.erased``, naming the subject only by
the SHA-256 of its reference: the record proves an erasure for a given reference happened
without keeping the reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import InvalidInput, TooLarge
from gateway.store.protocol import ReviewStore

log = structlog.get_logger("gateway.erasure")

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class ErasureResult:
    decisions: int
    """Decisions whose stored input was overwritten (or digest blanked) by this request."""
    events: int
    """Audit events whose payload was erased by this request."""


def subject_digest(subject_ref: str) -> str:
    """How the audit trail names an erased subject."""
    return "sha256:" + hashlib.sha256(subject_ref.encode("utf-8")).hexdigest()


class SubjectErasure:
    def __init__(
        self,
        store: ReviewStore,
        max_id_length: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._max_id_length = max_id_length
        self._clock = clock

    async def erase(self, subject_ref: str, reason: str, actor: str) -> ErasureResult:
        """Erase what is stored about ``subject_ref``; ``reason`` (say, the request's reference)
        goes into the audit event. Erasing again finds nothing left and is recorded again.

        Raises:
            InvalidInput: ``subject_ref`` or ``reason`` is empty.
            TooLarge: either is too long.
        """
        if not subject_ref:
            raise InvalidInput("subject_ref", "is required")
        if len(subject_ref) > self._max_id_length:
            raise TooLarge("subject_ref", f"longer than {self._max_id_length} characters")
        reason = reason.strip()
        if not reason:
            raise InvalidInput("reason", "is required (the erasure request's reference)")
        if len(reason) > MAX_REASON:
            raise TooLarge("reason", f"longer than {MAX_REASON} characters")
        payload = {"subject": subject_digest(subject_ref), "reason": reason}
        event = audit_event(EventType.SUBJECT_ERASED, "", actor, payload, ts=self._clock())
        decisions, events = await self._store.erase_subject(subject_ref, event)
        log.warning("subject.erased", actor=actor, decisions=decisions, events=events)
        return ErasureResult(decisions, events)
