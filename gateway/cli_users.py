"""``hitl-gateway users …``: accounts of the reviewer UI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from gateway.config import Settings
from gateway.core.accounts import AccountService
from gateway.errors import Conflict, InvalidInput
from gateway.store import open_store
from gateway.telemetry.tracing import command_span
from gateway.types import Role


def _read_password() -> str:
    """The password from stdin when piped (its first line), else prompted twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


async def _add(settings: Settings, args: argparse.Namespace, password: str) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        service = AccountService(store)
        groups = tuple(args.group) if args.group else None
        with command_span("users add"):
            account = await service.create(
                args.name, Role(args.role), password, groups, actor="cli"
            )
    except (InvalidInput, Conflict) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.stop()
    groups_text = ", ".join(account.groups) or "none"
    print(f"created {account.name} ({account.role.value}), groups: {groups_text}", file=sys.stderr)
    return 0


def add_users_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
) -> None:
    users = sub.add_parser("users", help="reviewer UI accounts").add_subparsers(
        dest="users_command", required=True
    )
    p = users.add_parser("add", help="add an account; the password is read from stdin")
    common(p)
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument(
        "--group", action="append", help="review group (repeatable; default from the role)"
    )

    def run(args: argparse.Namespace) -> int:
        try:
            password = _read_password()
        except ValueError as exc:
            print(f"error: password: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(_add(settings(args), args, password))

    p.set_defaults(func=run)


__all__ = ["add_users_parser"]
