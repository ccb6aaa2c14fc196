"""``hitl-gateway policy replay``: what a candidate policy would have decided, for CI of policies.

Reads the decisions of a time range from the store read-only (a SQLite file, or PostgreSQL in
one read-only snapshot), replays each under the candidate with its stored model output (see
`gateway.policy_replay`) and prints per application what would change. Exit code 0 when
nothing changes, 3 when something does, 2 on a usage error, 1 when the candidate policy does
not load.
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.config import Settings
from gateway.core.vault import KEY_FILE, Vault, VaultError
from gateway.policy_replay import ReplayReport, replay_rows

EXIT_CHANGED = 3
EXIT_USAGE = 2


def _when(text: str) -> datetime:
    """An RFC 3339 time or a date; without a zone it is UTC."""
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _vault(settings: Settings) -> Vault | None:
    """The data key ring of ``data_key``, else of ``<data dir>/data.keys`` if there is one
    (never created here: a replay writes nothing); None without keys."""
    if settings.data_key.strip():
        return Vault.load(settings.data_dir, settings.data_key)
    if (settings.data_dir / KEY_FILE).exists():
        return Vault.load(settings.data_dir)
    return None


def run_replay(
    location: str | Path,
    candidate_dir: Path,
    vault: Vault | None,
    since: datetime,
    until: datetime,
    app: str = "",
) -> ReplayReport:
    """The replay report of the decisions at ``location`` under the policies in
    ``candidate_dir``."""
    from gateway.policy import load_policies
    from gateway.store.decision_range import read_decisions

    policies = load_policies(candidate_dir)
    return replay_rows(read_decisions(location, since, until, app), policies, vault)


def cmd_policy_replay(
    args: argparse.Namespace, settings: Callable[[argparse.Namespace], Settings]
) -> int:
    from gateway.errors import InvalidInput
    from gateway.store import is_postgres_url, sqlite_path

    until: datetime = args.until or datetime.now(UTC)
    if until <= args.since:
        print("error: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    if args.target:
        return _through_gateway(args, until)
    s = settings(args)
    url = s.store_url
    location: str | Path = url.strip() if is_postgres_url(url) else sqlite_path(url)
    try:
        vault = _vault(s)
        report = run_replay(location, args.dir, vault, args.since, until, args.app or "")
    except (FileNotFoundError, InvalidInput, VaultError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print(report.to_dict(), args.format)
    return EXIT_CHANGED if report.changed else 0


def _through_gateway(args: argparse.Namespace, until: datetime) -> int:
    """The replay of a running gateway's own store (``--target``)."""
    from gateway.cli_policy_change import policy_client, run_remote
    from gateway.policy.texts import read_candidate

    def run() -> int:
        files, _ = read_candidate(args.dir)
        with policy_client(args) as client:
            data = client.replay(files, args.since, until, args.app or "")
        _print(data, args.format)
        return EXIT_CHANGED if data["changed"] else 0

    return run_remote(run)


def _print(data: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    rows = list(_rows(data))
    if fmt == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(("application", "kind", "change", "decisions", "examples"))
        w.writerows(rows)
        return
    widths = [max(len(str(r[i])) for r in rows) if rows else 0 for i in range(4)]
    head = ("APPLICATION", "KIND", "CHANGE", "DECISIONS")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    for r in [(*head, "EXAMPLES"), *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(r[:4], widths, strict=True)), r[4])
    verdict = "changes" if data["changed"] else "no change"
    print(f"\n{verdict}", file=sys.stderr)


def _rows(data: dict[str, Any]) -> Any:
    """``(application, kind, change, decisions, examples)`` per line of the report."""
    for name, r in data["applications"].items():
        ex = r["examples"]
        yield name, "replayed", "", r["replayed"], ""
        yield name, "changed", "", r["changed"], ""
        yield name, "erased", "skipped", r["erased_skipped"], ""
        for change, n in r["actions"].items():
            a, _, b = change.partition("->")
            yield (
                name,
                "action",
                change,
                n,
                " ".join(ex.get(f"action {change}", [])) if a != b else "",
            )
        for change, n in r["tiers"].items():
            yield name, "tier", change, n, " ".join(ex.get(f"tier {change}", []))
        for rule, n in r["new_rules"].items():
            yield name, "new rule", rule, n, " ".join(ex.get(f"rule {rule}", []))
        for why, n in r["not_comparable"].items():
            yield name, "not comparable", why, n, " ".join(ex.get(f"not comparable: {why}", []))


def add_replay_parser(
    policy: Any,
    common: Callable[[argparse.ArgumentParser], None],
    settings: Callable[[argparse.Namespace], Settings],
) -> None:
    """Add ``policy replay`` to the ``policy`` subcommands."""
    from gateway.cli_target import target_options

    p = policy.add_parser(
        "replay", help="replay stored decisions under a candidate policy (exit 3: changes)"
    )
    common(p)
    p.add_argument("dir", type=Path, help="candidate policy directory")
    p.add_argument("--since", type=_when, required=True, help="from this time (UTC if no zone)")
    p.add_argument(
        "--until",
        type=_when,
        default=None,
        help="up to (not including) this time; default now",
    )
    p.add_argument("--app", help="only this application")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    target_options(p, required=False)
    p.set_defaults(func=lambda a: cmd_policy_replay(a, settings))
