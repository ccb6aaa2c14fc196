"""``hitl-gateway users add | list | disable | enable | set-role | set-groups``: accounts of the
reviewer UI.

Every change is an audit event whose actor is ``cli:<operating system user>`` (as for ``keys``),
written by `gateway.core.accounts.AccountService`, which also holds the rules (the last enabled
admin stays). Refusals print ``error: …`` and exit with 2; a change that is already so (disabling
a disabled account) prints why nothing was done and exits with 0, writing no event.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from gateway.config import Settings
from gateway.core.accounts import AccountChange, AccountService
from gateway.errors import FailedPrecondition, InvalidInput, NotFound
from gateway.store import open_store
from gateway.store.protocol import ReviewStore
from gateway.telemetry.tracing import command_span
from gateway.timefmt import format_ts
from gateway.types import Account, Role

REFUSED = (InvalidInput, NotFound, FailedPrecondition)
"""Errors shown as ``error: <message>`` with exit code 2 (`Conflict`, a name taken or an account
changed meanwhile, is a FailedPrecondition)."""


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
    async def add(service: AccountService) -> int:
        groups = tuple(args.group) if args.group else None
        with command_span("users add"):
            account = await service.create(
                args.name, Role(args.role), password, groups, actor=_actor()
            )
        groups_text = ", ".join(account.groups) or "none"
        print(
            f"created {account.name} ({account.role.value}), groups: {groups_text}",
            file=sys.stderr,
        )
        return 0

    return await _with_service(settings, add)


def _actor() -> str:
    # Imported here: gateway.cli imports this module to build its parser.
    from gateway.cli import _cli_actor

    return _cli_actor()


def _groups_text(groups: tuple[str, ...]) -> str:
    return ",".join(groups) or "-"


def list_lines(accounts: list[Account]) -> list[str]:
    """``users list``: one line per account (name, role, groups, enabled or disabled, created),
    in columns split by spaces (no field holds one)."""
    rows = [
        (
            a.name,
            a.role.value,
            _groups_text(a.groups),
            "disabled" if a.disabled else "enabled",
            format_ts(a.created_at),
        )
        for a in accounts
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    return [
        "  ".join([*(f.ljust(w) for f, w in zip(row, widths, strict=False)), row[4]])
        for row in rows
    ]


async def _with_service(settings: Settings, fn: Callable[[AccountService], Awaitable[int]]) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: ReviewStore = open_store(settings.store_url)
    await store.start()
    try:
        return await fn(AccountService(store))
    except REFUSED as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        await store.stop()


async def _list(service: AccountService) -> int:
    for line in list_lines(await service.all_accounts()):
        print(line)
    return 0


def _report(change: AccountChange, done: str, already: str) -> int:
    name = change.after.name
    if change.changes is None:
        print(f"{name} {already}; nothing changed", file=sys.stderr)
        return 0
    message = f"{name} {done}"
    if change.after.disabled and not change.before.disabled:
        message += (
            f": {change.changes.sessions_ended} UI session(s) ended, "
            f"{change.changes.leases_released} review lease(s) released"
        )
    print(message, file=sys.stderr)
    return 0


def _changer(command: str) -> Callable[[argparse.Namespace, AccountService], Awaitable[int]]:
    """The coroutine that runs ``users <command>`` against a service."""

    async def run(args: argparse.Namespace, service: AccountService) -> int:
        actor = _actor()
        with command_span(f"users {command}"):
            if command == "disable":
                change = await service.disable(args.name, actor=actor)
                return _report(change, "disabled", "is already disabled")
            if command == "enable":
                change = await service.enable(args.name, actor=actor)
                return _report(change, "enabled", "is already enabled")
            if command == "set-role":
                change = await service.set_role(args.name, Role(args.role), actor=actor)
                before, after = change.before.role.value, change.after.role.value
                return _report(change, f"role {before} -> {after}", f"already has role {after}")
            change = await service.set_groups(args.name, tuple(args.group), actor=actor)
            old, new = (_groups_text(a.groups) for a in (change.before, change.after))
            return _report(change, f"groups {old} -> {new}", f"already has groups {new}")

    return run


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

    p = users.add_parser("list", help="every account: name, role, groups, enabled, created")
    common(p)
    p.set_defaults(func=lambda args: asyncio.run(_with_service(settings(args), _list)))

    changes = {
        "disable": "disable an account: ends its UI sessions and releases its review leases",
        "enable": "enable a disabled account",
        "set-role": "give an account another role (its groups stay)",
        "set-groups": "replace an account's review groups",
    }
    for command, help_text in changes.items():
        p = users.add_parser(command, help=help_text)
        common(p)
        p.add_argument("name")
        if command == "set-role":
            p.add_argument("--role", required=True, choices=[r.value for r in Role])
        if command == "set-groups":
            p.add_argument(
                "--group", action="append", required=True, help="review group (repeatable)"
            )
        p.set_defaults(func=_runner(settings, _changer(command)))


def _runner(
    settings: Callable[[argparse.Namespace], Settings],
    change: Callable[[argparse.Namespace, AccountService], Awaitable[int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return asyncio.run(_with_service(settings(args), lambda service: change(args, service)))

    return run


__all__ = ["add_users_parser"]
