"""Personal data at rest: sealed in the store file, opened for its owner, erased on request."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

from gateway.app import Gateway
from gateway.cli import main
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.auth import Principal
from gateway.core.vault import SEALED
from gateway.testing import create_api_key
from gateway.types import Account, Role, Status

AUDREY = Account("audrey", Role.AUDITOR, (), "", datetime.now(UTC))
OWNER = Principal("k", frozenset({"t-echo"}))


def _store_bytes(data_dir: Path) -> bytes:
    """Every byte of the SQLite database and its write-ahead log as they are on disk."""
    return b"".join(p.read_bytes() for p in data_dir.glob("gateway.db*"))


def _stored_input(data_dir: Path, decision_id: str) -> dict[str, object]:
    conn = sqlite3.connect(data_dir / "gateway.db")
    try:
        (raw,) = conn.execute("SELECT input FROM decisions WHERE id = ?", (decision_id,)).fetchone()
    finally:
        conn.close()
    value: dict[str, object] = orjson.loads(raw)
    return value


async def test_sensitive_values_never_reach_the_database_file_in_clear(
    gateway: Gateway, client: AsyncGatewayClient, settings: Settings
) -> None:
    """Decided with personal data, the raw db and -wal bytes hold none of it; owners read it."""
    name = f"Erika Mustermann {uuid.uuid4().hex}"
    held = await client.decide("t-echo", {"score": 0.5, "customer": {"name": name, "age": 41.0}})
    auto = await client.decide("t-echo", {"score": 0.9, "customer": {"name": name + " II"}})
    assert held.status is Status.PENDING_REVIEW and auto.status is Status.APPROVED

    raw = _store_bytes(settings.data_dir)
    assert name.encode() not in raw and b"Mustermann" not in raw
    stored = _stored_input(settings.data_dir, held.id)
    assert stored["customer"] == {"name": stored["customer"]["name"], "age": 41.0}  # type: ignore[index]
    assert SEALED in stored["customer"]["name"]  # type: ignore[index]

    opened = await gateway.pipeline.get(held.id, OWNER)
    assert opened.input["customer"]["name"] == name
    assert (await gateway.queue.unmask(AUDREY, held.id))["customer"]["name"] == name
    (event, *_) = await gateway.store.audit_events_for(held.id)
    assert event.payload is not None and event.payload["input"]["customer"]["name"] == "***"


async def test_sealed_data_opens_after_a_restart_with_the_same_key_file(settings: Settings) -> None:
    """The key file made at first start is reused, so stored data opens after a restart."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            d = await c.decide("t-echo", {"score": 0.5, "customer": {"name": "Jane Roe"}})
    async with Gateway(settings) as gw:
        assert (await gw.pipeline.get(d.id, OWNER)).input["customer"]["name"] == "Jane Roe"


async def test_erasing_a_subject_destroys_its_stored_data_and_audit_still_verifies(
    settings: Settings,
) -> None:
    """`audit erase --subject` overwrites that subject's sealed inputs; others stay; chain ok."""
    async with Gateway(settings) as gw:
        key = await create_api_key(gw)
        async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as c:
            gone = [
                await c.decide(
                    "t-echo", {"score": s, "customer": {"name": "Jane Roe"}}, subject_ref="subj-1"
                )
                for s in (0.5, 0.9)
            ]
            kept = await c.decide(
                "t-echo", {"score": 0.5, "customer": {"name": "John Doe"}}, subject_ref="subj-2"
            )
    data_dir = settings.data_dir
    sealed = [_stored_input(data_dir, d.id)["customer"]["name"][SEALED].encode() for d in gone]  # type: ignore[index]
    before = _store_bytes(data_dir)
    assert all(ct.split(b":", 1)[1] in before for ct in sealed)

    db = str(data_dir / "gateway.db")
    assert main(["audit", "erase", "--db", db, "--subject", "subj-1"]) == 0
    assert main(["audit", "verify", "--db", db]) == 0

    after = _store_bytes(data_dir)
    for ct in sealed:
        assert ct.split(b":", 1)[1] not in after
    assert all(_stored_input(data_dir, d.id) == {} for d in gone)
    async with Gateway(settings) as gw:
        assert (await gw.pipeline.get(kept.id, OWNER)).input["customer"]["name"] == "John Doe"
        erased = await gw.pipeline.get(gone[0].id, OWNER)
        assert erased.input == {} and erased.status is Status.PENDING_REVIEW


async def test_decide_returns_the_callers_input_in_clear(gateway: Gateway) -> None:
    """A new decision and an idempotent retry both come back with the sensitive field opened."""
    from gateway.core.command import DecideCommand

    cmd = DecideCommand(
        application="t-echo",
        input={"score": 0.9, "customer": {"name": "Jane Roe"}},
        idempotency_key="k-1",
    )
    first = await gateway.pipeline.decide(cmd, OWNER)
    retry = await gateway.pipeline.decide(cmd, OWNER)
    assert retry.id == first.id
    assert first.input["customer"]["name"] == "Jane Roe"
    assert retry.input["customer"]["name"] == "Jane Roe"
    assert SEALED in _stored_input(gateway.settings.data_dir, first.id)["customer"]["name"]  # type: ignore[index]
