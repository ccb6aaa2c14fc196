"""``hitl-gateway audit policy DIGEST``: the exact policy files in force for a decision.

Every decision records the digest of the policy files it was decided under
(``policy_version``); the gateway stores the files of every version it loads
(`gateway.store.policies`). This prints them from a database file, a PostgreSQL database
(read-only) or a running gateway, through the same `gateway.store.trail.TrailReader` as the
other ``audit`` commands. Text goes out as the exact bytes that were hashed, so
``--file NAME > NAME`` reproduces the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from gateway.errors import InvalidInput
from gateway.policy.versions import PolicyVersion, file_bytes
from gateway.store.trail import TrailReader
from gateway.types import AuditEvent

__all__ = ["cmd_policy", "policy_line"]


def _digest(text: str) -> str:
    """A digest as decisions record it; a bare hex digest gets its ``sha256:`` prefix."""
    text = text.strip()
    return text if ":" in text else f"sha256:{text}"


def cmd_policy(args: argparse.Namespace, reader: Callable[[], TrailReader]) -> int:
    """Print the files of one stored policy version (all, or ``--file``)."""
    digest = _digest(args.digest)
    version = reader().policy_version(digest)
    if version is None:
        print(f"error: policy version {digest!r} is not stored", file=sys.stderr)
        return 1
    files = version.files
    if args.file is not None:
        files = tuple(f for f in files if f[0] == args.file)[:1]
        if not files:
            names = ", ".join(dict.fromkeys(n for n, _ in version.files))
            print(f"error: no file {args.file!r} in {digest} (files: {names})", file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps(_record(version, files), indent=2))
    elif args.file is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(file_bytes(files[0][1]))
    else:
        _write_files(version, files)
    return 0


def _record(version: PolicyVersion, files: tuple[tuple[str, str], ...]) -> dict[str, object]:
    return {
        "digest": version.digest,
        "source": version.source,
        "loaded_at": version.loaded_at.isoformat(),
        "loaded_by": version.loaded_by,
        "files": [{"name": n, "text": t} for n, t in files],
    }


def _write_files(version: PolicyVersion, files: tuple[tuple[str, str], ...]) -> None:
    out = sys.stdout
    out.write(
        f"# policy {version.digest}, loaded {version.loaded_at.isoformat()} by "
        f"{version.loaded_by} from {version.source}\n"
    )
    for name, text in files:
        out.write(f"\n==> {name} <==\n")
        out.flush()
        out.buffer.write(file_bytes(text))
        out.buffer.flush()
        if text and not text.endswith("\n"):
            out.write("\n")


def policy_line(events: list[AuditEvent], reader: TrailReader) -> str | None:
    """The line ``audit trail`` adds: the decision's policy digest and whether its text is
    stored; None when the decision's creation event (or its payload) is not there."""
    created = next((e for e in events if e.type == "decision.created"), None)
    if created is None or created.payload is None:
        return None
    digest = created.payload.get("policy_version")
    if not isinstance(digest, str) or not digest:
        return None
    try:
        stored = reader.policy_version(digest)
    except InvalidInput as exc:  # say, an auditor's role without SELECT on policy_versions
        return f"policy {digest} (text not readable here: {exc})"
    if stored is None:
        return f"policy {digest} (text not stored)"
    return f"policy {digest} (stored; `hitl-gateway audit policy {digest}`)"
