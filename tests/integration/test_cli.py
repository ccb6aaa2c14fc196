"""The command line, run as a real process."""

from __future__ import annotations

import shutil
from pathlib import Path

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
