"""``hitl-gateway policy replay`` as a real subprocess on a SQLite data directory and on
PostgreSQL."""

from __future__ import annotations

import base64
import csv
import io
import os
from collections import Counter
from pathlib import Path

import orjson
import pytest

from gateway.core.vault import KEY_FILE, Vault
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server
from tests.replay_builders import (
    APP,
    Made,
    expected_changes,
    load,
    make_decisions,
    policy_dirs,
    store_decisions,
)

__all__ = ["pg_dsn", "pg_server"]

KEY = bytes(range(1, 33))
RANGE = ("--since", "2025-06-01", "--until", "2025-06-02T00:00:00Z")


async def _data_dir(tmp_path: Path, made: list[Made]) -> Path:
    """A data directory as the gateway leaves it: its data key file and its database."""
    data = tmp_path / "var"
    data.mkdir()
    key_file = data / KEY_FILE
    key_file.write_text(base64.b64encode(KEY).decode() + "\n")
    os.chmod(key_file, 0o600)
    await store_decisions(str(data / "gateway.db"), made)
    return data


@pytest.fixture(params=["sqlite", "postgres"])
def pg_or_none(request: pytest.FixtureRequest) -> str | None:
    """None for a SQLite data directory, or the DSN of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


async def test_replay_of_10000_decisions_reports_the_changes_and_exits_3(
    pg_or_none: str | None, tmp_path: Path
) -> None:
    """On 10,000 stored decisions with a lowered auto-approve line, the JSON report's action
    counts are those a direct evaluation of the candidate gives, erased decisions are counted
    apart, and the exit code is 3."""
    base_dir, cand_dir = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), Vault([KEY]), 10_000)
    env: dict[str, str] = {}
    if pg_or_none is None:
        where = ["--data-dir", str(await _data_dir(tmp_path, made))]
    else:
        await store_decisions(pg_or_none, made)
        where = ["--store", pg_or_none]
        env["HITL_DATA_KEY"] = base64.b64encode(KEY).decode()
    expected = expected_changes(made, load(cand_dir))

    proc = cli("policy", "replay", str(cand_dir), *where, *RANGE, "--format", "json", env=env)

    assert proc.returncode == 3, proc.stderr
    app = orjson.loads(proc.stdout)["applications"][APP]
    moved = Counter(f"{a}->{b}" for a, b in expected.values() if a != b)
    assert {
        k: n for k, n in app["actions"].items() if k.split("->")[0] != k.split("->")[1]
    } == moved
    assert app["changed"] == len(expected)
    assert app["erased_skipped"] == sum(m.erased for m in made)
    for kind, ids in app["examples"].items():
        if kind.startswith("action "):
            assert 1 <= len(ids) <= 5 and set(ids) <= set(expected), kind
    assert "rule route[0]" in app["examples"] or app["new_rules"]


async def test_replay_under_the_policy_in_force_exits_0(tmp_path: Path) -> None:
    """Replaying decisions under the very policy that made them changes nothing: exit 0,
    with the held-then-decided ones counted as review -> review."""
    base_dir, _ = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), Vault([KEY]), 600)
    data = await _data_dir(tmp_path, made)

    proc = cli("policy", "replay", str(base_dir), "--data-dir", str(data), *RANGE)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no change" in proc.stderr
    assert "review->review" in proc.stdout


async def test_csv_lists_each_change_with_examples(tmp_path: Path) -> None:
    """The CSV report has one line per kind of change, with example decision ids."""
    base_dir, cand_dir = policy_dirs(tmp_path)
    made = make_decisions(load(base_dir), Vault([KEY]), 600)
    data = await _data_dir(tmp_path, made)

    proc = cli(
        "policy", "replay", str(cand_dir), "--data-dir", str(data), *RANGE, "--format", "csv"
    )

    assert proc.returncode == 3, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    changed = [r for r in rows if r["kind"] == "action" and r["examples"]]
    assert changed and all(
        r["change"].split("->")[0] != r["change"].split("->")[1] for r in changed
    )


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """An empty time range, an unreadable time and a missing database are usage errors."""
    base_dir, _ = policy_dirs(tmp_path)
    empty = ("--since", "2025-06-02", "--until", "2025-06-01")
    assert (
        cli("policy", "replay", str(base_dir), "--data-dir", str(tmp_path), *empty).returncode == 2
    )
    bad = ("--since", "yesterday")
    assert cli("policy", "replay", str(base_dir), "--data-dir", str(tmp_path), *bad).returncode == 2
    missing = cli("policy", "replay", str(base_dir), "--data-dir", str(tmp_path / "none"), *RANGE)
    assert missing.returncode == 2 and "no database" in missing.stderr
