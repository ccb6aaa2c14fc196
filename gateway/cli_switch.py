"""``hitl-gateway switch pause | resume | list``: the kill switch from the command line.

On the data directory's store (opened directly, like ``users add``; the change is recorded as
``cli:<os user>``), or through a running gateway's AdminService with ``--target`` and an admin
key (recorded as that key). Either way every replica and process applies the change within a
second (`gateway.core.switches`); a SQLite gateway running on the same file sees it too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

import orjson

from gateway.cli_target import admin_target, target_options
from gateway.config import Settings
from gateway.core.policy_in_force import stored_in_force
from gateway.errors import InvalidInput, StoreUnavailable
from gateway.telemetry.tracing import command_span
from gateway.timefmt import format_ts
from gateway.types import SwitchState

SwitchRow = tuple[str, str, SwitchState | None]


def _which(args: argparse.Namespace) -> tuple[str, str] | None:
    """``(kind, name)`` from --app or --backend (at most one: the parser makes them exclusive)."""
    if args.app:
        return "application", args.app
    if args.backend:
        return "backend", args.backend
    return None


# --- on the store directly ----------------------------------------------------------------------


async def _on_store(
    settings: Settings, change: tuple[str, str, bool, str, str] | None
) -> list[SwitchRow]:
    """Apply ``change`` (kind, name, paused, actor, reason) if given; the stored switches."""
    from gateway.core.switches import KillSwitches
    from gateway.policy import load_policies
    from gateway.store import open_store

    policies = load_policies(settings.policies)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.store_url)
    await store.start()
    try:
        in_force = await stored_in_force(store, policies)
        switches = KillSwitches(store, lambda: in_force)
        await switches.load()
        if change is not None:
            kind, name, paused, actor, reason = change
            with command_span(f"switch {'pause' if paused else 'resume'}"):
                await switches.set(kind, name, paused, actor, reason)
        return switches.states()
    finally:
        await store.stop()


# --- through a running gateway ------------------------------------------------------------------


def _through_gateway(
    args: argparse.Namespace, change: tuple[str, str, bool, str] | None
) -> list[SwitchRow]:
    from gateway.client_admin import AdminClient

    channel, key = admin_target(args)
    with AdminClient(channel, key) as client:
        if change is not None:
            kind, name, paused, reason = change
            with command_span(f"switch {'pause' if paused else 'resume'}"):
                client.set_switch(kind, name, paused, reason)
        return client.list_switches()


# --- output -------------------------------------------------------------------------------------


def _print(rows: list[SwitchRow], fmt: str, only: tuple[str, str] | None) -> None:
    shown = [r for r in rows if only is None or (r[0], r[1]) == only]
    if fmt == "jsonl":
        for kind, name, st in shown:
            record = {"kind": kind, "name": name, "paused": st is not None and st.paused}
            if st is not None:
                record |= {
                    "changed_by": st.changed_by,
                    "changed_at": format_ts(st.changed_at),
                    "reason": st.reason,
                }
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
        return
    print(f"{'KIND':<12} {'NAME':<24} {'STATE':<8} CHANGED")
    for kind, name, st in shown:
        state = "paused" if st is not None and st.paused else "running"
        changed = ""
        if st is not None:
            changed = f"{format_ts(st.changed_at)} {st.changed_by}"
            changed += f": {st.reason}" if st.reason else ""
        print(f"{kind:<12} {name:<24} {state:<8} {changed}".rstrip())


# --- commands -----------------------------------------------------------------------------------


def _command(
    args: argparse.Namespace,
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> int:
    import grpc

    which = _which(args)
    paused = {"pause": True, "resume": False}.get(args.switch_command)
    reason = (args.reason or "").strip()
    try:
        if paused is not None and which is None:
            raise InvalidInput("--app", "name the application (--app) or backend (--backend)")
        if paused and not reason:
            raise InvalidInput("--reason", "required to pause: say why")
        if args.target:
            remote = None if paused is None or which is None else (*which, paused, reason)
            rows = _through_gateway(args, remote)
        else:
            change = None if paused is None or which is None else (*which, paused, actor(), reason)
            rows = asyncio.run(_on_store(settings(args), change))
    except InvalidInput as exc:
        # Name the flag the user typed, not the core's field.
        flag = {"name": f"--{'app' if args.app else 'backend'}", "reason": "--reason"}
        message = exc.message.removeprefix(f"{exc.field}: ")
        print(f"error: {flag.get(exc.field, exc.field)}: {message}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    if paused is not None and which is not None:
        done = "paused" if paused else "resumed"
        print(
            f"{done} {which[0]} {which[1]}; every replica applies it within a second",
            file=sys.stderr,
        )
    _print(rows, args.format, which)
    return 0


def add_switch_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
    actor: Callable[[], str],
) -> None:
    """Add ``switch …``; ``actor()`` names the command's user in the audit trail."""
    switch = sub.add_parser("switch", help="kill switch: pause or resume an application or backend")
    commands = switch.add_subparsers(dest="switch_command", required=True)
    for name, help_text in (
        ("pause", "hold or refuse every new decision (its on_pause); --reason is required"),
        ("resume", "let decisions flow again"),
        ("list", "every application's and backend's switch"),
    ):
        p = commands.add_parser(name, help=help_text)
        common(p)
        which = p.add_mutually_exclusive_group(required=name != "list")
        which.add_argument("--app", help="application id")
        which.add_argument("--backend", help="model backend name (pauses its applications)")
        if name != "list":
            p.add_argument("--reason", help="why; recorded in the audit event")
        target_options(p)
        p.add_argument("--format", choices=("table", "jsonl"), default="table")
        p.set_defaults(func=lambda a: _command(a, settings, actor), reason=None)


__all__ = ["add_switch_parser"]
