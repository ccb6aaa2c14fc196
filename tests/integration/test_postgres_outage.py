"""PostgreSQL stopped, or a connection lost during COMMIT, under a running gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import grpc
import httpx
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient, GatewayCallError, RetryPolicy
from gateway.config import Settings
from gateway.keys import generate_secrets
from gateway.testing import create_api_key
from gateway.types import Status
from tests.pgprivate import PrivatePostgres, private_pg
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "private_pg"]

ONCE = RetryPolicy(attempts=1)

# Kills its own session from inside COMMIT (a deferred trigger runs there), the first time only:
# the sequence is not rolled back with the transaction. The client sees the connection drop
# while it waits for COMMIT's answer, as when a server or network fails at that moment.
DROP_AT_COMMIT = """
CREATE SEQUENCE drops;
CREATE FUNCTION drop_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('drops') = 1 THEN
        PERFORM pg_terminate_backend(pg_backend_pid());
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER drop_at_commit AFTER INSERT ON decisions
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.subject_ref = 'drop-at-commit') EXECUTE FUNCTION drop_at_commit();
"""


def _on(settings: Settings, dsn: str) -> Gateway:
    keys = generate_secrets()
    return Gateway(
        replace(
            settings,
            store=dsn,
            admin_password="x" * 16,
            data_key=keys["data_key"],
            audit_signing_key=keys["audit_signing_key"],
            session_key=keys["session_key"],
        )
    )


async def _store_ready(gw: Gateway, ok: bool, within: float) -> dict[str, bool]:
    """Poll /readyz until its store check is ``ok`` (and the answer 200 or 503 with it)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.http_port}") as http:
        while True:
            ready = await http.get("/readyz")
            checks: dict[str, bool] = ready.json()["checks"]
            if checks["store"] is ok and (ready.status_code == 200) is ok:
                return checks
            assert time.monotonic() < deadline, ready.text
            await asyncio.sleep(0.1)


@pytest.fixture
async def dropping(settings: Settings, pg_dsn: str) -> AsyncIterator[Gateway]:
    """A gateway whose database drops the connection during the first marked COMMIT."""
    async with _on(settings, pg_dsn) as gw:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(DROP_AT_COMMIT)
        finally:
            await conn.close()
        yield gw


async def test_a_stopped_server_is_unavailable_and_readiness_follows_it(
    settings: Settings, private_pg: PrivatePostgres
) -> None:
    """With PostgreSQL stopped /readyz is 503 with the store check false and Decide answers
    UNAVAILABLE, nothing recorded; once it is started again both recover by themselves."""
    async with _on(settings, private_pg.dsn) as gw:
        key = await create_api_key(gw)
        target = f"127.0.0.1:{gw.grpc_port}"
        async with AsyncGatewayClient(target, api_key=key, retry=ONCE) as client:
            assert (await client.decide("t-echo", {"score": 0.9})).status is Status.APPROVED
            await _store_ready(gw, True, 5)

            private_pg.stop()
            await _store_ready(gw, False, 10)
            with pytest.raises(GatewayCallError) as err:
                await client.decide("t-echo", {"score": 0.9}, idempotency_key="down-1")
            assert err.value.code is grpc.StatusCode.UNAVAILABLE
            assert (
                "not recorded" in err.value.details or "nothing was recorded" in err.value.details
            )
            assert "same idempotency key" in err.value.details

            private_pg.start()
            await _store_ready(gw, True, 30)
            decided = await client.decide("t-echo", {"score": 0.9}, idempotency_key="down-1")
        assert decided.status is Status.APPROVED


async def test_a_connection_lost_during_commit_answers_that_the_outcome_is_unknown(
    dropping: Gateway,
) -> None:
    """A connection dropped during COMMIT answers UNAVAILABLE saying the decision may have been
    recorded; a retry with the same idempotency key then returns one decision."""
    gw = dropping
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key, retry=ONCE) as c:
        with pytest.raises(GatewayCallError) as err:
            await c.decide(
                "t-echo", {"score": 0.9}, subject_ref="drop-at-commit", idempotency_key="c-1"
            )
        assert err.value.code is grpc.StatusCode.UNAVAILABLE
        assert "may or may not have been recorded" in err.value.details
        assert "same idempotency key returns it" in err.value.details
        decided = await c.decide(
            "t-echo", {"score": 0.9}, subject_ref="drop-at-commit", idempotency_key="c-1"
        )
    assert decided.status is Status.APPROVED
    stored = await gw.store.find_by_idempotency_key("t-echo", "c-1")
    assert stored is not None and stored.id == decided.id


async def test_the_python_client_retries_a_lost_commit_with_its_own_key(
    dropping: Gateway, pg_dsn: str
) -> None:
    """Given no idempotency key, the client retries a COMMIT lost under it with a key of its
    own, and exactly one decision is recorded."""
    gw = dropping
    key = await create_api_key(gw)
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        decided = await client.decide("t-echo", {"score": 0.9}, subject_ref="drop-at-commit")
    assert decided.status is Status.APPROVED
    conn = await asyncpg.connect(pg_dsn)
    try:
        attempts = await conn.fetchval("SELECT last_value FROM drops")
        made = await conn.fetch("SELECT id FROM decisions WHERE subject_ref = 'drop-at-commit'")
    finally:
        await conn.close()
    assert attempts == 2  # the first COMMIT was dropped, the retry committed
    assert [r["id"] for r in made] == [decided.id]
