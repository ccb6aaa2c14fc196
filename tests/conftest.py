"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_config() -> Iterator[None]:
    """structlog's configuration is process-global: a test that runs a CLI command in-process
    (which sets up logging for one-shot commands) must not change what later tests log."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
