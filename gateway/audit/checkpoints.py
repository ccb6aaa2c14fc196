"""Signed checkpoints of the chain head (Ed25519).

The hash chain alone shows that events link up; it cannot show that none were cut off the end,
or that someone with write access did not rewrite the tail and re-hash it consistently. A
checkpoint signs ``(seq, hash)`` of the head with a key kept outside the database, so an
auditor holding only the public key can check that the chain still reaches every signed head
with the signed hash.

The signed bytes are canonical JSON (sorted keys, no whitespace) of
``{"hash", "seq", "signed_at", "v"}``, stored next to the signature so any Ed25519 tool can
check them without this code. Version 2 (`VERSION_TREE`) adds ``tree_size`` and ``tree_root``
(hex), the root of the audit Merkle tree over the first ``tree_size`` events
(`gateway.audit.merkle`), so inclusion and consistency proofs can be checked against a signed
head; version 1 checkpoints stay verifiable as they were.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.timefmt import format_ts

VERSION = "hitl-audit-checkpoint/1"
VERSION_TREE = "hitl-audit-checkpoint/2"
"""Checkpoints that also sign the Merkle tree's size and root."""
KEY_FILE = "audit-signing-key.pem"
"""File name of the private key inside the data directory."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed chain head."""

    seq: int
    hash: str
    signed_at: str
    """`format_ts` text of the signing time."""
    key_id: str
    signature: bytes
    signed: bytes
    """The exact bytes the signature covers."""

    @property
    def tree_root(self) -> str | None:
        """Hex root of the Merkle tree over events ``1..seq`` the checkpoint signs (version 2),
        or None for a version 1 checkpoint. Read from the signed bytes, where it is signed."""
        try:
            body = orjson.loads(self.signed)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or body.get("v") != VERSION_TREE:
            return None
        value = body.get("tree_root")
        return value if isinstance(value, str) else None


class CheckpointError(ValueError):
    """A checkpoint whose signature or content does not check out."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"checkpoint at seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason


def signed_bytes(seq: int, hash_: str, signed_at: str, tree_root: str | None = None) -> bytes:
    """What a checkpoint signs: version 1 without ``tree_root``, version 2 with it."""
    if tree_root is None:
        body: dict[str, object] = {"hash": hash_, "seq": seq, "signed_at": signed_at, "v": VERSION}
    else:
        body = {
            "hash": hash_,
            "seq": seq,
            "signed_at": signed_at,
            "tree_root": tree_root,
            "tree_size": seq,
            "v": VERSION_TREE,
        }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def key_id(public_key: Ed25519PublicKey) -> str:
    """``"sha256:"`` + hex SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; raises ValueError when it is not an Ed25519 key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


class Signer:
    """Signs chain heads with the private key at ``path``, created (mode 0600) when missing."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.key_id = key_id(self.public_key)

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path}: not an Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not overwrite each other's key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return cls(key)

    def sign(self, seq: int, hash_: str, at: datetime, tree_root: str | None = None) -> Checkpoint:
        """Sign the head ``(seq, hash_)``, and the Merkle root over ``1..seq`` when given."""
        ts = format_ts(at)
        data = signed_bytes(seq, hash_, ts, tree_root)
        return Checkpoint(seq, hash_, ts, self.key_id, self._key.sign(data), data)


def check(cp: Checkpoint, public_key: Ed25519PublicKey) -> None:
    """Raise `CheckpointError` unless ``cp`` is signed by ``public_key`` and says what it says."""
    if cp.key_id != key_id(public_key):
        raise CheckpointError(
            cp.seq,
            f"signed by key {cp.key_id}, not by the key checked against {key_id(public_key)}",
        )
    try:
        public_key.verify(cp.signature, cp.signed)
    except InvalidSignature:
        raise CheckpointError(cp.seq, "signature does not verify") from None
    if cp.signed != signed_bytes(cp.seq, cp.hash, cp.signed_at, cp.tree_root):
        raise CheckpointError(cp.seq, "signed bytes do not match its seq, hash and time")


def check_all(cps: Iterable[Checkpoint], public_key: Ed25519PublicKey) -> dict[int, str]:
    """Check every checkpoint; returns ``seq -> hash`` for `verify_rows`.

    Raises:
        CheckpointError: The first checkpoint that does not check out.
    """
    out: dict[int, str] = {}
    for cp in cps:
        check(cp, public_key)
        out[cp.seq] = cp.hash
    return out
