"""``hitl-gateway audit …``: the auditors' command line.

Works offline on a database file (a copy, or the live file: WAL lets it read while the gateway
writes), offline on a PostgreSQL database (``--store postgresql://…``: the primary, a replica or
a restored backup, read-only), or against a running gateway over gRPC with ``--target`` and an
auditor key. Output is
a table for people, JSON Lines or CSV for tools; ``verify`` exits non-zero and names the first
bad event when anything is off.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from gateway.audit.checkpoints import (
    KEY_FILE,
    Checkpoint,
    CheckpointError,
    load_public_key,
    public_key_pem,
)
from gateway.audit.query import EventFilter
from gateway.audit.records import checkpoint_record, load_checkpoint, write_events
from gateway.cli_policy_audit import cmd_policy, policy_line
from gateway.config import Settings
from gateway.errors import InvalidInput
from gateway.keys import configured_public_key
from gateway.store.trail import TrailReader, open_trail

if TYPE_CHECKING:
    pass


def _ts_arg(name: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: expected an ISO date or time such as 2025-01-31 or "
                f"2025-01-31T08:00:00Z, got {text!r}"
            ) from None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)

    return parse


# --- sources: a database file, a PostgreSQL database, or a running gateway -------------------


def _source(args: argparse.Namespace, db: Path | str) -> TrailReader:
    if args.target and not isinstance(db, str):
        key = args.key or os.environ.get("HITL_AUDIT_KEY", "")
        if not key:
            raise InvalidInput(
                "--key", "an auditor key is needed with --target (or HITL_AUDIT_KEY)"
            )
        from gateway.client_audit import RemoteTrailReader  # loads gRPC only when used

        return RemoteTrailReader(args.target, key)
    return open_trail(db)


def _run(fn: Callable[[], int]) -> int:
    import grpc

    try:
        return fn()
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)  # names the field
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


# --- commands --------------------------------------------------------------------------------


def cmd_query(args: argparse.Namespace, db: Path | str) -> int:
    flt = EventFilter(
        since=args.since,
        until=args.until,
        application=args.app or "",
        tier=args.tier or "",
        decision_id=args.decision or "",
        subject_ref=args.subject or "",
        actor=args.actor or "",
        type=args.type or "",
        outcome=(args.outcome or "").upper(),
        newest_first=not args.oldest_first,
    )

    def run() -> int:
        if args.limit < 0:
            raise InvalidInput("--limit", "must not be negative")
        write_events(_source(args, db).query(flt, args.limit), args.format, sys.stdout)
        return 0

    return _run(run)


def cmd_trail(args: argparse.Namespace, db: Path | str) -> int:
    def run() -> int:
        source = _source(args, db)
        events = source.trail(args.decision_id)
        if not events:
            print(f"error: no events for decision {args.decision_id!r}", file=sys.stderr)
            return 1
        write_events(events, args.format, sys.stdout)
        if args.format == "table" and (line := policy_line(events, source)) is not None:
            print(line)  # the rules it was decided under (`audit policy`)
        return 0

    return _run(run)


def cmd_export(args: argparse.Namespace, db: Path | str) -> int:
    def run() -> int:
        if args.from_seq < 0 or args.to_seq < 0 or (args.to_seq and args.to_seq < args.from_seq):
            raise InvalidInput("--to", "the seq range is empty or inverted")
        events = _source(args, db).export(max(args.from_seq, 1), args.to_seq or None)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = write_events(events, args.format, out)
        else:
            n = write_events(events, args.format, sys.stdout)
        print(f"exported {n} events", file=sys.stderr)
        return 0

    return _run(run)


def cmd_verify(args: argparse.Namespace, db: Path | str, settings: Settings) -> int:
    try:
        trail = open_trail(db)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    public_key = None
    key_source = str(args.public_key)
    if args.public_key:
        try:
            public_key = load_public_key(args.public_key.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"error: --public-key: {exc}", file=sys.stderr)
            return 2
    else:
        # No key given: the one this data directory's gateway signs with, named in the report,
        # so a mismatch is never mistaken for a key the auditor chose.
        public_key = configured_public_key(settings)
        key_source = (
            "the audit_signing_key setting"
            if settings.audit_signing_key.strip()
            else str(settings.data_dir / KEY_FILE)
        )
    extra: tuple[Checkpoint, ...] = ()
    if args.checkpoint:
        try:
            extra = (load_checkpoint(args.checkpoint),)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"error: --checkpoint: cannot read {args.checkpoint}: {exc}", file=sys.stderr)
            return 2
        if public_key is None:
            print("error: --checkpoint needs --public-key to check it", file=sys.stderr)
            return 2
    try:
        report = trail.verify(public_key, extra)
    except CheckpointError as exc:
        used = "" if args.public_key else f" (public key of {key_source})"
        print(f"FAILED: {exc}{used}", file=sys.stderr)
        return 1
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)  # names the field
        return 2
    r = report.result
    if not r.ok:
        print(f"FAILED at event {r.first_bad_seq}: {r.reason}", file=sys.stderr)
        return 1
    signed = (
        f", {report.checkpoints_checked} signed checkpoints checked"
        if public_key is not None
        else " (checkpoints not checked: no --public-key)"
    )
    print(f"ok: {r.checked} events verified{signed}; head seq {r.head_seq} {r.head_hash}")
    return 0


def cmd_erase(args: argparse.Namespace, db: Path | str) -> int:
    from gateway.store.sqlite.audit import erase_payloads

    if args.target:
        return _run(lambda: _erase_online(args))
    if isinstance(db, str):  # a PostgreSQL URL: no file form there
        print(
            "error: --target: on PostgreSQL, erase through a running gateway "
            "(--target with an admin key)",
            file=sys.stderr,
        )
        return 2
    if args.reason:
        print("error: --reason: only recorded by an erasure through --target", file=sys.stderr)
        return 2
    if args.before is None and not args.subject:
        print("error: erase needs --before DATE or --subject REF", file=sys.stderr)
        return 2
    if not db.exists():
        print(f"error: no database at {db}", file=sys.stderr)
        return 2
    n = erase_payloads(db, before=args.before, subject_ref=args.subject or "")
    print(f"erased {n} payloads (the chain still verifies through their digests)")
    if args.subject:
        from gateway.store.sqlite.erasure import erase_subject_inputs

        m = erase_subject_inputs(db, args.subject)
        print(f"erased the stored input of {m} decisions about the subject")
    return 0


def _erase_online(args: argparse.Namespace) -> int:
    """A data subject's erasure through a running gateway (AdminService), audited there."""
    import grpc
    from opentelemetry import propagate

    from gateway._pb.hitl.admin.v1 import admin_pb2, admin_pb2_grpc
    from gateway.telemetry.tracing import command_span

    if args.before is not None:
        raise InvalidInput("--before", "payload retention runs on the file (--db), not --target")
    if not args.subject:
        raise InvalidInput("--subject", "the subject reference to erase is required")
    key = args.key or os.environ.get("HITL_ADMIN_KEY", "")
    if not key:
        raise InvalidInput("--key", "an admin key is needed with --target (or HITL_ADMIN_KEY)")
    # The command's trace (or the TRACEPARENT it was given) goes with the call, so the gateway
    # records the erasure under the trace of whoever asked for it.
    with command_span("audit erase"), grpc.insecure_channel(args.target) as channel:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        request = admin_pb2.EraseSubjectRequest(subject_ref=args.subject, reason=args.reason or "")
        metadata = (("authorization", f"Bearer {key}"), *carrier.items())
        resp = stub.EraseSubject(request, metadata=metadata)
    print(
        f"erased the stored input of {resp.decisions_erased} decisions and "
        f"{resp.events_erased} event payloads; recorded as a subject.erased event"
    )
    return 0


