"""``hitl-gateway models register | show | list | validate | approve | suspend | resume | retire |
history``: the model inventory from the command line.

On the data directory's store (opened directly, like ``switch``; a change is recorded as
``cli:<os user>``), or through a running gateway's AdminService with ``--target`` and an admin
key (recorded as that key). Either way the rules are `gateway.modelrisk.inventory`'s: an
approval names the approving person (``--approver``), who may be neither the owner nor the
validator, and every change needs ``--justification``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.cli_target import admin_target, target_options
from gateway.config import Settings
from gateway.core.policy_in_force import stored_in_force
from gateway.errors import GatewayError, InvalidInput
from gateway.modelrisk.fields import parse_key
from gateway.modelrisk.inventory import VERBS
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.telemetry.tracing import command_span
from gateway.timefmt import format_ts

HistoryRow = tuple[int, datetime, str, str, dict[str, object] | None]

_FLAGS = {
    "model": "MODEL",
    "owner": "--owner",
    "intended_use": "--intended-use",
    "max_tier": "--max-tier",
    "documentation_url": "--documentation-url",
    "limitations": "--limitations",
    "justification": "--justification",
    "validator": "--validator",
    "validated_at": "--validated-at",
    "validation_expires_at": "--expires",
    "approver": "--approver",
}
"""The flag the user typed for each field the core names in an error."""


def _time(name: str) -> Callable[[str], datetime]:
    def parse(text: str) -> datetime:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: expected an ISO date or time such as 2027-03-31 or "
                f"2027-03-31T00:00:00Z, got {text!r}"
            ) from None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)

    return parse


# --- one command, on the store or through a gateway ----------------------------------------------


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "owner": args.owner or "",
        "intended_use": args.intended_use or "",
        "max_tier": args.max_tier or "",
        "documentation_url": args.documentation_url or "",
        "limitations": args.limitations or "",
        "justification": args.justification or "",
    }


def _move(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "justification": args.justification or "",
        "validator": getattr(args, "validator", None) or "",
        "validated_at": getattr(args, "validated_at", None),
        "expires_at": getattr(args, "expires", None),
        "approver": getattr(args, "approver", None) or "",
    }


async def _on_store(
    settings: Settings, command: str, key: ModelKey | None, args: argparse.Namespace, actor: str
) -> Any:
    from gateway.modelrisk.inventory import ModelInventory
    from gateway.policy import load_policies
    from gateway.store import open_store

    policies = load_policies(settings.policies)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        in_force = await stored_in_force(store, policies)
        inventory = ModelInventory(store, lambda: in_force)
        if command == "list":
            return await inventory.models()
        assert key is not None
        if command == "show":
            return await inventory.get(key)
        if command == "history":
            return [(e.seq, e.ts, e.type, e.actor, e.payload) for e in await inventory.history(key)]
        with command_span(f"models {command}"):
            if command == "register":
                return await inventory.register(key, actor=actor, **_fields(args))
            return await inventory.transition(key, command, actor=actor, **_move(args))
    finally:
        await store.stop()


def _through_gateway(args: argparse.Namespace, command: str, key: ModelKey | None) -> Any:
    from gateway.client_models import ModelsClient

    channel, token = admin_target(args)
    with ModelsClient(channel, token) as client:
        if command == "list":
            return client.models()
        assert key is not None
        if command == "show":
            return client.get(key)
        if command == "history":
            return client.history(key)
        with command_span(f"models {command}"):
            if command == "register":
                return client.register(key, **_fields(args))
            return client.transition(key, command, **_move(args))


# --- output -------------------------------------------------------------------------------------


def _opt(ts: datetime | None) -> str | None:
    return None if ts is None else format_ts(ts)


def record_json(r: ModelRecord) -> dict[str, Any]:
    """One record as the ``jsonl`` format prints it."""
    return {
        "model": str(r.key),
        "backend": r.key.backend,
        "name": r.key.name,
        "version": r.key.version,
        "status": r.status.value,
        "owner": r.owner,
        "validator": r.validator,
        "intended_use": r.intended_use,
        "max_tier": r.max_tier,
        "validated_at": _opt(r.validated_at),
        "validation_expires_at": _opt(r.validation_expires_at),
        "documentation_url": r.documentation_url,
        "limitations": r.limitations,
        "registered_at": format_ts(r.registered_at),
        "updated_at": format_ts(r.updated_at),
        "updated_by": r.updated_by,
        "escalated": r.escalated,
        "escalation_reason": r.escalation_reason,
        "escalated_at": _opt(r.escalated_at),
    }


def _jsonl(records: Sequence[dict[str, Any]]) -> None:
    for record in records:
        sys.stdout.write(orjson.dumps(record).decode() + "\n")


def _print_list(models: list[ModelRecord], fmt: str) -> None:
    if fmt == "jsonl":
        _jsonl([record_json(m) for m in models])
        return
    print(f"{'MODEL':<40} {'STATUS':<10} {'OWNER':<16} {'VALIDATOR':<16} {'EXPIRES':<10} CEILING")
    for m in models:
        expires = "" if m.validation_expires_at is None else f"{m.validation_expires_at:%Y-%m-%d}"
        print(
            f"{m.key!s:<40} {m.status.value:<10} {m.owner:<16} {m.validator:<16} "
            f"{expires:<10} {m.max_tier}"
        )


def _print_record(m: ModelRecord, fmt: str) -> None:
    if fmt == "jsonl":
        _jsonl([record_json(m)])
        return
    for field, value in record_json(m).items():
        if field not in ("backend", "name", "version"):
            print(f"{field + ':':<23} {'' if value is None else value}")


def _print_history(rows: list[HistoryRow], fmt: str) -> None:
    if fmt == "jsonl":
        _jsonl(
            [
                {"seq": s, "ts": format_ts(ts), "type": t, "actor": a, "payload": p}
                for s, ts, t, a, p in rows
            ]
        )
        return
    print(f"{'SEQ':>6} {'TIME (UTC)':<19} {'TYPE':<17} {'ACTOR':<20} JUSTIFICATION")
    for seq, ts, type_, actor, payload in rows:
        why = "(erased)" if payload is None else str(payload.get("justification", ""))
        print(f"{seq:>6} {ts:%Y-%m-%d %H:%M:%S} {type_:<17} {actor:<20} {why}".rstrip())


# --- commands -----------------------------------------------------------------------------------


def _command(
    args: argparse.Namespace,
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> int:
    import grpc

    command: str = args.models_command
    try:
        key = None if command == "list" else parse_key(args.model)
        if args.target:
            result = _through_gateway(args, command, key)
        else:
            result = asyncio.run(_on_store(settings(args), command, key, args, actor()))
    except InvalidInput as exc:
        message = exc.message.removeprefix(f"{exc.field}: ")
        print(f"error: {_FLAGS.get(exc.field, exc.field)}: {message}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if command == "list":
        _print_list(result, args.format)
    elif command == "history":
        _print_history(result, args.format)
    else:
        if command != "show":
            print(f"{result.key} is {result.status.value}", file=sys.stderr)
        _print_record(result, args.format)
    return 0


def add_models_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> None:
    """Add ``models …``; ``actor()`` names the command's user in the audit trail."""
    models = sub.add_parser("models", help="model inventory: register, validate, approve, …")
    commands = models.add_subparsers(dest="models_command", required=True)
    helps = {
        "register": "enter a model version in the inventory (registered)",
        "show": "one model version's record",
        "list": "every model version",
        "validate": "registered -> validated: --validator, --expires",
        "approve": "validated -> approved: --approver (neither owner nor validator)",
        "suspend": "approved -> suspended",
        "resume": "suspended -> approved: --approver, as approve",
        "retire": "withdraw for good",
        "history": "the model.* audit events of one model version",
    }
    for name, help_text in helps.items():
        p = commands.add_parser(name, help=help_text)
        common(p)
        if name != "list":
            p.add_argument("model", help="backend/name@version")
        if name == "register":
            p.add_argument("--owner", required=True, help="the person accountable for it")
            p.add_argument("--intended-use", required=True)
            p.add_argument("--max-tier", required=True, help="highest-risk tier it may serve")
            p.add_argument("--documentation-url", help="http(s) address of its documentation")
            p.add_argument("--limitations")
        if name == "validate":
            p.add_argument("--validator", required=True, help="who validated it (not its owner)")
            p.add_argument("--expires", required=True, type=_time("--expires"))
            p.add_argument("--validated-at", type=_time("--validated-at"), help="default: now")
        if name in ("approve", "resume"):
            p.add_argument("--approver", required=True, help="the person approving it")
        if name == "register" or name in VERBS:
            p.add_argument(
                "--justification", required=name != "register", help="why; in the audit event"
            )
        target_options(p)
        p.add_argument("--format", choices=("table", "jsonl"), default="table")
        p.set_defaults(func=lambda a: _command(a, settings, actor))


__all__ = ["add_models_parser", "record_json"]
