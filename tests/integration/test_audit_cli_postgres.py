"""`hitl-gateway audit … --store postgresql://…`: an auditor reads and verifies the trail straight
from the database, read-only, with only the public key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.checkpoints import KEY_FILE, Signer, public_key_pem
from gateway.store.postgres.audit import PostgresAuditLog
from gateway.store.postgres.offline import BATCH
from gateway.store.postgres.store import CHAIN_LOCK, PostgresStore
from gateway.types import AuditDraft, Decision
from tests.audit_builders import audit_decision
from tests.integration.serverproc import cli, free_port
from tests.pgserver import pg_dsn, pg_server, with_search_path

__all__ = ["pg_dsn", "pg_server"]

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
DECISIONS = 15
EVENTS = 2 * DECISIONS
CHECKPOINT_AT = (10, EVENTS)


def _decision(i: int) -> Decision:
    return audit_decision(i, subject_ref=f"cust-{i % 3}")


def _drafts(d: Decision) -> list[AuditDraft]:
    return [
        AuditDraft(d.id, "decision.created", "app:k1", {"input": d.input}),
        AuditDraft(d.id, "review.requested", "system", {"tier": d.tier}),
    ]


@dataclass(frozen=True)
class Trail:
    dsn: str
    public_key: Path
    """PEM of the signing key, all the auditor holds."""
    signer: Signer
    nothing: Path
    """A data directory without keys, so only ``--public-key`` can check checkpoints."""

    def audit(self, *args: str, dsn: str | None = None) -> tuple[int, str, str]:
        r = cli("audit", *args, "--store", dsn or self.dsn, "--data-dir", str(self.nothing))
        return r.returncode, r.stdout, r.stderr

    def verify(self, *extra: str, dsn: str | None = None) -> tuple[int, str]:
        rc, out, err = self.audit("verify", "--public-key", str(self.public_key), *extra, dsn=dsn)
        return rc, out + err


async def _write(dsn: str, decisions: int, checkpoint_at: tuple[int, ...], signer: Signer) -> None:
    """Events written by a real `PostgresStore`, heads signed at ``checkpoint_at``."""
    store = PostgresStore(dsn)
    await store.start()
    try:
        log = PostgresAuditLog(store)
        if not checkpoint_at:
            # Many at once, as concurrent requests arrive: committed in batches by the writer.
            for lo in range(1, decisions + 1, 500):
                batch = [_decision(i) for i in range(lo, min(lo + 500, decisions + 1))]
                await asyncio.gather(*(store.create_decision(d, _drafts(d), []) for d in batch))
            seq, head = store.chain_head()
            await log.insert_checkpoint(signer.sign(seq, head, T0))
            return
        for i in range(1, decisions + 1):
            d = _decision(i)
            await store.create_decision(d, _drafts(d), [])
            seq, head = store.chain_head()
            if seq in checkpoint_at:
                await log.insert_checkpoint(signer.sign(seq, head, T0))
    finally:
        await store.stop()


async def _trail(dsn: str, tmp_path: Path, decisions: int, at: tuple[int, ...]) -> Trail:
    signer = Signer.load_or_create(tmp_path / "gateway-keys" / KEY_FILE)
    await _write(dsn, decisions, at, signer)
    pem = tmp_path / "public.pem"
    pem.write_text(public_key_pem(signer.public_key))
    return Trail(dsn, pem, signer, tmp_path / "auditor")


@pytest.fixture
async def trail(pg_dsn: str, tmp_path: Path) -> Trail:
    """EVENTS events (two per decision) in a fresh schema, heads signed at CHECKPOINT_AT."""
    return await _trail(pg_dsn, tmp_path, DECISIONS, CHECKPOINT_AT)


async def _tamper(dsn: str, *statements: str) -> None:
    """Run ``statements`` as the superuser with the append-only guards off, as an intruder."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
            await conn.execute(
                "ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only"
            )
            for sql in statements:
                await conn.execute(sql)
    finally:
        await conn.close()


