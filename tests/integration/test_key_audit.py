"""`keys create` and `keys revoke` beside a running gateway: recorded in its one audit chain."""

from __future__ import annotations

import asyncio
import getpass

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from tests.integration.serverproc import cli

HELD = {"score": 0.5}


async def test_cli_key_changes_are_audited_beside_a_live_gateway(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings
) -> None:
    """Key create/revoke by the CLI append events the running gateway's writer builds upon."""
    where = ("--data-dir", str(settings.data_dir), "--policies", str(settings.policies))
    await client.decide("t-echo", HELD, wait=0)
    made = await asyncio.to_thread(cli, "keys", "create", "--role", "auditor", *where)
    assert made.returncode == 0, made.stderr
    key_id = made.stderr.split("key id ", 1)[1].split()[0]
    await client.decide("t-echo", HELD, wait=0)  # the gateway appends after the CLI's event
    gone = await asyncio.to_thread(cli, "keys", "revoke", key_id, *where)
    assert gone.returncode == 0, gone.stderr
    again = await asyncio.to_thread(cli, "keys", "revoke", key_id, *where)
    assert again.returncode == 1
    await client.decide("t-echo", HELD, wait=0)
    events = await gateway.store.audit_events()
    keys = [e for e in events if e.type.startswith("key.")]
    assert [(e.type, e.actor) for e in keys][-2:] == [
        ("key.created", f"cli:{getpass.getuser()}"),
        ("key.revoked", f"cli:{getpass.getuser()}"),
    ]
    created = keys[-2].payload
    assert created is not None
    assert created["key_id"] == key_id and created["role"] == "auditor"
    assert "secret" not in str(created).lower()
    assert (await gateway.audit.verify()).result.ok
