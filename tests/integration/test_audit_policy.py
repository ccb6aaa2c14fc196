"""Auditors read the policy text in force for a decision: ``audit policy`` on a database file,
on PostgreSQL and on a running gateway (``--target``), ``audit trail``'s policy line, and
AuditService.GetPolicyVersion with its keys."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from gateway._pb.hitl.audit.v1 import audit_pb2 as pb
from gateway._pb.hitl.audit.v1 import audit_pb2_grpc
from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.keys import generate_secrets
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server"]

HELD = {"score": 0.5}
UNKNOWN = "sha256:" + "0" * 64


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The gateway's settings on each store."""
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())


def _where(settings: Settings) -> list[str]:
    """The offline source of the gateway's trail: its database file, or its PostgreSQL URL."""
    if settings.store:
        return ["--store", settings.store, "--policies", str(settings.policies)]
    return ["--db", str(settings.data_dir / "gateway.db"), "--policies", str(settings.policies)]


async def _audit(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, "audit", *args)


async def _key(gateway: Gateway, role: str) -> str:
    apps = () if role != "app" else tuple(sorted(gateway.policies.applications))
    token, record = new_key(apps, role=role)
    await gateway.store.add_api_key(record)
    return token


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.glob("*.yaml"))}


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[audit_pb2_grpc.AuditServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        yield audit_pb2_grpc.AuditServiceStub(channel)


async def test_audit_policy_prints_the_exact_files_a_decision_was_made_under(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings
) -> None:
    """From a decision's trail to its policy's files, offline, byte for byte."""
    decision = await client.decide("t-echo", HELD)
    digest = decision.policy_version
    assert digest == gateway.policies.version

    done = await _audit("trail", decision.id, *_where(settings))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"policy {digest} (stored; `hitl-gateway audit policy {digest}`)"
    )
    jsonl = await _audit("trail", decision.id, "--format", "jsonl", *_where(settings))
    assert all(json.loads(line) for line in jsonl.stdout.splitlines())  # no extra line

    done = await _audit("policy", digest, *_where(settings))
    assert done.returncode == 0, done.stderr
    for name, text in _files(settings.policies).items():
        assert f"\n==> {name} <==\n{text}" in done.stdout

    one = await _audit("policy", digest, "--file", "tiers.yaml", *_where(settings))
    assert one.returncode == 0, one.stderr
    assert one.stdout == (settings.policies / "tiers.yaml").read_text()

    as_json = await _audit("policy", digest, "--format", "json", *_where(settings))
    record = json.loads(as_json.stdout)
    assert record["digest"] == digest and record["loaded_by"] == "system"
    assert record["source"] == str(settings.policies)
    assert {f["name"]: f["text"] for f in record["files"]} == _files(settings.policies)


async def test_an_unknown_digest_or_file_is_an_error(gateway: Gateway, settings: Settings) -> None:
    """A digest never loaded, or a file not in the version, exits 1 naming it."""
    done = await _audit("policy", UNKNOWN, *_where(settings))
    assert done.returncode == 1 and f"policy version {UNKNOWN!r} is not stored" in done.stderr
    done = await _audit(
        "policy", gateway.policies.version, "--file", "nope.yaml", *_where(settings)
    )
    assert done.returncode == 1 and "no file 'nope.yaml'" in done.stderr
    assert "tiers.yaml" in done.stderr


async def test_target_reads_the_same_version_from_a_running_gateway(
    gateway: Gateway, settings: Settings
) -> None:
    """``--target`` with an auditor key prints what the offline reader prints."""
    key = await _key(gateway, "auditor")
    target = ["--target", f"127.0.0.1:{gateway.grpc_port}", "--key", key]
    digest = gateway.policies.version.removeprefix("sha256:")  # a bare hex digest is accepted
    online = await _audit("policy", digest, "--format", "json", *target)
    offline = await _audit("policy", digest, "--format", "json", *_where(settings))
    assert online.returncode == 0, online.stderr
    assert json.loads(online.stdout) == json.loads(offline.stdout)
    missing = await _audit("policy", UNKNOWN, *target)
    assert missing.returncode == 1 and "is not stored" in missing.stderr


async def test_get_policy_version_gives_auditors_the_bytes_and_refuses_app_keys(
    gateway: Gateway, stub: audit_pb2_grpc.AuditServiceStub, settings: Settings
) -> None:
    """GetPolicyVersion: exact bytes to auditor and admin keys, NOT_FOUND, app keys refused."""
    request = pb.GetPolicyVersionRequest(digest=gateway.policies.version)
    for role in ("auditor", "admin"):
        md = (("authorization", f"Bearer {await _key(gateway, role)}"),)
        version = await stub.GetPolicyVersion(request, metadata=md)
        on_disk = {n: t.encode() for n, t in _files(settings.policies).items()}
        assert {f.name: f.content for f in version.files} == on_disk
        assert (version.digest, version.loaded_by) == (gateway.policies.version, "system")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetPolicyVersion(pb.GetPolicyVersionRequest(digest=UNKNOWN), metadata=md)
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    app = (("authorization", f"Bearer {await _key(gateway, 'app')}"),)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetPolicyVersion(request, metadata=app)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("settings", ["postgres"], indirect=True)  # roles are PostgreSQL's
async def test_a_read_only_role_needs_select_on_policy_versions_for_the_text(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings
) -> None:
    """Without SELECT on policy_versions a role reads the trail but not the text; with it, both."""
    decision = await client.decide("t-echo", HELD)
    digest = decision.policy_version
    parts = urlsplit(settings.store)
    schema = parse_qs(parts.query)["search_path"][0]
    role, password = f"auditor_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    dsn = urlunsplit(parts._replace(netloc=f"{role}:{password}@{parts.netloc.rpartition('@')[2]}"))
    where = ["--store", dsn, "--policies", str(settings.policies)]
    conn = await asyncpg.connect(settings.store)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        try:
            await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            await conn.execute(f"GRANT SELECT ON audit_events, audit_checkpoints TO {role}")
            trail = await _audit("trail", decision.id, *where)
            assert trail.returncode == 0, trail.stderr
            assert trail.stdout.splitlines()[-1].startswith(f"policy {digest} (text not readable")
            denied = await _audit("policy", digest, *where)
            assert denied.returncode == 2 and "policy_versions" in denied.stderr

            await conn.execute(f"GRANT SELECT ON policy_versions TO {role}")
            trail = await _audit("trail", decision.id, *where)
            assert trail.stdout.splitlines()[-1].startswith(f"policy {digest} (stored;")
            one = await _audit("policy", digest, "--file", "tiers.yaml", *where)
            assert one.stdout == (settings.policies / "tiers.yaml").read_text()
        finally:  # roles outlive the test's schema
            await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()
