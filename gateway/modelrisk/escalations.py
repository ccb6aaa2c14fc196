"""Clearing a model version's escalation: an admin's judgement, with a justification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.errors import FailedPrecondition, InvalidInput, NotFound
from gateway.modelrisk.early_warning import MAX_REASON, PSI, MonitoringStore
from gateway.modelrisk.monitor import RATES, bucket
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.telemetry import metrics
from gateway.timefmt import format_ts
from gateway.types import JSONObject

log = structlog.get_logger("gateway.modelrisk.escalations")


class Escalations:
    """Clearing a model version's escalation: an admin's judgement, with a justification.

    Args:
        store: The inventory and the breach state.
        clock: Wall time.
    """

    def __init__(
        self, store: MonitoringStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    async def clear(self, key: ModelKey, *, actor: str, reason: str) -> ModelRecord:
        """Clear ``key``'s escalation; audited (`MODEL_CLEARED`) with the reason.

        Raises:
            InvalidInput: No reason (named ``reason``).
            NotFound: No such model version in the inventory.
            FailedPrecondition: The version is not escalated.
        """
        reason = reason.strip()
        if not reason:
            raise InvalidInput("reason", "a justification is required to clear an escalation")
        if len(reason) > MAX_REASON:
            raise InvalidInput("reason", f"at most {MAX_REASON} characters")
        record = await self._store.get_model(key)
        if record is None:
            raise NotFound("model", str(key))
        if not record.escalated:
            raise FailedPrecondition(f"model {key} is not escalated")
        now = self._clock()
        payload: JSONObject = {
            "backend": key.backend,
            "name": key.name,
            "version": key.version,
            "reason": reason,
            "escalation_reason": record.escalation_reason,
            "escalated_at": None if record.escalated_at is None else format_ts(record.escalated_at),
        }
        event = audit_event(EventType.MODEL_CLEARED, "", actor, payload, ts=now)
        not_before = bucket(format_ts(now + timedelta(hours=1)))
        if not await self._store.clear_model_escalation(key, [*RATES, PSI], not_before, event):
            raise FailedPrecondition(f"model {key} is not escalated (cleared meanwhile)")
        log.info("model.cleared", model=str(key), actor=actor)
        metrics.model_escalated((key.backend, key.name, key.version), False)
        cleared = await self._store.get_model(key)
        assert cleared is not None  # it was there a moment ago; models are never deleted
        return cleared
