"""The key settings: parsing, their errors, and `keys generate-secrets` output read back."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoints import load_public_key
from gateway.cli import main
from gateway.config import ConfigError, Settings, load_settings
from gateway.core.vault import SEALED
from gateway.keys import load_keys

PG = "postgresql://gw@db.internal/gateway"


def b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"HITL_AUDIT_SIGNING_KEY": "not base64!"}, "audit_signing_key: not valid base64"),
        ({"HITL_AUDIT_SIGNING_KEY": b64(31)}, "audit_signing_key: need base64 of a 32-byte"),
        ({"HITL_AUDIT_SIGNING_KEY": b64(64)}, "got 64 bytes"),
        ({"HITL_SESSION_KEY": "%%%"}, "session_key: not valid base64"),
        ({"HITL_SESSION_KEY": b64(16)}, "session_key: need base64 of at least 32 random bytes"),
        ({"HITL_DATA_KEY": "abc$"}, "data_key: .*not base64"),
        ({"HITL_DATA_KEY": b64(16)}, "data_key: .*need 32 bytes, got 16"),
    ],
)
def test_malformed_key_settings_are_named(environ: dict[str, str], fragment: str) -> None:
    """A key setting with bad base64 or the wrong length is refused, naming the setting."""
    with pytest.raises(ConfigError, match=fragment):
        load_settings(environ=environ)


def test_malformed_key_in_the_config_file_is_named(tmp_path: Path) -> None:
    """The same checks apply to keys given in the settings file."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"session_key: {b64(8)}\n")
    with pytest.raises(ConfigError, match="session_key: need base64 of at least 32"):
        load_settings(config_file=cfg, environ={})


def test_key_settings_stay_out_of_repr() -> None:
    """The keys never appear in the settings' repr (and so never in logs or tracebacks)."""
    values = {"data_key": b64(32), "audit_signing_key": b64(32), "session_key": b64(32)}
    text = repr(Settings(**values))
    assert not any(v in text for v in values.values())


def test_longer_session_key_and_raw_signing_key_are_accepted(tmp_path: Path) -> None:
    """A 64-byte session key and a signing key made by any Ed25519 tool's raw export work."""
    raw = Ed25519PrivateKey.generate()
    seed = raw.private_bytes_raw()
    env = {
        "HITL_SESSION_KEY": b64(64),
        "HITL_AUDIT_SIGNING_KEY": base64.b64encode(seed).decode(),
        "HITL_DATA_DIR": str(tmp_path / "var"),
    }
    keys = load_keys(load_settings(environ=env))
    assert keys.signer.public_key.public_bytes_raw() == raw.public_key().public_bytes_raw()
    assert len(keys.session_key) == 64


def _generated(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["keys", "generate-secrets", *args]) == 0
    return capsys.readouterr().out


def test_generated_env_lines_are_working_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keys generate-secrets` prints HITL_* lines that a PostgreSQL gateway accepts and uses."""
    out = _generated(capsys)
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert set(env) == {"HITL_DATA_KEY", "HITL_AUDIT_SIGNING_KEY", "HITL_SESSION_KEY"}
    settings = load_settings(environ={**env, "HITL_STORE": PG, "HITL_DATA_DIR": str(tmp_path)})
    keys = load_keys(settings)
    sealed = keys.vault.seal({"name": "Ana"}, ["name"], "dec-1")
    assert SEALED in sealed["name"]
    assert keys.vault.open(sealed, ["name"], "dec-1") == {"name": "Ana"}
    assert len(keys.session_key) == 32
    assert list(tmp_path.iterdir()) == []  # nothing written beside the settings
    assert out != _generated(capsys)  # fresh every time


def test_generated_yaml_is_a_secret_the_chart_reads(capsys: pytest.CaptureFixture[str]) -> None:
    """--format yaml prints a Kubernetes Secret with the chart's key names and valid values."""
    doc = yaml.safe_load(_generated(capsys, "--format", "yaml", "--name", "gw-keys"))
    assert (doc["kind"], doc["metadata"]["name"]) == ("Secret", "gw-keys")
    data = doc["stringData"]
    assert set(data) == {"data-key", "audit-signing-key", "session-key"}
    env = {f"HITL_{k.replace('-', '_').upper()}": v for k, v in data.items()}
    load_keys(load_settings(environ={**env, "HITL_STORE": PG}))


def test_public_key_printed_from_the_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit public-key` prints the public half of audit_signing_key, with no key file around."""
    seed = Ed25519PrivateKey.generate()
    monkeypatch.setenv(
        "HITL_AUDIT_SIGNING_KEY", base64.b64encode(seed.private_bytes_raw()).decode()
    )
    assert main(["audit", "public-key", "--data-dir", str(tmp_path)]) == 0
    pem = capsys.readouterr().out
    assert load_public_key(pem.encode()).public_bytes_raw() == seed.public_key().public_bytes_raw()
    monkeypatch.delenv("HITL_AUDIT_SIGNING_KEY")
    assert main(["audit", "public-key", "--data-dir", str(tmp_path)]) == 1
    assert "no audit_signing_key set" in capsys.readouterr().err