def cmd_public_key(args: argparse.Namespace, settings: Settings) -> int:
    public_key = configured_public_key(settings)
    if public_key is None:
        print(
            f"error: no audit_signing_key set and no signing key at "
            f"{settings.data_dir / KEY_FILE}; it is created when the gateway first starts",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(public_key_pem(public_key))
    return 0


def cmd_checkpoint(args: argparse.Namespace, db: Path | str) -> int:
    try:
        cp = open_trail(db).latest_checkpoint()
    except (InvalidInput, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # names the field
        return 2
    if cp is None:
        print("error: no checkpoint yet", file=sys.stderr)
        return 1
    print(orjson.dumps(checkpoint_record(cp)).decode())
    return 0


# --- parser ----------------------------------------------------------------------------------


def add_audit_parser(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    paths: Callable[[argparse.Namespace], tuple[Path, Path]],
    settings: Callable[[argparse.Namespace], Settings],
) -> None:
    """Add ``audit …`` to the top-level parser; ``paths(args)`` gives (db, data dir)."""

    def located(a: argparse.Namespace) -> Path | str:
        """The database file, or the URL when the store is PostgreSQL and neither --db nor
        --target names another source."""
        from gateway.store import is_postgres_url

        if not getattr(a, "db", None) and not getattr(a, "target", None):
            url = settings(a).store_url
            if is_postgres_url(url):
                return url.strip()
        return paths(a)[0]

    def keyed(a: argparse.Namespace) -> Settings:
        """Settings whose data directory is that of the file read: a file named with --db is
        checked with the keys beside it, never with those of whatever ./var is nearby."""
        if getattr(a, "db", None) is None:
            return settings(a)
        return replace(settings(a), data_dir=paths(a)[1])

    audit = sub.add_parser("audit", help="audit trail").add_subparsers(
        dest="audit_command", required=True
    )

    def db_args(p: argparse.ArgumentParser, remote: bool) -> None:
        common(p)
        p.add_argument("--db", type=Path, help="database file (default <data-dir>/gateway.db)")
        if remote:
            p.add_argument("--target", help="a running gateway's gRPC address instead of --db")
            p.add_argument("--key", help="auditor API key for --target (or HITL_AUDIT_KEY)")

    def fmt(p: argparse.ArgumentParser, default: str = "table") -> None:
        p.add_argument("--format", choices=("table", "jsonl", "csv"), default=default)

    p = audit.add_parser("query", help="search events")
    db_args(p, True)
    fmt(p)
    p.add_argument("--since", type=_ts_arg("--since"), help="events at or after (ISO time)")
    p.add_argument("--until", type=_ts_arg("--until"), help="events before (ISO time)")
    p.add_argument("--app", help="application")
    p.add_argument("--tier")
    p.add_argument("--decision", help="decision id")
    p.add_argument("--subject", help="subject reference")
    p.add_argument("--actor", help="e.g. app:<key id>, user:<name>, system")
    p.add_argument("--type", help="event type, e.g. decision.reviewed")
    p.add_argument("--outcome", help="decision status, e.g. APPROVED")
    p.add_argument("--oldest-first", action="store_true")
    p.add_argument("--limit", type=int, default=100, help="most events to print; 0 for all")
    p.set_defaults(func=lambda a: cmd_query(a, located(a)))

    p = audit.add_parser("trail", help="every event of one decision, in order")
    db_args(p, True)
    fmt(p)
    p.add_argument("decision_id")
    p.set_defaults(func=lambda a: cmd_trail(a, located(a)))

    p = audit.add_parser("policy", help="print the policy files of a version (by digest)")
    db_args(p, True)
    p.add_argument("digest", help="sha256:<hex>, a decision's policy_version")
    p.add_argument("--file", help="print only this file's exact text")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=lambda a: _run(lambda: cmd_policy(a, lambda: _source(a, located(a)))))

    p = audit.add_parser("export", help="stream events of a seq range")
    db_args(p, True)
    fmt(p, "jsonl")
    p.add_argument("--from", dest="from_seq", type=int, default=1, help="first seq")
    p.add_argument("--to", dest="to_seq", type=int, default=0, help="last seq (0: the head)")
    p.add_argument("--output", type=Path, help="file to write (default stdout)")
    p.set_defaults(func=lambda a: cmd_export(a, located(a)))

    p = audit.add_parser(
        "verify",
        help="verify the hash chain and signed checkpoints (offline: --db FILE or --store URL)",
    )
    db_args(p, False)
    p.add_argument("--public-key", type=Path, help="PEM from `audit public-key`")
    p.add_argument("--checkpoint", type=Path, help="a checkpoint saved by `audit checkpoint`")
    p.set_defaults(func=lambda a: cmd_verify(a, located(a), keyed(a)))

    p = audit.add_parser("erase", help="erase payloads (the chain keeps their digests)")
    common(p)
    p.add_argument("--db", type=Path, help="database file (default <data-dir>/gateway.db)")
    p.add_argument("--target", help="a running gateway's gRPC address: audited subject erasure")
    p.add_argument("--key", help="admin API key for --target (or HITL_ADMIN_KEY)")
    p.add_argument("--before", type=_ts_arg("--before"), help="events older than (ISO time)")
    p.add_argument(
        "--subject", help="events and stored inputs of decisions about this subject reference"
    )
    p.add_argument("--reason", help="with --target: the erasure request's reference (required)")
    p.set_defaults(func=lambda a: cmd_erase(a, located(a)))

    p = audit.add_parser("public-key", help="print the checkpoint signing public key (PEM)")
    common(p)
    p.set_defaults(func=lambda a: cmd_public_key(a, settings(a)))

    p = audit.add_parser("checkpoint", help="print the latest signed checkpoint (JSON)")
    db_args(p, False)
    p.set_defaults(func=lambda a: cmd_checkpoint(a, located(a)))

    from gateway.cli_evidence import add_evidence_commands

    add_evidence_commands(audit, db_args, located, keyed)
