"""``hitl-gateway keys generate-secrets``: fresh values for the gateway's own secret keys.

Replicas on a shared store need ``data_key``, ``audit_signing_key`` and ``session_key`` set, the
same on each. This prints them once, as ``HITL_*=value`` lines (an env file, for
``kubectl create secret generic --from-env-file``) or as a Kubernetes Secret whose key names
are the ones the Helm chart reads (``keys.existingSecret``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from gateway.keys import generate_secrets

SECRET_KEY_NAMES = {
    "data_key": "data-key",
    "audit_signing_key": "audit-signing-key",
    "session_key": "session-key",
}
"""Setting name -> key name in the Kubernetes Secret the Helm chart reads."""


def render(values: dict[str, str], fmt: str, name: str) -> str:
    """``values`` (by setting name) as env lines or as a Kubernetes Secret manifest."""
    if fmt == "env":
        return "".join(f"HITL_{k.upper()}={v}\n" for k, v in values.items())
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": {SECRET_KEY_NAMES[k]: v for k, v in values.items()},
    }
    return str(yaml.safe_dump(secret, sort_keys=False))


def cmd_generate_secrets(args: argparse.Namespace) -> int:
    sys.stdout.write(render(generate_secrets(), args.format, args.name))
    print(
        "keep these secret and give every replica the same values; the data key ring rotates "
        "by appending keys, never by replacing them (see SECURITY.md)",
        file=sys.stderr,
    )
    return 0


def add_secrets_parser(keys: Any) -> None:
    """Add ``generate-secrets`` to the ``keys`` subcommands."""
    p = keys.add_parser(
        "generate-secrets",
        help="print new data, audit signing and UI session keys (for replicas on PostgreSQL)",
    )
    p.add_argument(
        "--format",
        choices=("env", "yaml"),
        default="env",
        help="env: HITL_*=value lines; yaml: a Kubernetes Secret for the Helm chart",
    )
    p.add_argument(
        "--name", default="hitl-gateway-keys", help="the Secret's name with --format yaml"
    )
    p.set_defaults(func=cmd_generate_secrets)
