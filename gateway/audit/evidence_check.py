"""Check an evidence pack alone: no database, only the audit public key (and, for its time-stamp
token, the authority's CA certificates).

What is proven, and how:

- the checkpoint: its Ed25519 signature over its chain head and Merkle root;
- the time-stamp token: an RFC 3161 token over that checkpoint, by an authority chaining to the
  given CA certificates;
- each event: its fields equal its canonical bytes, its hash chains them after ``prev_hash``, its
  payload (when present) matches the digest the canonical bytes hold, and an inclusion proof
  leads from the hash of those bytes to the signed root;
- the decision record: every field agrees with what its ``decision.created`` event recorded,
  and its status and final output with the events after it;
- the policy texts: they hash to the policy version the decision names.

Every failure names its part ("event 12", "event 12 proof", "decision", "checkpoint signature",
"time-stamp token", "policy version", "model record"), so a reader knows what was altered.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoints as cpmod
from gateway.audit import merkle, timestamps
from gateway.audit.chain import (
    canonical_bytes_text_ts,
    canonical_json,
    chain_hash,
    digest_of_canonical,
)
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.evidence import FORMAT, MASK
from gateway.audit.proofs import InclusionProof
from gateway.policy.versions import digest_of

_CREATED_FIELDS = (
    "application",
    "tier",
    "rule",
    "reasons",
    "policy_version",
    "subject_ref",
    "requested_by",
    "model_output",
    "labels",
)


@dataclass(slots=True)
class Report:
    """What checking a pack found."""

    failures: list[str] = field(default_factory=list)
    """One line per part that failed, naming it."""
    notes: list[str] = field(default_factory=list)
    """What was not checked, and why (no token, no CA given)."""
    events: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, part: str, reason: str) -> None:
        self.failures.append(f"{part}: {reason}")


def _checkpoint(doc: Any) -> Checkpoint:
    return Checkpoint(
        seq=int(doc["seq"]),
        hash=str(doc["hash"]),
        signed_at=str(doc["signed_at"]),
        key_id=str(doc["key_id"]),
        signature=bytes.fromhex(doc["signature"]),
        signed=bytes.fromhex(doc["signed"]),
    )


def check(
    pack: Any, public_key: Ed25519PublicKey, tsa_roots: Sequence[x509.Certificate] = ()
) -> Report:
    """Check a parsed pack; never raises for bad content (it is reported, by part)."""
    report = Report()
    if not isinstance(pack, dict) or pack.get("format") != FORMAT:
        report.fail("pack", f"not an evidence pack of format {FORMAT}")
        return report
    root = _check_checkpoint(pack, public_key, tsa_roots, report)
    decision_id = pack.get("decision_id")
    events = pack.get("events")
    if not isinstance(events, list) or not events:
        report.fail("events", "the pack holds no events")
        return report
    for i, ev in enumerate(events):
        _check_event(ev, i, decision_id, root, report)
    report.events = len(events)
    personal = pack.get("personal_data") is True
    _check_decision(pack.get("decision"), decision_id, events, personal, report)
    _check_policy(pack.get("policy_version"), pack.get("decision"), report)
    _check_model(pack.get("model"), pack.get("decision"), report)
    return report


def _check_checkpoint(
    pack: dict[str, Any],
    public_key: Ed25519PublicKey,
    tsa_roots: Sequence[x509.Certificate],
    report: Report,
) -> tuple[int, bytes] | None:
    """The signed ``(tree size, root)``, or None (reported) when the checkpoint fails."""
    try:
        cp = _checkpoint(pack["checkpoint"])
    except (KeyError, TypeError, ValueError) as exc:
        report.fail("checkpoint", f"malformed: {exc}")
        return None
    try:
        cpmod.check(cp, public_key)
    except cpmod.CheckpointError as exc:
        report.fail("checkpoint signature", exc.reason)
        return None
    if cp.tree_root is None:
        report.fail("checkpoint", "signs no Merkle root (a version 1 checkpoint)")
        return None
    _check_token(pack.get("timestamp"), cp, tsa_roots, report)
    return cp.seq, bytes.fromhex(cp.tree_root)


def _check_token(
    doc: Any, cp: Checkpoint, roots: Sequence[x509.Certificate], report: Report
) -> None:
    if doc is None:
        report.notes.append("time-stamp token: none in the pack (no authority configured)")
        return
    try:
        token = base64.b64decode(doc["token"], validate=True)
        stamp = timestamps.TimeStamp(cp.seq, token, str(doc["tsa_url"]), str(doc["stamped_at"]))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        report.fail("time-stamp token", f"malformed: {exc}")
        return
    if not roots:
        report.notes.append("time-stamp token: not checked (no --tsa-ca given)")
        return
    try:
        at = timestamps.check(stamp, cp, roots)
    except timestamps.TimeStampError as exc:
        report.fail("time-stamp token", str(exc))
        return
    report.notes.append(f"time-stamp token: checkpoint {cp.seq} existed at {at.isoformat()}")


def _check_event(
    ev: Any, i: int, decision_id: Any, signed: tuple[int, bytes] | None, report: Report
) -> None:
    part = f"event {ev.get('seq', f'#{i + 1}') if isinstance(ev, dict) else f'#{i + 1}'}"
    try:
        seq = ev["seq"]
        canonical = str(ev["canonical"]).encode("utf-8")
        rebuilt = canonical_bytes_text_ts(
            seq,
            ev["ts"],
            ev["decision_id"],
            ev["type"],
            ev["actor"],
            ev["payload_digest"],
            ev["trace_id"],
            ev["span_id"],
        )
        if rebuilt != canonical:
            report.fail(part, "its fields do not match its canonical bytes")
        if chain_hash(str(ev["prev_hash"]), canonical) != ev["hash"]:
            report.fail(part, "its hash is not sha256(prev_hash || canonical bytes)")
        payload = ev.get("payload")
        if (
            payload is not None
            and digest_of_canonical(canonical_json(payload)) != ev["payload_digest"]
        ):
            report.fail(part, "its payload does not match the digest its canonical bytes hold")
        if ev["decision_id"] != decision_id:
            report.fail(part, f"belongs to decision {ev['decision_id']!r}, not {decision_id!r}")
    except (KeyError, TypeError, ValueError) as exc:
        report.fail(part, f"malformed: {exc}")
        return
    if signed is None:
        return  # the checkpoint failed (reported): there is no root to prove against
    try:
        proof = InclusionProof.from_record(ev["proof"])
    except (KeyError, TypeError, ValueError) as exc:
        report.fail(f"{part} proof", f"malformed: {exc}")
        return
    size, root = signed
    if proof.seq != seq:
        report.fail(f"{part} proof", f"proves event {proof.seq}, not {seq}")
    elif proof.tree_size != size or proof.root != root:
        report.fail(f"{part} proof", "is not against the signed tree head")
    elif proof.leaf_hash != merkle.leaf_hash(canonical):
        report.fail(f"{part} proof", "its leaf is not the hash of the event's canonical bytes")
    else:
        try:
            proof.check()
        except merkle.ProofError as exc:
            report.fail(f"{part} proof", str(exc))


def _agrees(record: Any, trail: Any, personal: bool) -> bool:
    """``record`` equals the trail's copy, where the trail's masked fields may hold the
    opened personal data when the pack was asked for with it."""
    if personal and trail == MASK:
        return True
    if isinstance(record, dict) and isinstance(trail, dict):
        return record.keys() == trail.keys() and all(
            _agrees(record[k], trail[k], personal) for k in record
        )
    return bool(record == trail)


def _check_decision(
    d: Any, decision_id: Any, events: list[Any], personal: bool, report: Report
) -> None:
    if not isinstance(d, dict):
        report.fail("decision", "missing from the pack")
        return
    if d.get("id") != decision_id:
        report.fail("decision", f"id {d.get('id')!r} is not the pack's {decision_id!r}")
    created = next(
        (e for e in events if isinstance(e, dict) and e.get("type") == "decision.created"), None
    )
    if created is None:
        report.fail("decision", "its trail has no decision.created event")
        return
    if d.get("created_at") != created.get("ts"):
        report.fail("decision", "created_at differs from its decision.created event")
    if d.get("trace_id") != created.get("trace_id"):
        report.fail("decision", "trace_id differs from its decision.created event")
    payload = created.get("payload")
    if not isinstance(payload, dict):
        report.notes.append("decision: its decision.created payload was erased; fields unchecked")
        return
    for name in _CREATED_FIELDS:
        if d.get(name) != payload.get(name):
            report.fail("decision", f"{name} differs from its decision.created event")
    model, recorded = d.get("model"), payload.get("model")
    if (model is None) != (recorded is None) or (
        isinstance(model, dict)
        and isinstance(recorded, dict)
        and any(model.get(k) != recorded.get(k) for k in ("backend", "name", "version"))
    ):
        report.fail("decision", "model differs from its decision.created event")
    if not _agrees(d.get("input"), payload.get("input"), personal):
        report.fail("decision", "input differs from its decision.created event")
    status, final = _outcome(payload, events, d.get("model_output"))
    shown = d.get("status")
    if shown != status and not (status == "PENDING_REVIEW" and shown == "IN_REVIEW"):
        report.fail("decision", f"status {shown} is not what its trail ends in ({status})")
    elif d.get("final_output") != final:
        report.fail("decision", "final_output differs from what its trail records")


def _outcome(created: dict[str, Any], events: list[Any], model_output: Any) -> tuple[Any, Any]:
    """The status and final output the trail ends in (payloads erased: the last known)."""
    status, final = created.get("status"), created.get("final_output")
    for ev in events:
        payload = ev.get("payload") if isinstance(ev, dict) else None
        if not isinstance(payload, dict):
            continue
        if ev.get("type") == "decision.reviewed" and payload.get("status") != status:
            status = payload.get("status")
            final = {"APPROVED": model_output, "OVERRIDDEN": payload.get("output")}.get(str(status))
        elif ev.get("type") == "decision.expired":
            status, final = "EXPIRED", payload.get("final_output")
    return status, final


def _check_policy(pv: Any, d: Any, report: Report) -> None:
    if pv is None:
        return
    try:
        files = tuple((str(n), str(t)) for n, t in pv["files"])
        if digest_of(files) != pv["digest"]:
            report.fail("policy version", "its texts do not hash to its digest")
        elif isinstance(d, dict) and pv["digest"] != d.get("policy_version"):
            report.fail("policy version", "is not the version the decision names")
    except (KeyError, TypeError, ValueError) as exc:
        report.fail("policy version", f"malformed: {exc}")


def _check_model(record: Any, d: Any, report: Report) -> None:
    if record is None or not isinstance(d, dict):
        return
    model = d.get("model")
    if not isinstance(record, dict) or not isinstance(model, dict):
        report.fail("model record", "does not belong to the decision's model")
        return
    if any(record.get(k) != model.get(k) for k in ("backend", "name", "version")):
        report.fail("model record", "is not the record of the decision's model version")
