"""``--target``: the commands that act on a running gateway's AdminService instead of the
store, and the credentials they call with (an admin key, TLS files)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import InvalidInput

if TYPE_CHECKING:
    import grpc


def target_options(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add ``--target`` (required, or an alternative to the store) and its credentials."""
    where = "a running gateway's gRPC address"
    p.add_argument(
        "--target", required=required, help=where if required else f"{where} instead of the store"
    )
    p.add_argument("--key", help="admin API key for --target (or HITL_ADMIN_KEY)")
    p.add_argument("--tls-ca", type=Path, help="with --target: CA certificate (PEM) for TLS")
    p.add_argument("--tls-cert", type=Path, help="with --target: client certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="with --target: the client key (PEM)")


def admin_target(args: argparse.Namespace) -> tuple[grpc.Channel, str]:
    """A channel to ``--target`` and the admin key to call it with ("" when a client
    certificate identifies the caller instead).

    Raises:
        InvalidInput: Neither a key (``--key`` or ``HITL_ADMIN_KEY``) nor a client certificate.
        gateway.config.ConfigError: A TLS file cannot be read, or half a client certificate.
    """
    from gateway.client_admin import admin_channel

    key: str = args.key or os.environ.get("HITL_ADMIN_KEY", "")
    if not key and args.tls_cert is None:
        raise InvalidInput("--key", "an admin key is needed with --target (or HITL_ADMIN_KEY)")
    channel = admin_channel(
        args.target, tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key
    )
    return channel, key
