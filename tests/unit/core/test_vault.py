"""Sealing of sensitive fields: round trip, binding, key rotation and the key file."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from gateway.core.vault import KEY_FILE, SEALED, Vault, VaultError, key_id

K1, K2 = os.urandom(32), os.urandom(32)
PATHS = ("customer.name", "customer.national_id", "missing.path")


def _input() -> dict[str, object]:
    return {"amount": 5.0, "customer": {"name": "Erika", "national_id": "X-123", "age": 40.0}}


def test_seal_then_open_round_trips_and_leaves_the_input_unchanged() -> None:
    """Sealed fields become key-id-tagged ciphertexts that open to the original values."""
    v = Vault([K1])
    data = _input()
    sealed = v.seal(data, PATHS, "d1")
    assert data == _input()
    assert sealed["amount"] == 5.0 and sealed["customer"]["age"] == 40.0
    tag = sealed["customer"]["name"][SEALED]
    assert tag.startswith(f"{key_id(K1)}:") and "Erika" not in tag
    assert v.open(sealed, PATHS, "d1") == data


def test_each_seal_uses_a_fresh_nonce() -> None:
    """The same value sealed twice gives two different ciphertexts."""
    v = Vault([K1])
    a = v.seal(_input(), PATHS, "d1")["customer"]["name"]
    b = v.seal(_input(), PATHS, "d1")["customer"]["name"]
    assert a != b


def test_ciphertext_moved_to_another_decision_or_field_does_not_open() -> None:
    """A ciphertext is bound to its decision id and field path."""
    v = Vault([K1])
    sealed = v.seal(_input(), PATHS, "d1")
    with pytest.raises(VaultError, match=r"customer\.name"):
        v.open(sealed, PATHS, "d2")
    swapped = {"customer": {"name": sealed["customer"]["national_id"]}}
    with pytest.raises(VaultError, match="does not open"):
        v.open(swapped, PATHS, "d1")


def test_old_keys_still_open_after_rotation_and_the_newest_seals() -> None:
    """With a second key appended, old ciphertexts open and new ones use the newest key."""
    old = Vault([K1]).seal(_input(), PATHS, "d1")
    ring = Vault([K1, K2])
    assert ring.open(old, PATHS, "d1") == _input()
    new = ring.seal(_input(), PATHS, "d2")
    assert new["customer"]["name"][SEALED].startswith(f"{key_id(K2)}:")
    with pytest.raises(VaultError, match=f"data key '{key_id(K1)}'"):
        Vault([K2]).open(old, PATHS, "d1")


def test_values_stored_before_encryption_pass_through() -> None:
    """A clear value in an older row is returned as it is."""
    assert Vault([K1]).open(_input(), PATHS, "d1") == _input()


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """The first load creates a private key file; the next load uses the same key."""
    a = Vault.load(tmp_path / "var")
    path = tmp_path / "var" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    b = Vault.load(tmp_path / "var")
    assert a.write_key_id == b.write_key_id
    assert b.open(a.seal(_input(), PATHS, "d"), PATHS, "d") == _input()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file with group or other permissions stops start-up."""
    Vault.load(tmp_path)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        Vault.load(tmp_path)


def test_keys_from_the_environment_take_precedence(tmp_path: Path) -> None:
    """HITL_DATA_KEY holds comma-separated base64 keys, the last one sealing."""
    env = ",".join(base64.b64encode(k).decode() for k in (K1, K2))
    v = Vault.load(tmp_path, env)
    assert v.write_key_id == key_id(K2)
    assert not (tmp_path / KEY_FILE).exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [("not base64!", "key 1 is not base64"), (base64.b64encode(b"short").decode(), "32 bytes")],
)
def test_bad_keys_are_refused(tmp_path: Path, env: str, message: str) -> None:
    """A key that is not base64 or not 256 bits is refused with the reason."""
    with pytest.raises(VaultError, match=message):
        Vault.load(tmp_path, env)
