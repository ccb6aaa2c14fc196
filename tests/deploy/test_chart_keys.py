"""The chart's wiring of the gateway's own secret keys (data, audit signing, UI session)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.deploy.test_chart import CHART, container, env, render

KEYS = {
    "HITL_DATA_KEY": "data-key",
    "HITL_AUDIT_SIGNING_KEY": "audit-signing-key",
    "HITL_SESSION_KEY": "session-key",
}
POSTGRESQL = {"mode": "postgresql", "postgresql": {"existingSecret": "db"}}


def test_postgresql_mode_reads_every_key_from_the_secret() -> None:
    """With keys.existingSecret, each replica gets the three keys from that one Secret."""
    got = env(container(render({"store": POSTGRESQL, "keys": {"existingSecret": "gw-keys"}})))
    for name, key in KEYS.items():
        assert got[name] == {"secretKeyRef": {"name": "gw-keys", "key": key}}


def test_postgresql_mode_without_the_keys_secret_fails_to_render() -> None:
    """PostgreSQL mode without keys.existingSecret fails with a message saying why and how."""
    with pytest.raises(helm.HelmError, match=r"keys\.existingSecret is required") as caught:
        helm.Chart.load(str(CHART)).render({"store": POSTGRESQL}, name="bank")
    assert "generate-secrets" in str(caught.value)


@pytest.mark.parametrize(("keys", "expected"), [({}, False), ({"existingSecret": "k"}, True)])
def test_sqlite_mode_takes_the_secret_when_given(keys: dict[str, Any], expected: bool) -> None:
    """SQLite mode renders without the Secret (key files on the volume) and uses it if given."""
    got = env(container(render({"keys": keys})))
    assert all((name in got) is expected for name in KEYS)


def test_schema_rejects_unknown_keys_settings() -> None:
    """A misspelt setting under keys is refused by values.schema.json, naming it."""
    with pytest.raises(helm.HelmValuesError, match="existingSecrets"):
        helm.Chart.load(str(CHART)).validate_schema({"keys": {"existingSecrets": "k"}})


def test_secret_env_reads_each_variable_from_its_secret() -> None:
    """Secrets a policy or setting names by variable (a webhook's secret_env, the SMTP
    password) come from existing Secrets, never as plain values in the rendered manifest."""
    values = {
        "secretEnv": {
            "CREDIT_WEBHOOK_SECRET": {"secret": "hitl-webhooks", "key": "credit-limit"},
            "HITL_SMTP_PASSWORD": {"secret": "hitl-smtp", "key": "password"},
        }
    }
    got = env(container(render(values)))
    assert got["CREDIT_WEBHOOK_SECRET"] == {
        "secretKeyRef": {"name": "hitl-webhooks", "key": "credit-limit"}
    }
    assert got["HITL_SMTP_PASSWORD"] == {"secretKeyRef": {"name": "hitl-smtp", "key": "password"}}


@pytest.mark.parametrize(
    ("secret_env", "where"),
    [
        ({"SMTP": {"secret": "s"}}, "key"),
        ({"SMTP": {"secret": "s", "key": "k", "value": "x"}}, "value"),
        ({"BAD-NAME": {"secret": "s", "key": "k"}}, "BAD-NAME"),
    ],
)
def test_schema_rejects_incomplete_secret_env(secret_env: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=where):
        helm.Chart.load(str(CHART)).validate_schema({"secretEnv": secret_env})
