"""The gateway's own secret keys: where each comes from, and the rule for replicas.

Three keys: the data key ring sealing ``sensitive_fields`` at rest (``data_key``), the Ed25519
key signing audit checkpoints (``audit_signing_key``) and the key signing reviewer UI cookies
(``session_key``). Each is taken from its setting when set, else from a file under the data
directory, created at first start (the embedded SQLite store's way: one process, one volume).

Replicas sharing a PostgreSQL store must share the keys too, or each would invent its own: a
decision sealed by one could not be opened by another, checkpoints would be signed by several
keys, and a cookie from one replica would be refused by the next. So with a shared store the
gateway refuses to start unless all three are set explicitly.

``audit_signing_key`` is the base64 of the raw 32-byte Ed25519 private key (RFC 8032's seed)
rather than PEM: one line, so it fits ``HITL_*=value`` lines, ``.env`` files and
``kubectl create secret --from-env-file`` like the other two keys, which are base64 too.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.audit.checkpoints import KEY_FILE, Signer
from gateway.config import ConfigError, Settings
from gateway.core.vault import Vault, VaultError
from gateway.store import is_shared_store

SHARED_KEYS = ("data_key", "audit_signing_key", "session_key")
"""Settings every replica on a shared store must be given, all with the same values."""
MIN_SESSION_KEY = 32


@dataclass(frozen=True, slots=True)
class GatewayKeys:
    """The keys one gateway process uses."""

    vault: Vault
    signer: Signer
    session_key: bytes


def _b64(name: str, text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: not valid base64") from None


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """The ``audit_signing_key`` setting: base64 of a raw 32-byte Ed25519 private key."""
    raw = _b64("audit_signing_key", text)
    if len(raw) != 32:
        raise ConfigError(
            f"audit_signing_key: need base64 of a 32-byte Ed25519 private key, got {len(raw)} "
            "bytes (make one with `hitl-gateway keys generate-secrets`)"
        )
    return Ed25519PrivateKey.from_private_bytes(raw)


def parse_session_key(text: str) -> bytes:
    """The ``session_key`` setting: base64 of at least 32 random bytes."""
    raw = _b64("session_key", text)
    if len(raw) < MIN_SESSION_KEY:
        raise ConfigError(
            f"session_key: need base64 of at least {MIN_SESSION_KEY} random bytes, "
            f"got {len(raw)} (`openssl rand -base64 32`)"
        )
    return raw


def load_secret(data_dir: Path) -> bytes:
    """The cookie signing key under ``data_dir``, created with 256 random bits when missing."""
    path = data_dir / "ui-session.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once cannot both write a key and each keep its own.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex())
    return key


def _vault(settings: Settings) -> Vault:
    """The data key ring of ``data_key`` if set, else of ``<data_dir>/data.keys``."""
    try:
        return Vault.load(settings.data_dir, settings.data_key)
    except VaultError as exc:  # a bad key ring stops start-up with a one-line message
        raise ConfigError(f"data_key: {exc}") from None


def check_key_settings(settings: Settings) -> None:
    """Raise `ConfigError` naming the first key setting that is set but malformed."""
    if settings.data_key.strip():  # set: the files under data_dir are not touched
        _vault(settings)
    if settings.audit_signing_key.strip():
        parse_signing_key(settings.audit_signing_key)
    if settings.session_key.strip():
        parse_session_key(settings.session_key)


def require_shared_keys(settings: Settings) -> None:
    """On a shared (PostgreSQL) store, refuse to go on unless every key is set explicitly."""
    if not is_shared_store(settings.store_url):
        return
    missing = [name for name in SHARED_KEYS if not getattr(settings, name).strip()]
    if missing:
        names = ", ".join(f"{n} (HITL_{n.upper()})" for n in missing)
        raise ConfigError(
            f"{names}: must be set when the store is shared (PostgreSQL): each replica would "
            "otherwise make its own keys, so data sealed by one could not be opened by another, "
            "audit checkpoints would be signed by several keys, and reviewer UI sessions would "
            "not carry over; make all three once with `hitl-gateway keys generate-secrets` and "
            "give every replica the same values"
        )


def load_keys(settings: Settings) -> GatewayKeys:
    """The keys from the settings, or from (new) files under the data directory.

    Raises:
        ConfigError: A malformed key, or a key missing on a shared store.
    """
    require_shared_keys(settings)
    s = settings
    vault = _vault(s)
    if s.audit_signing_key.strip():
        signer = Signer(parse_signing_key(s.audit_signing_key))
    else:
        signer = Signer.load_or_create(s.data_dir / KEY_FILE)
    if s.session_key.strip():
        session_key = parse_session_key(s.session_key)
    else:
        session_key = load_secret(s.data_dir)
    return GatewayKeys(vault, signer, session_key)


def configured_public_key(settings: Settings) -> Ed25519PublicKey | None:
    """The checkpoint public key: of ``audit_signing_key`` if set, else of the key file if any."""
    if settings.audit_signing_key.strip():
        return parse_signing_key(settings.audit_signing_key).public_key()
    path = settings.data_dir / KEY_FILE
    return Signer.load_or_create(path).public_key if path.exists() else None


def generate_secrets() -> dict[str, str]:
    """Fresh values for every key setting, by setting name."""
    signing = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return {
        "data_key": base64.b64encode(AESGCM.generate_key(256)).decode(),
        "audit_signing_key": base64.b64encode(signing).decode(),
        "session_key": base64.b64encode(secrets.token_bytes(MIN_SESSION_KEY)).decode(),
    }
