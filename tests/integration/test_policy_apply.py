"""A policy change applied to a running fleet: ``policy apply`` over AdminService, SIGHUP, on
SQLite and on two PostgreSQL replicas; refused candidates change nothing; a version applied
live outlives a restart with the old directory; the candidate's own tests gate the apply."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from gateway.app import Gateway
from gateway.audit.events import EventType
from gateway.client import AsyncGatewayClient, GatewayClient
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.testing import create_api_key
from gateway.types import Role, Status
from tests.integration.replicas import replicas
from tests.integration.serverproc import ServerProcess, cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

LINE = '{when: "output.score >= 0.8", action: approve, reason: "high score"}'
LOWER = '{when: "output.score >= 0.6", action: approve, reason: "high score"}'
GREY = {"score": 0.7}
"""Held under the shipped line (0.8), approved under the lowered one (0.6)."""

CASE = """cases:
  - name: a grey score is approved under the lowered line
    application: t-echo
    input: {score: 0.7}
    output: {score: 0.7}
    expect: {action: %s}
"""


def candidate(policies: Path, target: Path, *, line: str = LOWER, case: str = "") -> Path:
    """A copy of ``policies`` with t-echo's approve line replaced (and a test case)."""
    shutil.copytree(policies, target)
    apps = target / "test-apps.yaml"
    text = apps.read_text()
    assert LINE in text
    apps.write_text(text.replace(LINE, line))
    if case:
        (target / "tests").mkdir(exist_ok=True)
        (target / "tests" / "t-echo.yaml").write_text(CASE % case)
    return target


async def admin_key(gateway: Gateway) -> str:
    token, record = new_key((), role=Role.ADMIN)
    await gateway.store.add_api_key(record)
    return token


