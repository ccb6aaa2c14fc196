"""Fixtures for tests that call an application over the Open Inference Protocol on either store.

Import ``policies_dir`` and ``settings`` into a test module (and list them in ``__all__``): they
override the integration fixtures of the same names there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.keys import generate_secrets

OIP_APP = """
applications:
  - id: t-oip
    tier: limited
    backend: echo
    route:
      - {when: "output.score >= 0.8", action: approve}
    oip:
      model_name: t-oip-model
      inputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
      outputs:
        - {name: score, datatype: FP64, shape: [1], field: score}
"""


@pytest.fixture
def policies_dir(policies_dir: Path) -> Path:
    """The test policies plus an application that OIP clients can call."""
    (policies_dir / "t-oip.yaml").write_text(OIP_APP)
    return policies_dir


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The gateway's settings on each store."""
    if request.param == "sqlite":
        return settings
    dsn: str = request.getfixturevalue("pg_dsn")
    return replace(settings, store=dsn, **generate_secrets())
