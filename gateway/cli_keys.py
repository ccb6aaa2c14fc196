"""``hitl-gateway keys create | revoke``: API keys (and client certificate identities), made
and revoked on the store directly, each with its audit event."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.config import Settings
from gateway.core.api_keys import ApiKeyAdmin
from gateway.errors import PolicyError
from gateway.telemetry.tracing import command_span

Settings_ = Callable[[argparse.Namespace], Settings]
Run = Callable[[Awaitable[int]], int]
Actor = Callable[[], str]


async def _with_store(settings: Settings, fn: Callable[[Any], Awaitable[int]]) -> int:
    from gateway.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        return await fn(store)
    finally:
        await store.stop()


def _create(args: argparse.Namespace, settings: Settings_, run: Run, actor: Actor) -> int:
    from gateway.core.auth import check_role, new_key
    from gateway.policy import load_policies

    s = settings(args)
    try:
        known = load_policies(s.policies).applications
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    unknown = [a for a in args.app if a not in known]
    if unknown:
        print(f"error: --app: unknown application(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.role == "app" and not args.app:
        print("error: --app: an application key needs at least one application", file=sys.stderr)
        return 2
    apps = tuple(sorted(set(args.app)))
    try:
        check_role(args.role, apps)
    except ValueError as exc:
        print(f"error: --app: {exc}", file=sys.stderr)
        return 2
    if args.client_cn:
        from gateway.core.auth import certificate_identity

        try:
            record = certificate_identity(args.client_cn, apps, role=args.role)
        except ValueError as exc:
            print(f"error: --client-cn: {exc}", file=sys.stderr)
            return 2
        token = ""
    else:
        token, record = new_key(apps, role=args.role)

    async def create(store: Any) -> int:
        with command_span("keys create"):
            await ApiKeyAdmin(store).create(record, actor=actor())
        return 0

    rc = run(_with_store(s, create))
    if token:
        print(token)
    scope = ", ".join(record.applications) if record.role == "app" else "the audit trail"
    print(f"key id {record.key_id} ({record.role}) for {scope}", file=sys.stderr)
    return rc


def _revoke(args: argparse.Namespace, settings: Settings_, run: Run, actor: Actor) -> int:
    async def revoke(store: Any) -> int:
        with command_span("keys revoke"):
            revoked = await ApiKeyAdmin(store).revoke(args.key_id, actor=actor())
        if revoked:
            print(f"revoked {args.key_id}")
            return 0
        print(f"error: no key {args.key_id!r}", file=sys.stderr)
        return 1

    return run(_with_store(settings(args), revoke))


def add_keys_parsers(
    keys: Any,
    common: Callable[[argparse.ArgumentParser], None],
    settings: Settings_,
    run: Run,
    actor: Actor,
) -> None:
    """Add ``create`` and ``revoke`` to the ``keys`` subcommands."""
    p = keys.add_parser("create", help="create a key; it is printed once")
    common(p)
    p.add_argument("--app", action="append", default=[], help="application (repeatable)")
    p.add_argument(
        "--role",
        choices=("app", "auditor", "admin"),
        default="app",
        help="app keys decide for --app; auditor and admin keys (no --app) read the audit trail",
    )
    p.add_argument(
        "--client-cn",
        help="register a client certificate's common name (mutual TLS) instead of a key",
    )
    p.set_defaults(func=lambda a: _create(a, settings, run, actor))
    p = keys.add_parser("revoke", help="revoke a key by its id")
    common(p)
    p.add_argument("key_id")
    p.set_defaults(func=lambda a: _revoke(a, settings, run, actor))