async def test_chain_written_by_the_store_verifies(trail: Trail) -> None:
    """A chain written by a PostgresStore verifies, with both signed checkpoints checked."""
    rc, out = trail.verify()
    assert rc == 0, out
    assert f"ok: {EVENTS} events verified, 2 signed checkpoints checked; head seq {EVENTS}" in out


async def test_store_setting_selects_the_database(trail: Trail) -> None:
    """HITL_STORE alone points verify at the database; without a key it says so."""
    r = cli("audit", "verify", "--data-dir", str(trail.nothing), env={"HITL_STORE": trail.dsn})
    assert r.returncode == 0, r.stderr
    assert f"ok: {EVENTS} events verified (checkpoints not checked: no --public-key)" in r.stdout


async def test_chain_of_several_pages_verifies_and_a_gap_in_page_two_is_found(
    pg_dsn: str, tmp_path: Path
) -> None:
    """A chain longer than two pages verifies across page seams; a gap past the first is named."""
    trail = await _trail(pg_dsn, tmp_path, BATCH + 50, ())
    events = 2 * (BATCH + 50)
    rc, out = trail.verify()
    assert rc == 0, out
    assert f"ok: {events} events verified, 1 signed checkpoints checked" in out
    gap = BATCH + 7
    await _tamper(pg_dsn, f"DELETE FROM audit_events WHERE seq = {gap}")
    rc, out = trail.verify()
    assert rc == 1, out
    assert f"FAILED at event {gap}: seq {gap} expected, found seq {gap + 1} (missing: {gap})" in out


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "UPDATE audit_events SET payload_digest = 'sha256:' || repeat('0', 64) WHERE seq = 7",
            "seq 7: field 'payload_digest' is 'sha256:000",
        ),
        (
            "UPDATE audit_events SET canonical = convert_to(replace(convert_from(canonical, "
            "'UTF8'), 'app:k1', 'app:k9'), 'UTF8') WHERE seq = 7",
            "seq 7: stored hash",
        ),
        ("DELETE FROM audit_events WHERE seq = 7", "seq 7 expected, found seq 8 (missing: 7)"),
        (
            'UPDATE audit_events SET payload = \'{"input":{"customer":"someone else"}}\' '
            "WHERE seq = 7",
            "seq 7: payload digest",
        ),
    ],
    ids=["payload_digest", "canonical", "deleted", "payload"],
)
async def test_tampered_event_is_reported_with_its_seq(trail: Trail, sql: str, reason: str) -> None:
    """An edited or deleted event fails verification at its seq, with exit code 1."""
    await _tamper(trail.dsn, sql)
    rc, out = trail.verify()
    assert rc == 1, out
    assert f"FAILED at event 7: {reason}" in out


async def test_cut_tail_is_caught_by_a_saved_checkpoint(trail: Trail, tmp_path: Path) -> None:
    """Events and checkpoints cut off the end are caught by the checkpoint an auditor saved."""
    rc, saved, err = trail.audit("checkpoint")
    assert rc == 0, err
    assert orjson.loads(saved)["seq"] == EVENTS
    (tmp_path / "head.json").write_text(saved)
    await _tamper(
        trail.dsn,
        "DELETE FROM audit_events WHERE seq > 20",
        "DELETE FROM audit_checkpoints WHERE seq > 20",
    )
    rc, out = trail.verify()
    assert rc == 0, out  # nothing left in the database shows the cut
    rc, out = trail.verify("--checkpoint", str(tmp_path / "head.json"))
    assert rc == 1, out
    assert (
        f"FAILED at event 21: chain ends at seq 20 but a signed checkpoint covers seq {EVENTS}"
        in out
    )
    assert "the tail was cut off" in out


async def test_checkpoint_signed_by_another_key_fails(trail: Trail) -> None:
    """A stored checkpoint signed by a key other than the auditor's fails, naming its seq."""
    conn = await asyncpg.connect(trail.dsn)
    try:
        head = await conn.fetchval("SELECT hash FROM audit_events WHERE seq = 20")
    finally:
        await conn.close()
    forged = Signer(Ed25519PrivateKey.generate()).sign(20, head, T0)
    store = PostgresStore(trail.dsn)
    await store.start()
    try:
        await PostgresAuditLog(store).insert_checkpoint(forged)
    finally:
        await store.stop()
    rc, out = trail.verify()
    assert rc == 1, out
    assert f"FAILED: checkpoint at seq 20: signed by key {forged.key_id}" in out


