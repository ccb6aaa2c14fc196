"""Checkpoints that sign the Merkle root (version 2) beside those that do not (version 1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit import checkpoints

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ROOT = "ab" * 32


def test_a_version_1_checkpoint_still_verifies_and_signs_no_root() -> None:
    """A head signed without a root keeps its old bytes and verifies as before."""
    signer = checkpoints.Signer(Ed25519PrivateKey.generate())
    cp = signer.sign(7, "cd" * 32, AT)
    assert orjson.loads(cp.signed)["v"] == checkpoints.VERSION
    assert cp.tree_root is None
    checkpoints.check(cp, signer.public_key)


def test_a_version_2_checkpoint_signs_size_and_root() -> None:
    """The signed bytes name the tree's size (the head seq) and root, and verify."""
    signer = checkpoints.Signer(Ed25519PrivateKey.generate())
    cp = signer.sign(7, "cd" * 32, AT, ROOT)
    body = orjson.loads(cp.signed)
    assert body == {
        "hash": "cd" * 32,
        "seq": 7,
        "signed_at": cp.signed_at,
        "tree_root": ROOT,
        "tree_size": 7,
        "v": checkpoints.VERSION_TREE,
    }
    assert cp.tree_root == ROOT
    checkpoints.check(cp, signer.public_key)


def test_a_root_changed_after_signing_is_refused() -> None:
    """Signed bytes carrying another root (re-serialised, not re-signed) fail the signature."""
    signer = checkpoints.Signer(Ed25519PrivateKey.generate())
    cp = signer.sign(7, "cd" * 32, AT, ROOT)
    forged = replace(cp, signed=cp.signed.replace(ROOT.encode(), ("ef" * 32).encode()))
    with pytest.raises(checkpoints.CheckpointError, match="signature does not verify"):
        checkpoints.check(forged, signer.public_key)
