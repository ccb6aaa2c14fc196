"""``hitl-gateway policy apply | clear-shadow | shadow-report``: change the policy in force on a
running fleet, through one gateway's AdminService (``--target``, an admin key).

``apply DIR`` sends every file of the directory (its ``tests/`` cases apart); the gateway
checks the candidate, runs its tests and stores it, and every replica switches within a second.
Exit codes: 0 applied (or already in force), 1 refused (the gateway's error is printed: the
file:line:field of a candidate that does not load, or the failing test cases), 2 usage.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gateway.cli_target import admin_target, target_options
from gateway.config import ConfigError, Settings
from gateway.errors import InvalidInput, PolicyError

EXIT_REFUSED = 1
EXIT_USAGE = 2


def policy_client(args: argparse.Namespace) -> Any:
    """A `gateway.client_policy.PolicyClient` of ``--target``."""
    from gateway.client_policy import PolicyClient

    channel, key = admin_target(args)
    return PolicyClient(channel, key)


def run_remote(fn: Callable[[], int]) -> int:
    """``fn()``, with a refusal by the gateway printed as its status and message."""
    import grpc

    try:
        return fn()
    except (InvalidInput, PolicyError, ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except grpc.RpcError as exc:
        code = exc.code().name if exc.code() is not None else "UNKNOWN"
        print(f"error: {code}: {exc.details()}", file=sys.stderr)
        return EXIT_REFUSED


def _apply(args: argparse.Namespace) -> int:
    from gateway.policy.texts import read_candidate
    from gateway.telemetry.tracing import command_span

    def run() -> int:
        files, tests = read_candidate(args.dir)
        with policy_client(args) as client, command_span("policy apply"):
            r = client.apply(
                files,
                tests,
                source=str(args.dir.resolve()),
                shadow=args.shadow,
                force_reason=args.force or "",
            )
        what = "shadow" if r.shadow else "in force"
        state = "now" if r.changed else "already"
        print(f"{r.digest} {state} {what} (previous: {r.previous or 'none'})")
        print(f"tests: {r.tests_passed} passed, {r.tests_failed} failed", file=sys.stderr)
        if r.forced:
            print("applied although tests fail (forced; recorded)", file=sys.stderr)
        return 0

    return run_remote(run)


def _clear_shadow(args: argparse.Namespace) -> int:
    def run() -> int:
        with policy_client(args) as client:
            changed = client.clear_shadow()
        print("shadow policy cleared" if changed else "no shadow policy was set")
        return 0

    return run_remote(run)


def _shadow_report(args: argparse.Namespace) -> int:
    def run() -> int:
        with policy_client(args) as client:
            r = client.shadow_report(args.digest or "", args.limit)
        rows = [
            {
                "decision_id": d.decision_id,
                "application": d.application,
                "made_at": d.made_at.ToDatetime().isoformat() + "Z",
                "change": f"{d.old_action}->{d.new_action}",
                "tier": f"{d.old_tier}->{d.new_tier}",
                "rule": f"{d.old_rule}->{d.new_rule}",
            }
            for d in r.disagreements
        ]
        _print_report(r.digest, rows, args.format)
        return 0

    return run_remote(run)


def _print_report(digest: str, rows: list[dict[str, str]], fmt: str) -> None:
    if fmt == "json":
        data = {"shadow": digest, "disagreements": rows, "counts": _counts(rows)}
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(("decision_id", "application", "made_at", "change", "tier", "rule"))
        w.writerows(tuple(r.values()) for r in rows)
        return
    if not digest:
        print("no shadow policy", file=sys.stderr)
        return
    print(f"shadow {digest}: {len(rows)} disagreements")
    for (app, rule), n in sorted(_counts_by(rows).items()):
        print(f"  {app:<24} {rule:<40} {n}")
    for r in rows:
        print(f"{r['decision_id']}  {r['application']}  {r['change']}  {r['rule']}")


def _counts_by(rows: list[dict[str, str]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["application"], r["rule"].partition("->")[2])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _counts(rows: list[dict[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (app, rule), n in sorted(_counts_by(rows).items()):
        out.setdefault(app, {})[rule] = n
    return out


def add_policy_change_parsers(
    policy: Any,
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
) -> None:
    """Add ``apply``, ``clear-shadow`` and ``shadow-report`` to the ``policy`` subcommands."""
    p = policy.add_parser("apply", help="check, store and put in force a policy on a fleet")
    common(p)
    p.add_argument("dir", type=Path, help="policy directory (its tests/ cases are run)")
    p.add_argument(
        "--shadow", action="store_true", help="evaluate it alongside, without enforcing it"
    )
    p.add_argument("--force", metavar="REASON", help="apply although its tests fail (recorded)")
    target_options(p, required=True)
    p.set_defaults(func=_apply)

    p = policy.add_parser("clear-shadow", help="stop evaluating the shadow policy")
    common(p)
    target_options(p, required=True)
    p.set_defaults(func=_clear_shadow)

    p = policy.add_parser(
        "shadow-report", help="live decisions the shadow policy would have decided otherwise"
    )
    common(p)
    p.add_argument("--digest", help="a shadow version (default: the current one)")
    p.add_argument("--limit", type=int, default=1000, help="most disagreements listed")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    target_options(p, required=True)
    p.set_defaults(func=_shadow_report)
