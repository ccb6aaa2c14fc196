"""Two gateway replicas on one PostgreSQL database, as behind a load balancer (a fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gateway.app import Gateway
from gateway.config import Settings
from gateway.keys import generate_secrets


@pytest.fixture
async def replicas(settings: Settings, pg_dsn: str) -> AsyncIterator[tuple[Gateway, Gateway]]:
    """Replicas A and B: own ports, stores, notifiers and data directories (as pods with an
    emptyDir each); one database and one set of keys, given as settings."""
    shared = replace(settings, store=pg_dsn, admin_password="x" * 16, **generate_secrets())
    a = Gateway(replace(shared, data_dir=settings.data_dir / "a"))
    b = Gateway(replace(shared, data_dir=settings.data_dir / "b"))
    await a.start()
    try:
        await b.start()
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()
