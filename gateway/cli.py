"""Command line: ``hitl-gateway serve | demo | policy … | keys … | audit … | users … | switch … |
models … | outbox …``.

Every subcommand resolves settings the same way (flags > ``HITL_*`` > config file > defaults), so
all of them act on the same data directory and store.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, Settings, load_settings
from gateway.core.api_keys import ApiKeyAdmin
from gateway.errors import PolicyError
from gateway.telemetry.tracing import command_span


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name, None)
        for name in ("grpc_host", "grpc_port", "http_host", "http_port", "data_dir", "policies")
    }
    overrides["store"] = getattr(args, "store", None)
    return load_settings(config_file=args.config, overrides=overrides)


def _run(coro: Awaitable[int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


# --- serve / demo ---------------------------------------------------------------------------


async def _serve(
    settings: Settings,
    on_started: Callable[[Any], Awaitable[None]] | None,
    shared_limits: Any = None,
) -> int:
    from gateway.app import Gateway

    gateway = Gateway(settings, shared_limits=shared_limits)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(gateway.reload_policies())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # SIGHUP re-reads the policy directory, as `policy apply` does (the fleet follows).
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        if on_started is not None:
            await on_started(gateway)
        print(
            f"hitl-gateway serving gRPC on {settings.grpc_host}:{gateway.grpc_port}, "
            f"HTTP on {settings.http_host}:{gateway.http_port}",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await gateway.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gateway.cpus import usable_cpus
    from gateway.telemetry.logging import setup_logging

    settings = _settings(args)
    if args.workers is not None:
        settings = replace(settings, workers=args.workers)
    if settings.workers < 0:
        print("error: --workers must not be negative (0: one per usable CPU)", file=sys.stderr)
        return 2
    if settings.workers == 0:
        settings = replace(settings, workers=usable_cpus())
    setup_logging(settings.log_level)
    if settings.workers == 1:
        return _run(_serve(settings, None))
    from gateway.workers import Supervisor

    return Supervisor(settings, _serve_worker).run()


def _serve_worker(settings: Settings, ready: Callable[[], None], shared_limits: Any) -> int:
    """One worker of ``serve --workers``: the gateway, telling the supervisor once it serves."""

    async def started(_gateway: Any) -> None:
        ready()

    return _run(_serve(settings, started, shared_limits))


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli_chat import chat_demo_lines
    from gateway.core.auth import new_key
    from gateway.telemetry.logging import setup_logging

    settings = _settings(args)
    setup_logging(settings.log_level)

    async def announce(gateway: Any) -> None:
        apps = tuple(sorted(gateway.policies.applications))
        token, record = new_key(apps)
        with command_span("demo key create"):
            await ApiKeyAdmin(gateway.store).create(record, actor="system:demo")
        port = gateway.grpc_port
        http_base = f"http://{gateway.settings.http_host}:{gateway.http_port}"
        body = (
            '{"application": "credit-limit", "input": {"income": 85000, "debt_ratio": 0.2, '
            '"past_delinquencies": 0, "amount": 15000}}'
        )
        print(
            "\n".join(
                [
                    "",
                    f"Demo key (shown once, valid for {', '.join(apps)}):",
                    f"  {token}",
                    "",
                    "Try a decision:",
                    f"  grpcurl -plaintext -H 'authorization: Bearer {token}' \\",
                    f"    -d '{body}' \\",
                    f"    127.0.0.1:{port} hitl.gateway.v1.DecisionGateway/Decide",
                    "",
                    "A large amount escalates to the high tier and is held for review:",
                    "  change amount to 250000.",
                    "",
                    f"Reviewer UI: http://{gateway.settings.http_host}:{gateway.http_port}/ui/",
                    "  (sign in as admin with the password printed at first start)",
                    "",
                    *chat_demo_lines(gateway.policies, http_base, token),
                ]
            ),
            file=sys.stderr,
            flush=True,
        )

    return _run(_serve(settings, announce))


# --- policy ---------------------------------------------------------------------------------


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.policy import load_policies

    directory = args.dir or _settings(args).policies
    try:
        policies = load_policies(directory)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"ok: {len(policies.applications)} applications, {len(policies.tiers)} tiers, "
        f"{len(policies.backends)} backends ({policies.version})"
    )
    from gateway.modelrisk.policy_check import inventory_warnings

    for warning in asyncio.run(inventory_warnings(_settings(args).store_url, policies)):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def cmd_policy_test(args: argparse.Namespace) -> int:
    from gateway.policy import format_results, load_policies, run_policy_tests

    directory = args.dir or _settings(args).policies
    try:
        results = run_policy_tests(directory)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_results(results, load_policies(directory)), end="")
    return 0 if results and all(r.passed for r in results) else 1


# --- actors ---------------------------------------------------------------------------------


def _cli_actor() -> str:
    """Who the audit trail names for a change made with this command: the operating system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user without a name (say, a random uid)
        return f"cli:uid-{os.getuid()}"


