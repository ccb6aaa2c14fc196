"""The command line, run as a real process."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.app import Gateway
from gateway.audit.checkpoints import Signer
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.keys import KEY_FILE
from gateway.testing import create_api_key
from tests.integration.serverproc import cli

ROOT = Path(__file__).resolve().parents[2]


def test_policy_check_accepts_shipped_policies() -> None:
    """`policy check` validates the default policies and names their version."""
    result = cli("policy", "check", str(ROOT / "policies"))
    assert result.returncode == 0, result.stderr
    assert "sha256:" in result.stdout


def test_policy_test_runs_shipped_cases() -> None:
    """`policy test` runs the policy test cases shipped with the default policies."""
    result = cli("policy", "test", str(ROOT / "policies"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_policy_check_names_file_line_and_field(tmp_path: Path) -> None:
    """A typo in a condition stops `policy check` with the file, line and field."""
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target)
    apps = target / "applications.yaml"
    text = apps.read_text()
    assert "input.amount" in text
    apps.write_text(text.replace("input.amount", "inptu.amount", 1))
    line = next(i for i, s in enumerate(apps.read_text().splitlines(), 1) if "inptu" in s)
    result = cli("policy", "check", str(target))
    assert result.returncode == 1
    assert f"applications.yaml:{line}" in result.stderr
    assert "when" in result.stderr and "inptu" in result.stderr


def test_serve_refuses_to_start_on_bad_policy(tmp_path: Path) -> None:
    """`serve` with an invalid policy exits non-zero naming the file instead of serving."""
    target = tmp_path / "policies"
    target.mkdir()
    (target / "bad.yaml").write_text(
        "tiers: [{name: minimal}]\napplications: [{id: x, tier: nope}]\n"
    )
    result = cli(
        "serve",
        "--policies",
        str(target),
        "--data-dir",
        str(tmp_path / "var"),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
    )
    assert result.returncode == 1
    assert "bad.yaml:" in result.stderr


def test_keys_create_refuses_unknown_application(tmp_path: Path) -> None:
    """`keys create` for an application the policies do not name fails and stores nothing."""
    result = cli(
        "keys",
        "create",
        "--app",
        "nope",
        "--data-dir",
        str(tmp_path),
        "--policies",
        str(ROOT / "policies"),
    )
    assert result.returncode == 2
    assert "nope" in result.stderr
    assert not (tmp_path / "gateway.db").exists()


def test_audit_verify_without_database(tmp_path: Path) -> None:
    """`audit verify` on a data directory without a database says so."""
    result = cli("audit", "verify", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no database" in result.stderr


async def test_audit_verify_of_a_file_uses_its_own_data_directory_keys(
    settings: Settings, tmp_path: Path
) -> None:
    """`audit verify --db FILE` checks FILE's checkpoints with the key beside FILE, not ./var's."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            await c.decide("t-echo", {"score": 0.9})
    db = settings.data_dir / "gateway.db"
    elsewhere = tmp_path / "elsewhere"
    # The demo's data directory in the working directory, with a signing key of its own.
    Signer.load_or_create(elsewhere / "var" / KEY_FILE)

    result = cli("audit", "verify", "--db", str(db), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "signed checkpoints checked" in result.stdout
    assert "0 signed checkpoints" not in result.stdout

    named = cli("audit", "verify", "--db", str(db), "--data-dir", str(elsewhere / "var"))
    assert named.returncode == 1
    assert "not by the key checked against" in named.stderr
    assert str(elsewhere / "var" / KEY_FILE) in named.stderr
