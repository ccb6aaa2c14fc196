"""Evidence packs: one decision's record and trail, each event proven into a signed tree head,
checkable alone with the public key (`gateway.audit.evidence_check`).

A regulator asking about one decision receives that decision and nothing else: its record, its
events with their canonical bytes and an inclusion proof each against the newest checkpoint,
that checkpoint with its signature and time-stamp token, the policy texts in force and the
model's inventory record. No other decision's data is in the pack, and no database is needed
to check it.

Personal data: the sensitive fields of the input are sealed in the store and masked ("***") in
the trail, which auditors read. A pack shows them as the trail does, unless it is asked for
with personal data, which the caller records as a `EventType.EVIDENCE_PERSONAL_DATA` event
before the pack is made; the sealed values are then opened with the data key by ``opener``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.audit.checkpoints import Checkpoint
from gateway.audit.proofs import ProofLog, Proofs
from gateway.audit.records import checkpoint_record
from gateway.audit.timestamps import TimeStamp
from gateway.errors import InvalidInput, NotFound
from gateway.policy.versions import PolicyVersion
from gateway.timefmt import format_ts
from gateway.types import AuditEvent, Decision, JSONObject

FORMAT = "hitl-evidence/1"
MASK = "***"
"""What a masked field reads in the trail (`gateway.core.masking.MASK`)."""
SEALED = "$sealed"
"""Key of a sealed value in a stored input (`gateway.core.vault.SEALED`)."""


class EvidenceLog(ProofLog, Protocol):
    """What a pack is read from: a store's audit trail and the records it points to."""

    async def trail(self, decision_id: str) -> list[AuditEvent]: ...

    async def decision(self, decision_id: str) -> Decision | None: ...

    async def policy_version(self, digest: str) -> PolicyVersion | None: ...

    async def model_record(
        self, backend: str, name: str, version: str
    ) -> dict[str, Any] | None: ...

    async def timestamp(self, seq: int) -> TimeStamp | None: ...


Opener = Callable[[Decision, tuple[str, ...]], JSONObject]
"""Opens the sealed fields (dotted paths) of a decision's stored input with the data key."""


@dataclass(frozen=True, slots=True)
class Pack:
    """An evidence pack as JSON-able data, and whether it holds personal data."""

    doc: dict[str, Any]
    personal_data: bool


def sealed_paths(data: Any, prefix: str = "") -> tuple[str, ...]:
    """Dotted paths of the sealed values in a stored input."""
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and SEALED in value:
                out.append(path)
            else:
                out.extend(sealed_paths(value, path + "."))
    return tuple(out)


def masked(data: Any) -> Any:
    """``data`` with every sealed value shown as the trail shows it: ``***``."""
    if isinstance(data, dict):
        if SEALED in data:
            return MASK
        return {k: masked(v) for k, v in data.items()}
    if isinstance(data, list):
        return [masked(v) for v in data]
    return data


def decision_record(d: Decision, input_: JSONObject) -> dict[str, Any]:
    """The decision's fields the trail records (checked against its ``decision.created``)."""
    model = d.model
    return {
        "id": d.id,
        "application": d.application,
        "tier": d.tier,
        "status": d.status.value,
        "rule": d.rule,
        "reasons": list(d.reasons),
        "policy_version": d.policy_version,
        "model": None
        if model is None
        else {"backend": model.backend, "name": model.name, "version": model.version},
        "subject_ref": d.subject_ref,
        "requested_by": d.requested_by,
        "input": input_,
        "model_output": d.model_output,
        "final_output": d.final_output,
        "labels": d.labels,
        "created_at": format_ts(d.created_at),
        "trace_id": d.trace_id,
    }


def event_entry(ev: AuditEvent, proof: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        "ts": format_ts(ev.ts),
        "decision_id": ev.decision_id,
        "type": ev.type,
        "actor": ev.actor,
        "payload_digest": ev.payload_digest,
        "trace_id": ev.trace_id,
        "span_id": ev.span_id,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
        "canonical": ev.canonical.decode("utf-8"),
        "payload": ev.payload,
        "proof": proof,
    }


def stamp_record(stamp: TimeStamp | None) -> dict[str, Any] | None:
    if stamp is None:
        return None
    return {
        "token": base64.b64encode(stamp.token).decode(),
        "tsa_url": stamp.tsa_url,
        "stamped_at": stamp.stamped_at,
    }


def policy_record(pv: PolicyVersion | None) -> dict[str, Any] | None:
    if pv is None:
        return None
    return {
        "digest": pv.digest,
        "files": [[name, text] for name, text in pv.files],
        "source": pv.source,
        "loaded_at": format_ts(pv.loaded_at),
        "loaded_by": pv.loaded_by,
    }


async def build(log: EvidenceLog, decision_id: str, opener: Opener | None = None) -> Pack:
    """The evidence pack of ``decision_id`` against the newest checkpoint.

    Args:
        log: The store's audit trail.
        decision_id: The decision.
        opener: Given only when personal data was asked for (and recorded): opens the sealed
            input fields. Without it they stay masked, as in the trail.

    Raises:
        InvalidInput: ``decision_id`` empty, or the newest checkpoint does not cover the trail
            yet (or signs no tree root).
        NotFound: No such decision, or no checkpoint yet.
    """
    if not decision_id:
        raise InvalidInput("decision_id", "required")
    decision = await log.decision(decision_id)
    if decision is None:
        raise NotFound("decision", decision_id)
    events = await log.trail(decision_id)
    proofs = Proofs(log)
    cp: Checkpoint = await proofs.checkpoint(0, "checkpoint_seq")
    if not events or events[0].seq > cp.seq:
        raise InvalidInput(
            "decision_id",
            f"the decision's events are not checkpointed yet (newest checkpoint {cp.seq}); "
            "ask again after the next checkpoint",
        )
    # Events after the checkpoint (this very request's record of personal data, say) cannot be
    # proven yet: the pack names them, and a later pack proves them.
    later = [ev.seq for ev in events if ev.seq > cp.seq]
    entries = []
    for ev in (e for e in events if e.seq <= cp.seq):
        proof, _ = await proofs.inclusion(ev.seq, cp.seq)
        entries.append(event_entry(ev, proof.record()))
    paths = sealed_paths(decision.input)
    input_ = opener(decision, paths) if opener is not None and paths else masked(decision.input)
    model = decision.model
    model_doc = (
        None if model is None else await log.model_record(model.backend, model.name, model.version)
    )
    pv = await log.policy_version(decision.policy_version) if decision.policy_version else None
    doc: dict[str, Any] = {
        "format": FORMAT,
        "decision_id": decision.id,
        "personal_data": opener is not None,
        "decision": decision_record(decision, input_),
        "events": entries,
        "events_after_checkpoint": later,
        "checkpoint": {**checkpoint_record(cp), "tree_root": cp.tree_root},
        "timestamp": stamp_record(await log.timestamp(cp.seq)),
        "policy_version": policy_record(pv),
        "model": model_doc,
    }
    return Pack(doc, opener is not None)