# --- audit ----------------------------------------------------------------------------------


def _audit_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(database file, data directory) for the ``audit`` subcommands."""
    from gateway.store import sqlite_path

    settings = _settings(args)
    db: Path | None = getattr(args, "db", None)
    if db is None:
        return sqlite_path(settings.store_url), settings.data_dir
    # A file named on the command line is read with the keys of its own data directory, never
    # with those of whatever ./var the command happens to run beside.
    return db, args.data_dir if getattr(args, "data_dir", None) else db.parent


# --- parser ---------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML settings file (also HITL_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    p.add_argument("--policies", type=Path, help="policy directory (default ./policies)")
    p.add_argument("--store", help="store URL (default sqlite:///<data-dir>/gateway.db)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hitl-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    for name, fn, help_text in (
        ("serve", cmd_serve, "run the gateway"),
        ("demo", cmd_demo, "run the gateway with a fresh demo key and a ready grpcurl command"),
    ):
        p = sub.add_parser(name, help=help_text)
        _common(p)
        p.add_argument("--grpc-host")
        p.add_argument("--grpc-port", type=int)
        p.add_argument("--http-host")
        p.add_argument("--http-port", type=int)
        if name == "serve":
            p.add_argument(
                "--workers",
                type=int,
                help="processes serving the same ports and data (0: one per usable CPU)",
            )
        p.set_defaults(func=fn)

    policy = sub.add_parser("policy", help="check and test policy files").add_subparsers(
        dest="policy_command", required=True
    )
    for name, fn, help_text in (
        ("check", cmd_policy_check, "validate the policy files"),
        ("test", cmd_policy_test, "run the policy test cases next to the policies"),
    ):
        p = policy.add_parser(name, help=help_text)
        _common(p)
        p.add_argument("dir", type=Path, nargs="?", help="policy directory")
        p.set_defaults(func=fn)
    from gateway.cli_replay import add_replay_parser

    add_replay_parser(policy, _common, _settings)
    from gateway.cli_policy_change import add_policy_change_parsers

    add_policy_change_parsers(policy, _common, _settings)

    keys = sub.add_parser("keys", help="API keys; the gateway's own secret keys").add_subparsers(
        dest="keys_command", required=True
    )
    from gateway.cli_keys import add_keys_parsers

    add_keys_parsers(keys, _common, _settings, _run, _cli_actor)
    from gateway.cli_secrets import add_secrets_parser

    add_secrets_parser(keys)

    from gateway.cli_audit import add_audit_parser

    add_audit_parser(sub, _common, _audit_paths, _settings)

    from gateway.cli_users import add_users_parser

    add_users_parser(sub, _common, _settings)

    from gateway.cli_switch import add_switch_parser

    add_switch_parser(sub, _common, _settings, _cli_actor)

    from gateway.cli_models import add_models_parser

    add_models_parser(sub, _common, _settings, _cli_actor)

    from gateway.cli_monitoring import add_models_clear_parser  # after the inventory's commands

    add_models_clear_parser(sub, _common, _settings, _cli_actor)

    from gateway.cli_outbox import add_outbox_parser

    add_outbox_parser(sub, _common, _settings, _cli_actor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from gateway.telemetry.logging import setup_cli_logging

    # Until `serve` sets up its own: a log line of a one-shot command must not reach stdout.
    setup_cli_logging(os.environ.get("HITL_LOG_LEVEL", "warning"))
    try:
        rc: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
