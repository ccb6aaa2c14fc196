"""Transport security for gRPC: server credentials and the client certificate's identity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from gateway.config import ConfigError

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def read_pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{what}: {path} is not a PEM file")
    return data


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None = None
) -> grpc.ServerCredentials:
    """TLS credentials; with ``client_ca`` every client must present a certificate it signed."""
    pair = [(read_pem(key, "tls_key"), read_pem(cert, "tls_cert"))]
    if client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair, root_certificates=read_pem(client_ca, "tls_client_ca"), require_client_auth=True
    )


def client_common_name(context: Any) -> str | None:
    """The verified client certificate's subject common name, or None without mutual TLS."""
    auth = context.auth_context()
    names = auth.get("x509_common_name") if auth else None
    if not names:
        return None
    name = names[0]
    return name.decode() if isinstance(name, bytes) else str(name)


def check_bind(host: str, tls: bool, allow_insecure: bool, what: str) -> None:
    """Refuse to serve plaintext beyond loopback unless explicitly allowed."""
    if not tls and host not in LOOPBACK and not allow_insecure:
        raise ConfigError(
            f"{what}: refusing to serve plaintext on {host}; configure tls_cert and tls_key, "
            "or set allow_insecure (HITL_ALLOW_INSECURE=1) when a proxy terminates TLS"
        )