def _as_role(dsn: str, role: str, password: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@pytest.fixture
async def reader(trail: Trail) -> AsyncIterator[str]:
    """The DSN of a new login role that may only SELECT the audit tables of the test schema."""
    schema = parse_qs(urlsplit(trail.dsn).query)["search_path"][0]
    role, password = f"auditor_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    conn = await asyncpg.connect(trail.dsn)
    try:
        await conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        try:
            await conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            await conn.execute(f"GRANT SELECT ON audit_events, audit_checkpoints TO {role}")
            yield _as_role(trail.dsn, role, password)
        finally:
            # Roles outlive the test's schema: take back what was granted, then drop the role.
            await conn.execute(f"REVOKE ALL ON audit_events, audit_checkpoints FROM {role}")
            await conn.execute(f"REVOKE ALL ON SCHEMA {schema} FROM {role}")
            await conn.execute(f"DROP ROLE {role}")
    finally:
        await conn.close()


async def test_read_only_role_suffices_and_no_chain_lock_is_taken(
    trail: Trail, reader: str
) -> None:
    """A SELECT-only role verifies and reads the trail while a writer holds the chain lock."""
    writer = await asyncpg.connect(trail.dsn)
    try:
        # Were any command to take the chain lock, it would wait here until the CLI timed out.
        await writer.execute("SELECT pg_advisory_lock($1)", CHAIN_LOCK)
        rc, out = trail.verify(dsn=reader)
        assert rc == 0, out
        assert f"ok: {EVENTS} events verified, 2 signed checkpoints checked" in out
        rc, printed, err = trail.audit("checkpoint", dsn=reader)
        assert rc == 0 and orjson.loads(printed)["seq"] == EVENTS, err
        rc, printed, err = trail.audit("export", dsn=reader)
        assert rc == 0, err
        assert [orjson.loads(x)["seq"] for x in printed.splitlines()] == list(range(1, EVENTS + 1))
        rc, printed, err = trail.audit("trail", "dec-4", "--format", "jsonl", dsn=reader)
        assert rc == 0, err
        assert [orjson.loads(x)["type"] for x in printed.splitlines()] == [
            "decision.created",
            "review.requested",
        ]
        args = ("query", "--type", "review.requested", "--limit", "3", "--format", "jsonl")
        rc, printed, err = trail.audit(*args, dsn=reader)
        assert rc == 0, err
        assert [orjson.loads(x)["seq"] for x in printed.splitlines()] == [30, 28, 26]
    finally:
        await writer.close()
    # Filters on decisions read that table too, which this role was not granted.
    rc, printed, err = trail.audit("query", "--app", "credit-limit", dsn=reader)
    assert rc == 2
    assert "error: --store:" in err and "permission denied for table decisions" in err
    assert "and on decisions for the query filters on decisions" in err


@pytest.mark.parametrize("bad", ["refused", "password", "schema"])
async def test_bad_store_url_is_a_clear_error_naming_store(
    trail: Trail, pg_server: str, bad: str
) -> None:
    """An unreachable server, an unknown login or a schema without a trail: exit 2, --store."""
    dsn = {
        "refused": f"postgresql://hitl:s3cret-pw@127.0.0.1:{free_port()}/hitl",
        "password": _as_role(pg_server, "no_such_role", "s3cret-pw"),
        "schema": with_search_path(pg_server, "no_such_schema"),
    }[bad]
    for command in (("verify",), ("checkpoint",), ("export",)):
        rc, out, err = trail.audit(*command, dsn=dsn)
        assert rc == 2 and out == "", err
        assert err.startswith("error: --store: "), err
        assert "s3cret-pw" not in err and "Traceback" not in err
        expected = "no audit trail there" if bad == "schema" else "cannot connect to"
        assert expected in err
