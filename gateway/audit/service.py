"""What auditors can ask of the audit trail, whatever the transport (gRPC, CLI, web pages)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.query import (
    AuditLog,
    ChainReport,
    EventFilter,
    Page,
    decode_token,
    encode_token,
    limit_text,
    page_size,
    seq_range,
)
from gateway.errors import InvalidInput, NotFound
from gateway.types import AuditEvent


class AuditTrail:
    """Validated, paged access to an `AuditLog`."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def query(self, flt: EventFilter, size: int = 0, token: str = "") -> Page:
        """One page of events matching ``flt``; raises `InvalidInput` naming a bad field."""
        flt.validate()
        limit = page_size(size)
        after = decode_token(flt, token)
        # One extra row tells whether another page exists without a second query.
        events = await self._log.query(flt, after, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return Page(events, encode_token(flt, events[-1].seq) if more else "")

    async def trail(self, decision_id: str) -> list[AuditEvent]:
        """Every event of one decision in chain order; `NotFound` when it has none."""
        if not decision_id:
            raise InvalidInput("decision_id", "required")
        events = await self._log.trail(limit_text("decision_id", decision_id))
        if not events:
            raise NotFound("decision", decision_id)
        return events

    async def verify(self, from_seq: int = 0, to_seq: int = 0) -> ChainReport:
        first, last = seq_range(from_seq, to_seq)
        return await self._log.verify(first, last)

    async def export(self, from_seq: int = 0, to_seq: int = 0) -> AsyncIterator[AuditEvent]:
        first, last = seq_range(from_seq, to_seq)
        async for ev in self._log.export(first, last):
            yield ev

    async def checkpoint(self) -> Checkpoint:
        cp = await self._log.latest_checkpoint()
        if cp is None:
            raise NotFound("checkpoint", "latest")
        return cp
