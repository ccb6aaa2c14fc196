"""Audit events and checkpoints as flat records: what the ``audit`` CLI prints and reads back
(a table for people, JSON Lines or CSV for tools, a checkpoint as JSON)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.audit.chain import canonical_json
from gateway.audit.checkpoints import Checkpoint
from gateway.timefmt import format_ts
from gateway.types import AuditEvent

_COLUMNS = ("seq", "ts", "decision_id", "type", "actor", "trace_id", "span_id", "payload_digest")


def event_record(ev: AuditEvent) -> dict[str, Any]:
    """One event as a flat JSON-able record (what JSON Lines and CSV print)."""
    return {
        "seq": ev.seq,
        "ts": format_ts(ev.ts),
        "decision_id": ev.decision_id,
        "type": ev.type,
        "actor": ev.actor,
        "trace_id": ev.trace_id,
        "span_id": ev.span_id,
        "payload_digest": ev.payload_digest,
        "payload": ev.payload,
        "payload_erased": ev.payload is None,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def write_events(events: Iterable[AuditEvent], fmt: str, out: TextIO) -> int:
    """Write events as ``table``, ``jsonl`` or ``csv``, streaming; returns how many."""
    n = 0
    if fmt == "jsonl":
        for ev in events:
            out.write(orjson.dumps(event_record(ev)).decode() + "\n")
            n += 1
        return n
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow([*_COLUMNS, "payload"])
        for ev in events:
            rec = event_record(ev)
            payload = "" if ev.payload is None else canonical_json(ev.payload).decode()
            w.writerow([*(rec[c] for c in _COLUMNS), payload])
            n += 1
        return n
    widths = (7, 27, 28, 18, 18, 32)
    header = _COLUMNS[:6]
    out.write("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip() + "\n")
    for ev in events:
        rec = event_record(ev)
        cells = [str(rec[c]).ljust(w) for c, w in zip(header, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")
        n += 1
    return n


def load_checkpoint(path: Path) -> Checkpoint:
    doc = orjson.loads(path.read_bytes())
    return Checkpoint(
        seq=int(doc["seq"]),
        hash=str(doc["hash"]),
        signed_at=str(doc["signed_at"]),
        key_id=str(doc["key_id"]),
        signature=bytes.fromhex(doc["signature"]),
        signed=bytes.fromhex(doc["signed"]),
    )


def checkpoint_record(cp: Checkpoint) -> dict[str, Any]:
    return {
        "seq": cp.seq,
        "hash": cp.hash,
        "signed_at": cp.signed_at,
        "key_id": cp.key_id,
        "signature": cp.signature.hex(),
        "signed": cp.signed.hex(),
    }
