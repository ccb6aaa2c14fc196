"""``hitl-gateway audit prove | consistency | evidence | check-evidence``: Merkle proofs and
evidence packs, offline on a database file (``--db``) or a PostgreSQL database (``--store``,
read-only, in one snapshot), as ``audit verify`` reads them.

``check-evidence`` needs no database at all: a pack and the audit public key (and the time-stamp
authority's CA certificate for the token) are enough. It exits 1 and names every part that fails.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from gateway.audit import evidence_check
from gateway.audit.checkpoints import Checkpoint, load_public_key
from gateway.audit.merkle import ProofError
from gateway.audit.query import AuditLog
from gateway.audit.records import checkpoint_record
from gateway.audit.service import AuditTrail
from gateway.config import Settings
from gateway.errors import InvalidInput, NotFound

T = TypeVar("T")


def _on_log(db: Path | str, fn: Callable[[AuditLog], Awaitable[T]]) -> T:
    """``fn`` awaited on the audit trail of the file ``db`` or the PostgreSQL URL ``db``."""
    if isinstance(db, str):
        from gateway.store.postgres.offline import on_snapshot

        return on_snapshot(db, fn)
    from gateway.store.sqlite.audit import SQLiteAuditLog

    if not db.exists():
        raise FileNotFoundError(f"no database at {db}")
    log = SQLiteAuditLog(db)

    async def call() -> T:
        return await fn(log)

    return asyncio.run(call())


def _checkpoint_doc(cp: Checkpoint) -> dict[str, Any]:
    return {**checkpoint_record(cp), "tree_root": cp.tree_root}


def _guard(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except (InvalidInput, NotFound, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # names the field
        return 2
    except ProofError as exc:  # the stored tree does not lead to the signed root
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1


def cmd_prove(args: argparse.Namespace, db: Path | str) -> int:
    async def prove(log: AuditLog) -> dict[str, Any]:
        proof, cp = await AuditTrail(log).prove(args.event_seq, args.checkpoint)
        return {"inclusion": proof.record(), "checkpoint": _checkpoint_doc(cp)}

    def run() -> int:
        print(orjson.dumps(_on_log(db, prove), option=orjson.OPT_INDENT_2).decode())
        return 0

    return _guard(run)


def cmd_consistency(args: argparse.Namespace, db: Path | str) -> int:
    async def prove(log: AuditLog) -> dict[str, Any]:
        proof, old, new = await AuditTrail(log).consistency(args.old, args.new)
        return {
            "consistency": proof.record(),
            "old_checkpoint": _checkpoint_doc(old),
            "new_checkpoint": _checkpoint_doc(new),
        }

    def run() -> int:
        print(orjson.dumps(_on_log(db, prove), option=orjson.OPT_INDENT_2).decode())
        return 0

    return _guard(run)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user without a name
        return f"cli:uid-{os.getuid()}"


async def _record(location: Path | str, draft: Any) -> None:
    """Append one audit event through the store at ``location`` (read-write, briefly)."""
    from gateway.store import open_store

    store = open_store(str(location))
    await store.start()
    try:
        await store.append_event(draft)
    finally:
        await store.stop()


def cmd_evidence(args: argparse.Namespace, db: Path | str, settings: Settings) -> int:
    def run() -> int:
        record = opener = None
        if args.with_personal_data:
            from gateway.core.vault import Vault, VaultError

            try:
                vault = Vault.load(settings.data_dir, settings.data_key)
            except VaultError as exc:
                raise InvalidInput("data_key", str(exc)) from None

            def record(draft: Any) -> Awaitable[None]:
                return _record(db, draft)

            def opener(d: Any, paths: tuple[str, ...]) -> Any:
                return vault.open(d.input, paths, d.id)

        async def make(log: AuditLog) -> dict[str, Any]:
            trail = AuditTrail(log, record=record, opener=opener)
            pack = await trail.evidence(
                args.decision_id, _actor(), with_personal_data=args.with_personal_data
            )
            return pack.doc

        if args.with_personal_data:
            # Recorded first, through the store, then read: the snapshot below sees it.
            from gateway.telemetry.tracing import command_span

            with command_span("audit evidence"):
                doc = _on_log(db, make)
        else:
            doc = _on_log(db, make)
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        if args.output:
            args.output.write_bytes(data)
        else:
            sys.stdout.buffer.write(data + b"\n")
        n = len(doc["events"])
        print(
            f"evidence of decision {args.decision_id}: {n} events proven against checkpoint "
            f"{doc['checkpoint']['seq']}"
            + (" (with personal data, recorded in the trail)" if args.with_personal_data else ""),
            file=sys.stderr,
        )
        return 0

    return _guard(run)


def cmd_check_evidence(args: argparse.Namespace) -> int:
    from gateway.audit.timestamps import load_certificates

    try:
        pack = orjson.loads(args.pack.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"error: {args.pack}: cannot read the pack: {exc}", file=sys.stderr)
        return 2
    try:
        public_key = load_public_key(args.public_key.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"error: --public-key: {exc}", file=sys.stderr)
        return 2
    roots = []
    if args.tsa_ca:
        try:
            roots = load_certificates(args.tsa_ca.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"error: --tsa-ca: {exc}", file=sys.stderr)
            return 2
    report = evidence_check.check(pack, public_key, roots)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if not report.ok:
        for failure in report.failures:
            print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print(
        f"ok: decision {pack['decision_id']}: {report.events} events proven against signed "
        f"checkpoint {pack['checkpoint']['seq']}"
    )
    return 0


def add_evidence_commands(
    audit: Any,
    db_args: Callable[[argparse.ArgumentParser, bool], None],
    located: Callable[[argparse.Namespace], Path | str],
    keyed: Callable[[argparse.Namespace], Settings],
) -> None:
    """Add the proof and evidence commands to ``audit``'s subparsers."""
    p = audit.add_parser("prove", help="inclusion proof of one event against a checkpoint")
    db_args(p, False)
    p.add_argument("event_seq", type=int, help="seq of the event to prove")
    p.add_argument(
        "--checkpoint", type=int, default=0, help="seq of the checkpoint (default: the newest)"
    )
    p.set_defaults(func=lambda a: cmd_prove(a, located(a)))

    p = audit.add_parser("consistency", help="proof that a later checkpoint extends an earlier")
    db_args(p, False)
    p.add_argument("old", type=int, help="seq of the earlier checkpoint")
    p.add_argument("new", type=int, help="seq of the later checkpoint")
    p.set_defaults(func=lambda a: cmd_consistency(a, located(a)))

    p = audit.add_parser("evidence", help="one decision's evidence pack, checkable offline")
    db_args(p, False)
    p.add_argument("decision_id")
    p.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    p.add_argument(
        "--with-personal-data",
        action="store_true",
        help="open the sealed input fields with the data key (recorded in the trail)",
    )
    p.set_defaults(func=lambda a: cmd_evidence(a, located(a), keyed(a)))

    p = audit.add_parser("check-evidence", help="check an evidence pack alone, no database")
    p.add_argument("pack", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help="PEM of `audit public-key`")
    p.add_argument("--tsa-ca", type=Path, help="PEM CA certificate(s) of the time-stamp authority")
    p.set_defaults(func=cmd_check_evidence)
