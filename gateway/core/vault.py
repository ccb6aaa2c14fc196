"""Encryption at rest of the personal data named by a policy's ``sensitive_fields``.

Each sensitive value is sealed on its own with AES-256-GCM before the decision is stored and
replaced by ``{"$sealed": "<key id>:<base64 nonce + ciphertext>"}``. The key id next to each
ciphertext lets keys rotate: the key ring holds several keys, the newest seals, every one of
them still opens. The associated data binds a ciphertext to its decision and field path, so a
ciphertext copied into another row or field does not open.

Keys come from ``HITL_DATA_KEY`` (base64 keys separated by commas, newest last) or else from
``<data_dir>/data.keys`` (one base64 key per line, newest last), created with one random key and
mode 0600 at first start. Rotate by appending a line (``openssl rand -base64 32``) and restarting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "data.keys"
SEALED = "$sealed"
_NONCE = 12


class VaultError(Exception):
    """A key ring that cannot be used, or a stored ciphertext that does not open."""


def key_id(key: bytes) -> str:
    """A short public name of a key: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


class Vault:
    """Seals and opens the sensitive fields of a decision's input."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise VaultError("the data key ring is empty")
        self._ciphers: dict[str, AESGCM] = {}
        for key in keys:
            if len(key) != 32:
                raise VaultError(f"data key {key_id(key)}: need 32 bytes, got {len(key)}")
            self._ciphers[key_id(key)] = AESGCM(key)
        self.write_key_id = key_id(keys[-1])
        self._writer = self._ciphers[self.write_key_id]

    @classmethod
    def load(cls, data_dir: Path, env_keys: str = "") -> Vault:
        """The key ring from ``env_keys`` if given, else from the key file (created if missing)."""
        if env_keys.strip():
            return cls(_decode_all(env_keys.split(","), "HITL_DATA_KEY"))
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            try:
                # O_EXCL: two processes starting at once must not overwrite each other's key.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(base64.b64encode(AESGCM.generate_key(256)).decode() + "\n")
        if path.stat().st_mode & 0o077:
            raise VaultError(f"{path}: readable by others; chmod 600 it")
        return cls(_decode_all(path.read_text().splitlines(), str(path)))

    def seal(self, data: dict[str, Any], paths: Sequence[str], context: str) -> dict[str, Any]:
        """A copy of ``data`` with the value at each present path sealed; ``data`` is unchanged.

        ``context`` (the decision id) is bound into each ciphertext.
        """
        return _rewrite(data, paths, lambda v, p: self._seal_one(v, context, p))

    def open(self, data: dict[str, Any], paths: Sequence[str], context: str) -> dict[str, Any]:
        """The inverse of `seal`; values that are not sealed (older rows) pass unchanged.

        Raises:
            VaultError: A ciphertext names an unknown key or fails authentication.
        """
        return _rewrite(data, paths, lambda v, p: self._open_one(v, context, p))

    def _seal_one(self, value: Any, context: str, path: str) -> Any:
        nonce = os.urandom(_NONCE)
        ct = self._writer.encrypt(nonce, orjson.dumps(value), _aad(context, path))
        return {SEALED: f"{self.write_key_id}:{base64.b64encode(nonce + ct).decode()}"}

    def _open_one(self, value: Any, context: str, path: str) -> Any:
        if not (isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)):
            return value
        kid, _, blob = value[SEALED].partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise VaultError(f"{path}: sealed with data key {kid!r}, which is not in the key ring")
        try:
            raw = base64.b64decode(blob, validate=True)
            return orjson.loads(cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(context, path)))
        except (binascii.Error, InvalidTag, ValueError):
            raise VaultError(f"{path}: stored ciphertext does not open (altered?)") from None


def _aad(context: str, path: str) -> bytes:
    return f"{context}\x00{path}".encode()


def _decode_all(lines: Sequence[str], source: str) -> list[bytes]:
    keys = []
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            keys.append(base64.b64decode(text, validate=True))
        except binascii.Error:
            raise VaultError(f"{source}: key {n} is not base64") from None
    return keys


def _rewrite(
    data: dict[str, Any], paths: Sequence[str], fn: Callable[[Any, str], Any]
) -> dict[str, Any]:
    """Copy the dicts on the way to each path; replace its value with ``fn(value, path)``."""
    if not paths:
        return data
    out = dict(data)
    for path in paths:
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = node = dict(child)
        else:
            if parts[-1] in node:
                node[parts[-1]] = fn(node[parts[-1]], path)
    return out
