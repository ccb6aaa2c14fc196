"""What auditors can ask of the audit trail, whatever the transport (gRPC, CLI, web pages)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from gateway.audit import evidence as evidence_mod
from gateway.audit.chain import GENESIS
from gateway.audit.checkpoints import Checkpoint, CheckpointError
from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.audit.proofs import ConsistencyProof, InclusionProof, Proofs
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
from gateway.types import AuditDraft, AuditEvent


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
    """Validated, paged access to an `AuditLog`, with proofs and evidence packs.

    Args:
        log: The store's audit trail.
        record: Appends an audit event (the store's ``append_event``): evidence packs with
            personal data are recorded through it before they are made.
        opener: Opens sealed input fields with the data key; without it (or ``record``),
            evidence packs cannot hold personal data.
    """

    def __init__(
        self,
        log: AuditLog,
        *,
        record: Callable[[AuditDraft], Awaitable[None]] | None = None,
        opener: evidence_mod.Opener | None = None,
    ) -> None:
        self._log = log
        self._record = record
        self._opener = opener
        self.proofs = Proofs(log)

    async def prove(self, seq: int, checkpoint_seq: int = 0) -> tuple[InclusionProof, Checkpoint]:
        """Inclusion proof of event ``seq`` against checkpoint ``checkpoint_seq`` (0: newest)."""
        return await self.proofs.inclusion(seq, checkpoint_seq)

    async def consistency(
        self, old_seq: int, new_seq: int
    ) -> tuple[ConsistencyProof, Checkpoint, Checkpoint]:
        """Consistency proof between the checkpoints of heads ``old_seq`` and ``new_seq``."""
        return await self.proofs.consistency(old_seq, new_seq)

    async def evidence(
        self, decision_id: str, actor: str, *, with_personal_data: bool = False
    ) -> evidence_mod.Pack:
        """The evidence pack of one decision; with personal data only after recording who
        asked for it (an `EventType.EVIDENCE_PERSONAL_DATA` event by ``actor``).

        Raises:
            InvalidInput: Bad ``decision_id``, a trail not checkpointed yet, or personal data
                asked of a trail that cannot open it.
            NotFound: No such decision, or no checkpoint yet.
        """
        decision_id = limit_text("decision_id", decision_id)
        if not with_personal_data:
            return await evidence_mod.build(self._log, decision_id)
        if self._record is None or self._opener is None:
            raise InvalidInput("with_personal_data", "this trail has no data key to open it")
        # Made once without personal data first: whatever would refuse the pack (no such
        # decision, no checkpoint yet) refuses it before anything is recorded as disclosed.
        await evidence_mod.build(self._log, decision_id)
        decision = await self._log.decision(decision_id)
        if decision is None:
            raise NotFound("decision", decision_id)
        fields = list(evidence_mod.sealed_paths(decision.input))
        await self._record(
            audit_event(EventType.EVIDENCE_PERSONAL_DATA, decision_id, actor, {"fields": fields})
        )
        return await evidence_mod.build(self._log, decision_id, self._opener)

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
