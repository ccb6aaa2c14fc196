"""Replicas on one PostgreSQL database share their keys, given as settings, or refuse to start."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import httpx
import pytest
from itsdangerous import BadSignature

from gateway.app import Gateway
from gateway.audit.checkpoints import key_id, load_public_key
from gateway.client import AsyncGatewayClient
from gateway.config import ConfigError, Settings
from gateway.core.auth import Principal
from gateway.core.vault import Vault, VaultError
from gateway.keys import generate_secrets
from gateway.store.postgres.audit import PostgresAuditLog
from gateway.store.postgres.store import PostgresStore
from gateway.store.protocol import SessionStore
from gateway.testing import create_api_key
from gateway.types import Account, Role, Status
from reviewer_ui.sessions import COOKIE, Sessions
from tests.integration.replicas import replicas
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "replicas"]

KEY_FILES = {"data.keys", "audit-signing-key.pem", "ui-session.key"}


def _key_files(data_dir: Path) -> set[str]:
    """The key files the gateway left in ``data_dir``."""
    return {p.name for p in data_dir.glob("*")} & KEY_FILES


async def test_decision_sealed_through_a_is_opened_by_b(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """Personal data sealed by replica A is opened by replica B, for its owner and an auditor."""
    a, b = replicas
    assert a.settings.data_dir != b.settings.data_dir
    key = await create_api_key(a)
    customer = {"name": "Erika Mustermann", "age": 41.0}
    async with AsyncGatewayClient(f"127.0.0.1:{a.grpc_port}", api_key=key) as ca:
        held = await ca.decide("t-echo", {"score": 0.5, "customer": customer})
    assert held.status is Status.PENDING_REVIEW
    stored = await b.store.get_decision(held.id)
    assert stored is not None and stored.input["customer"]["name"] != customer["name"]
    opened = await b.pipeline.get(held.id, Principal("k", frozenset({"t-echo"})))
    assert opened.input["customer"] == customer
    auditor = Account("audrey", Role.AUDITOR, (), "", datetime.now(UTC))
    assert (await b.queue.unmask(auditor, held.id))["customer"] == customer
    with pytest.raises(VaultError):  # what a replica with a key ring of its own would meet
        Vault([os.urandom(32)]).open(stored.input, ["customer.name"], held.id)


async def test_checkpoints_of_both_replicas_verify_with_one_public_key(
    replicas: tuple[Gateway, Gateway], pg_dsn: str
) -> None:
    """Heads signed by A and by B check out with the one key that `audit public-key` prints."""
    a, b = replicas
    key = await create_api_key(a)
    signed = []
    for gw in (a, b, a):
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            await c.decide("t-echo", {"score": 0.9})
        cp = await gw._checkpointer.checkpoint_now()  # type: ignore[union-attr]
        assert cp is not None
        signed.append(cp.seq)
    assert signed == sorted(set(signed))

    printed = cli(
        "audit",
        "public-key",
        "--data-dir",
        str(a.settings.data_dir.parent / "auditor"),
        env={"HITL_AUDIT_SIGNING_KEY": a.settings.audit_signing_key},
    )
    assert printed.returncode == 0, printed.stderr
    public_key = load_public_key(printed.stdout.encode())
    store = PostgresStore(pg_dsn)
    await store.start()
    try:
        log = PostgresAuditLog(store, public_key)
        stored = [cp.seq for cp in await log.checkpoints()]
        report = await log.verify(1, None)
    finally:
        await store.stop()
    assert set(signed) <= set(stored)  # the replicas' own timers may have signed more
    assert report.result.ok, report.result.reason
    assert report.checkpoints_checked == len(stored)


async def test_ui_cookie_signed_by_a_is_validly_signed_for_b(
    replicas: tuple[Gateway, Gateway],
) -> None:
    """A reviewer UI cookie set by replica A passes replica B's signature check."""
    a, b = replicas
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.http_port}") as web:
        form = await web.get("/ui/login")
        match = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert match is not None
        signed_in = await web.post(
            "/ui/login", data={"csrf": match[1], "name": "admin", "password": "x" * 16}
        )
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/"
        cookie = web.cookies[COOKIE]
    # The signature check alone: which replica holds the session's state is another matter.
    sid = b.sessions._signer.unsign(cookie)
    assert sid == a.sessions._signer.unsign(cookie)
    stranger = Sessions(os.urandom(32), store=cast(SessionStore, a.store))
    with pytest.raises(BadSignature):
        stranger._signer.unsign(cookie)


@pytest.mark.parametrize(
    "given",
    [(), ("data_key",), ("audit_signing_key", "session_key"), ("data_key", "session_key")],
)
async def test_shared_store_without_every_key_refuses_to_start(
    settings: Settings, pg_dsn: str, given: tuple[str, ...]
) -> None:
    """On PostgreSQL, each key setting left unset is named, and no key file is written."""
    fresh = generate_secrets()
    keyed = replace(settings, store=pg_dsn, **{k: fresh[k] for k in given})
    gateway = Gateway(keyed)
    with pytest.raises(ConfigError) as caught:
        await gateway.start()
    message = str(caught.value)
    for name in ("data_key", "audit_signing_key", "session_key"):
        assert (f"{name} (HITL_{name.upper()})" in message) is (name not in given)
    assert "each replica would otherwise make its own keys" in message
    assert "hitl-gateway keys generate-secrets" in message
    assert _key_files(settings.data_dir) == set()


async def test_embedded_store_still_makes_its_key_files(settings: Settings) -> None:
    """Without key settings, SQLite mode creates the three key files and reuses them."""
    async with Gateway(settings) as first:
        pem = first.signer.key_id
        session_key = first.keys.session_key
    assert _key_files(settings.data_dir) == KEY_FILES
    async with Gateway(settings) as again:
        assert again.signer.key_id == pem
        assert again.keys.session_key == session_key


async def test_embedded_store_uses_key_settings_instead_of_files(settings: Settings) -> None:
    """With the key settings given, SQLite mode uses them and writes no key file."""
    fresh = generate_secrets()
    async with Gateway(replace(settings, **fresh)) as gw:
        pub = cli(
            "audit",
            "public-key",
            "--data-dir",
            str(settings.data_dir),
            env={"HITL_AUDIT_SIGNING_KEY": fresh["audit_signing_key"]},
        )
        assert pub.returncode == 0, pub.stderr
        assert key_id(load_public_key(pub.stdout.encode())) == gw.signer.key_id
    assert _key_files(settings.data_dir) == set()
