"""Two gateway replicas on one PostgreSQL database, as behind a load balancer (a fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.app import Gateway
from gateway.config import Settings


@pytest.fixture
async def replicas(settings: Settings, pg_dsn: str) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Replicas A and B: own ports, stores and notifiers; one database and one key ring."""
    shared = replace(settings, store=pg_dsn, admin_password="x" * 16)
    a, b = Gateway(shared), Gateway(shared)
    await a.start()
    try:
        await b.start()
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()