async def apply(gateway: Gateway, directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    key = await admin_key(gateway)
    target = ["--target", f"127.0.0.1:{gateway.grpc_port}", "--key", key]
    return await asyncio.to_thread(cli, "policy", "apply", str(directory), *target, *extra)


async def test_apply_switches_the_next_decision_and_keeps_both_texts_for_auditors(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings, tmp_path: Path
) -> None:
    """The next decision is made and recorded under the applied version; ``audit policy``
    prints both versions' files and the chain verifies."""
    old = gateway.policies.version
    before = await client.decide("t-echo", GREY)
    assert (before.status, before.policy_version) == (Status.PENDING_REVIEW, old)

    new_dir = candidate(settings.policies, tmp_path / "new", case="approve")
    done = await apply(gateway, new_dir)
    assert done.returncode == 0, done.stderr
    new = done.stdout.split()[0]
    assert new.startswith("sha256:") and new != old
    assert "1 passed, 0 failed" in done.stderr

    after = await client.decide("t-echo", GREY)
    assert (after.status, after.policy_version) == (Status.APPROVED, new)
    assert gateway.policies.version == new

    db = ["--db", str(settings.data_dir / "gateway.db")]
    for digest, text in ((old, LINE), (new, LOWER)):
        shown = await asyncio.to_thread(cli, "audit", "policy", digest, *db)
        assert shown.returncode == 0, shown.stderr
        assert text in shown.stdout
    events = await gateway.store.audit_events(limit=10_000)
    loaded = [e for e in events if e.type == EventType.POLICY_LOADED]
    assert loaded[-1].payload is not None
    assert loaded[-1].payload["digest"] == new and loaded[-1].payload["previous"] == old
    assert loaded[-1].payload["tests"] == {"passed": 1, "failed": 0}
    assert loaded[-1].actor.startswith("app:")
    verified = await asyncio.to_thread(cli, "audit", "verify", *db)
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_a_broken_candidate_is_refused_with_its_location_and_the_old_version_serves(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings, tmp_path: Path
) -> None:
    """A condition that does not compile: INVALID_ARGUMENT with file:line:field; nothing
    stored, and decisions go on under the version in force."""
    old = gateway.policies.version
    broken = candidate(settings.policies, tmp_path / "broken", line=LINE.replace(">=", ">=>"))
    done = await apply(gateway, broken)
    assert done.returncode == 1
    assert "INVALID_ARGUMENT" in done.stderr
    assert "test-apps.yaml:" in done.stderr and "route[0].when" in done.stderr
    assert gateway.policies.version == old
    assert len(await gateway.store.list_policy_versions()) == 1
    decision = await client.decide("t-echo", GREY)
    assert (decision.status, decision.policy_version) == (Status.PENDING_REVIEW, old)


async def test_failing_policy_tests_refuse_the_candidate_unless_forced_with_a_reason(
    gateway: Gateway, settings: Settings, tmp_path: Path
) -> None:
    """The candidate's own tests/ run in the apply: a failing case refuses it, naming the
    case; ``--force REASON`` applies it, and the forcing is in its audit event."""
    old = gateway.policies.version
    wrong = candidate(settings.policies, tmp_path / "wrong", case="review")
    done = await apply(gateway, wrong)
    assert done.returncode == 1
    assert "FAILED_PRECONDITION" in done.stderr
    assert "a grey score is approved under the lowered line" in done.stderr
    assert gateway.policies.version == old

    forced = await apply(gateway, wrong, "--force", "CAB-1234 emergency change")
    assert forced.returncode == 0, forced.stderr
    assert gateway.policies.version != old
    events = await gateway.store.audit_events(limit=10_000)
    payload = [e for e in events if e.type == EventType.POLICY_LOADED][-1].payload
    assert payload is not None
    assert payload["tests"] == {"passed": 0, "failed": 1, "forced": True}
    assert payload["forced_reason"] == "CAB-1234 emergency change"


async def test_applying_the_version_in_force_again_changes_nothing(
    gateway: Gateway, settings: Settings
) -> None:
    """The same files again: exit 0, "already in force", no new event."""
    events = len(await gateway.store.audit_events(limit=10_000))
    done = await apply(gateway, settings.policies)
    assert done.returncode == 0, done.stderr
    assert "already in force" in done.stdout
    assert len(await gateway.store.audit_events(limit=10_000)) == events


async def test_a_version_applied_live_outlives_a_restart_with_the_old_directory(
    settings: Settings, tmp_path: Path
) -> None:
    """A replica restarting with the files it was deployed with serves the version applied
    since (a rollback is an apply); a directory never seen before takes over (a deploy)."""
    first = Gateway(settings)
    await first.start()
    try:
        old = first.policies.version
        done = await apply(first, candidate(settings.policies, tmp_path / "new"))
        assert done.returncode == 0, done.stderr
        new = first.policies.version
    finally:
        await first.stop()
    again = Gateway(settings)
    await again.start()
    try:
        assert again.policies.version == new != old
    finally:
        await again.stop()
    deployed = candidate(settings.policies, tmp_path / "deployed", line=LINE.replace("0.8", "0.9"))
    third = Gateway(replace(settings, policies=deployed))
    await third.start()
    try:
        assert third.policies.version not in (old, new)
    finally:
        await third.stop()


async def test_apply_reaches_both_replicas_on_postgresql(
    replicas: tuple[Gateway, Gateway], tmp_path: Path
) -> None:
    """Applied through replica A: the next decision on B, a second later at most, is made
    under the new version too."""
    a, b = replicas
    old = a.policies.version
    done = await apply(a, candidate(a.settings.policies, tmp_path / "new"))
    assert done.returncode == 0, done.stderr
    new = a.policies.version
    assert new != old
    started = time.monotonic()
    while b.policies.version != new:
        assert time.monotonic() - started < 1.0, "replica B did not switch within a second"
        await asyncio.sleep(0.02)
    for gw in (a, b):
        async with AsyncGatewayClient(
            f"127.0.0.1:{gw.grpc_port}", api_key=await create_api_key(gw)
        ) as client:
            decision = await client.decide("t-echo", GREY)
            assert (decision.status, decision.policy_version) == (Status.APPROVED, new)


def test_sighup_reloads_the_policy_directory_and_refuses_a_broken_one(tmp_path: Path) -> None:
    """A running server re-reads its directory on SIGHUP; a broken edit is refused (logged)
    and the version in force keeps deciding."""
    from tests.integration.conftest import ROOT

    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(Path(__file__).parent / "policies" / "test-apps.yaml", policies)
    server = ServerProcess(tmp_path / "var", policies)
    server.start()
    try:
        made = cli(
            "keys",
            "create",
            "--app",
            "t-echo",
            "--data-dir",
            str(server.data_dir),
            "--policies",
            str(policies),
        )
        assert made.returncode == 0, made.stderr
        key = made.stdout.strip().splitlines()[-1].split()[-1]
        with GatewayClient(f"127.0.0.1:{server.port}", api_key=key) as client:
            old = client.decide("t-echo", GREY).policy_version
            apps = policies / "test-apps.yaml"
            apps.write_text(apps.read_text().replace(LINE, LOWER))
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while (d := client.decide("t-echo", GREY)).policy_version == old:
                assert time.monotonic() < deadline, "SIGHUP did not apply the directory"
                time.sleep(0.1)
            assert d.status is Status.APPROVED
            new = d.policy_version
            apps.write_text(apps.read_text().replace(LOWER, LOWER.replace(">=", ">=>")))
            server.proc.send_signal(signal.SIGHUP)
            time.sleep(1.0)
            assert client.decide("t-echo", GREY).policy_version == new
        assert server.proc.poll() is None
        assert "policy.reload_refused" in server.log.read_text()
    finally:
        server.close()
