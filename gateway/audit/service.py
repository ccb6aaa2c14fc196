"""What auditors can ask of the audit trail, whatever the transport (gRPC, CLI, web pages)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.audit.chain import GENESIS
from gateway.audit.checkpoints import Checkpoint, CheckpointError
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
from gateway.audit.verifier import verify_events
from gateway.errors import InvalidInput, NotFound
from gateway.types import AuditEvent


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    """One event of a trail with the result of checking it where it sits in the chain."""

    event: AuditEvent
    problem: str
    """Empty when the event's hash, columns, payload and link to the event before it agree."""


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The whole chain checked, with the newest signed checkpoint."""

    report: ChainReport | None
    """None when a checkpoint signature did not verify (see ``problem``)."""
    checkpoint: Checkpoint | None
    problem: str
    """Why the chain cannot be trusted, in words; empty when it verified."""


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

    async def checked_trail(self, decision_id: str) -> list[CheckedEvent]:
        """`trail`, each event checked against its own stored bytes and its predecessor.

        A trail's events are scattered along the chain, so each is checked on its own: the
        event before it is read to confirm the link (a whole-chain run is `chain_status`).
        """
        checked = []
        for ev in await self.trail(decision_id):
            prev_hash = GENESIS
            problem = ""
            if ev.seq > 1:
                before = [p async for p in self._log.export(ev.seq - 1, ev.seq - 1)]
                if before:
                    prev_hash = before[0].hash
                else:
                    problem = f"seq {ev.seq - 1}, the event before this one, is missing"
            if not problem:
                problem = verify_events([ev], start_prev_hash=prev_hash, start_seq=ev.seq).reason
            checked.append(CheckedEvent(ev, problem))
        return checked

    async def chain_status(self) -> ChainStatus:
        """Verify the whole chain and every signed checkpoint; never raises for bad data."""
        cp = await self._log.latest_checkpoint()
        try:
            report = await self.verify()
        except CheckpointError as exc:
            return ChainStatus(None, cp, str(exc))
        return ChainStatus(report, cp, report.result.reason)
