"""`hitl-gateway switch …` against a running gateway: on its data directory, or --target."""

from __future__ import annotations

import asyncio
import getpass
from dataclasses import replace
from pathlib import Path

import orjson

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.auth import certificate_identity, new_key
from gateway.testing import create_api_key
from gateway.types import Status
from tests.integration.replicas import replicas
from tests.integration.serverproc import cli
from tests.integration.tls_certs import TestCA
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

APP = "t-echo"
AUTO = {"score": 0.95}  # approved automatically unless paused


async def _switch(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = await asyncio.to_thread(cli, "switch", *args, env=env)
    return done.returncode, done.stdout, done.stderr


def _local(settings: Settings) -> tuple[str, ...]:
    return ("--data-dir", str(settings.data_dir), "--policies", str(settings.policies))


async def _held_within(client: AsyncGatewayClient, held: bool, seconds: float) -> None:
    """Decide until a decision is held (approved, for ``held=False``), failing after ``seconds``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (await client.decide(APP, AUTO, wait=0)).status is not (
        Status.PENDING_REVIEW if held else Status.APPROVED
    ):
        elapsed = loop.time() - start
        assert elapsed < seconds, f"not {'held' if held else 'approved'} after {elapsed:.2f} s"
        await asyncio.sleep(0.02)


async def test_cli_on_the_data_directory_reaches_the_running_sqlite_gateway(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings
) -> None:
    """`switch pause` on the gateway's own SQLite file holds its next decisions within a second,
    `switch resume` releases them; both are audited as the OS user with the reason."""
    assert (await client.decide(APP, AUTO, wait=0)).status is Status.APPROVED
    rc, _, err = await _switch("pause", "--app", APP, "--reason", "INC-3 drift", *_local(settings))
    assert rc == 0, err
    await _held_within(client, True, 1.0)
    rc, out, err = await _switch("list", "--format", "jsonl", *_local(settings))
    assert rc == 0, err
    listed = {r["name"]: r for r in map(orjson.loads, out.splitlines())}
    assert listed[APP]["paused"] is True and listed[APP]["reason"] == "INC-3 drift"
    assert listed["echo"] == {"kind": "backend", "name": "echo", "paused": False}
    rc, _, err = await _switch("resume", "--app", APP, "--reason", "retrained", *_local(settings))
    assert rc == 0, err
    await _held_within(client, False, 1.0)
    events = [e for e in await gateway.store.audit_events() if e.type.startswith("switch.")]
    actor = f"cli:{getpass.getuser()}"
    assert [(e.type, e.actor, e.payload) for e in events] == [
        ("switch.paused", actor, {"kind": "application", "name": APP, "reason": "INC-3 drift"}),
        ("switch.resumed", actor, {"kind": "application", "name": APP, "reason": "retrained"}),
    ]


async def test_cli_refuses_a_pause_without_a_reason_naming_the_flag(
    gateway: Gateway, settings: Settings
) -> None:
    """No --reason (or a blank one) is exit 2 naming --reason; nothing is paused or recorded."""
    for extra in ((), ("--reason", "  ")):
        rc, _, err = await _switch("pause", "--app", APP, *extra, *_local(settings))
        assert rc == 2
        assert err.startswith("error: --reason:"), err
    assert await gateway.store.list_switches() == []
    assert not [e for e in await gateway.store.audit_events() if e.type.startswith("switch.")]


async def test_cli_through_a_running_gateway_with_an_admin_key(
    gateway: Gateway, client: AsyncGatewayClient
) -> None:
    """--target with an admin key pauses and resumes through AdminService, audited as that key;
    without a key, or with a non-admin key, it is refused and nothing changes."""
    target = ("--target", f"127.0.0.1:{gateway.grpc_port}")
    token, record = new_key((), role="admin")
    await gateway.store.add_api_key(record)
    pause = ("pause", "--backend", "echo", "--reason", "vendor outage", *target)
    rc, _, err = await _switch(*pause, env={"HITL_ADMIN_KEY": ""})
    assert rc == 2 and err.startswith("error: --key:"), err
    rc, _, err = await _switch(*pause, "--key", await create_api_key(gateway))
    assert rc == 1 and "PERMISSION_DENIED" in err, err
    assert await gateway.store.list_switches() == []

    rc, out, err = await _switch(*pause, "--key", token)
    assert rc == 0, err
    assert out.splitlines()[1].split()[:3] == ["backend", "echo", "paused"]
    await _held_within(client, True, 1.0)
    rc, _, err = await _switch(
        "resume", "--backend", "echo", *target, env={"HITL_ADMIN_KEY": token}
    )
    assert rc == 0, err
    await _held_within(client, False, 1.0)
    events = [e for e in await gateway.store.audit_events() if e.type.startswith("switch.")]
    assert [(e.type, e.actor, e.payload) for e in events] == [
        (
            "switch.paused",
            f"app:{record.key_id}",
            {"kind": "backend", "name": "echo", "reason": "vendor outage"},
        ),
        (
            "switch.resumed",
            f"app:{record.key_id}",
            {"kind": "backend", "name": "echo", "reason": ""},
        ),
    ]


async def test_cli_on_a_postgresql_store_reaches_every_replica(
    replicas: tuple[Gateway, Gateway], pg_dsn: str, tmp_path: Path
) -> None:
    """`switch pause --store postgresql://…` holds the next decisions of both replicas within
    a second."""
    a, b = replicas
    key = await create_api_key(a)
    args = ("--store", pg_dsn, "--data-dir", str(tmp_path / "cli"), "--policies")
    rc, _, err = await _switch(
        "pause", "--app", APP, "--reason", "drift", *args, str(a.settings.policies)
    )
    assert rc == 0, err
    for gw in (a, b):
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
            await _held_within(client, True, 1.0)


async def test_cli_through_a_gateway_on_mutual_tls_with_an_admin_certificate(
    settings: Settings, tmp_path: Path
) -> None:
    """--tls-ca with an admin's client certificate (--tls-cert/--tls-key) pauses through a
    gateway that requires mutual TLS; the trail names the certificate's identity."""
    pki = TestCA(tmp_path)
    cert, key = pki.issue("gateway", server=True)
    gw = Gateway(replace(settings, tls_cert=cert, tls_key=key, tls_client_ca=pki.ca_file))
    await gw.start()
    try:
        identity = certificate_identity("ops-admin", (), role="admin")
        await gw.store.add_api_key(identity)
        client_cert, client_key = pki.issue("ops-admin")
        rc, _, err = await _switch(
            "pause",
            "--app",
            APP,
            "--reason",
            "drift",
            "--target",
            f"127.0.0.1:{gw.grpc_port}",
            "--tls-ca",
            str(pki.ca_file),
            "--tls-cert",
            str(client_cert),
            "--tls-key",
            str(client_key),
            env={"HITL_ADMIN_KEY": ""},
        )
        assert rc == 0, err
        assert gw.switches.is_paused("application", APP)
        [event] = [e for e in await gw.store.audit_events() if e.type == "switch.paused"]
        assert event.actor == f"app:{identity.key_id}"
    finally:
        await gw.stop()
