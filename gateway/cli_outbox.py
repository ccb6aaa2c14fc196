"""``hitl-gateway outbox list [--dead] | resend ID``: the outbox's dead letters from the command
line.

On the data directory's store (opened directly, like ``switch``; recorded as ``cli:<os user>``),
or through a running gateway's AdminService with ``--target`` and an admin key (recorded as
that key). A re-sent message (dead-lettered, or delivered and lost by its receiver) keeps its
id, for receivers to deduplicate on, and gets a fresh retry window; a running gateway sends it
at its next look. Each re-send is an ``outbox.resent`` audit event.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import datetime

import orjson

from gateway.cli_target import admin_target, target_options
from gateway.config import Settings
from gateway.errors import FailedPrecondition, InvalidInput, NotFound, StoreUnavailable
from gateway.store.outbox import OutboxMessage
from gateway.telemetry.tracing import command_span
from gateway.timefmt import format_ts

_FLAGS = {"limit": "--limit", "id": "ID"}
"""The core's field names as the user typed them."""


async def _on_store(
    settings: Settings, args: argparse.Namespace, actor: str
) -> list[OutboxMessage]:
    from gateway.notify.dead_letters import OutboxAdmin
    from gateway.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        admin = OutboxAdmin(store)
        if args.outbox_command == "resend":
            with command_span("outbox resend"):
                return [await admin.resend(args.id, actor)]
        return list(await admin.list(dead=args.dead, limit=args.limit))
    finally:
        await store.stop()


def _through_gateway(args: argparse.Namespace) -> list[OutboxMessage]:
    from gateway.client_admin import AdminClient

    channel, key = admin_target(args)
    with AdminClient(channel, key) as client:
        if args.outbox_command == "resend":
            with command_span("outbox resend"):
                return [client.resend_outbox(args.id)]
        return client.list_outbox(dead=args.dead, limit=args.limit)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _print(messages: list[OutboxMessage], fmt: str) -> None:
    if fmt == "jsonl":
        for m in messages:
            record = {
                "id": m.id,
                "channel": m.channel,
                "topic": m.topic,
                "application": m.application,
                "decision_id": m.decision_id,
                "created_at": format_ts(m.created_at),
                "attempts": m.attempts,
                "delivered_at": _ts(m.delivered_at),
                "dead_at": _ts(m.dead_at),
                "last_error": m.last_error,
            }
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
        return
    print(f"{'ID':<48} {'TOPIC':<20} {'APPLICATION':<20} {'ATTEMPTS':>8} LAST ERROR")
    for m in messages:
        print(f"{m.id:<48} {m.topic:<20} {m.application:<20} {m.attempts:>8} {m.last_error}")


def _command(
    args: argparse.Namespace,
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> int:
    import grpc

    try:
        if args.target:
            messages = _through_gateway(args)
        else:
            messages = asyncio.run(_on_store(settings(args), args, actor()))
    except InvalidInput as exc:
        message = exc.message.removeprefix(f"{exc.field}: ")
        print(f"error: {_FLAGS.get(exc.field, exc.field)}: {message}", file=sys.stderr)
        return 2
    except (NotFound, FailedPrecondition, StoreUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if args.outbox_command == "resend":
        print(f"re-sent {args.id.strip()}; delivered at the gateway's next look", file=sys.stderr)
    _print(messages, args.format)
    return 0


def add_outbox_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> None:
    """Add ``outbox …``; ``actor()`` names the command's user in the audit trail."""
    outbox = sub.add_parser("outbox", help="webhook outbox: list messages, re-send dead letters")
    commands = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = commands.add_parser("list", help="messages still to deliver (or --dead)")
    listing.add_argument("--dead", action="store_true", help="the dead-lettered messages")
    listing.add_argument("--limit", type=int, default=0, help="most messages (default 100)")
    resend = commands.add_parser("resend", help="send a dead-lettered (or delivered) message again")
    resend.add_argument("id", help="the message id, as listed")
    for p in (listing, resend):
        common(p)
        target_options(p)
        p.add_argument("--format", choices=("table", "jsonl"), default="table")
        p.set_defaults(func=lambda a: _command(a, settings, actor), dead=False, limit=0)


__all__ = ["add_outbox_parser"]
