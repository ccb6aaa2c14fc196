"""An application's ``webhook:`` in the policy: checked at load, errors naming file, line and
field; the secret read from the environment variable it names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.errors import PolicyError
from gateway.policy import load_policies

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENV = "HITL_TEST_HOOK_SECRET"


def _policies(tmp_path: Path, webhook: str) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target, ignore=shutil.ignore_patterns("tests"))
    (target / "hook.yaml").write_text(
        "applications:\n"
        "  - id: hooked\n"
        "    tier: limited\n"
        "    backend: credit-scorer\n"
        f"    webhook: {webhook}\n"
    )
    return target


def _error(tmp_path: Path, webhook: str) -> PolicyError:
    with pytest.raises(PolicyError) as err:
        load_policies(_policies(tmp_path, webhook))
    return err.value


def test_webhook_loads_with_its_secret_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint's URL and the secret from the named variable; the secret is not in repr."""
    monkeypatch.setenv(ENV, SECRET)
    policies = load_policies(
        _policies(tmp_path, f'{{url: "https://app.example/hooks", secret_env: {ENV}}}')
    )
    hook = policies.applications["hooked"].webhook
    assert hook is not None
    assert (hook.url, hook.secret, hook.secret_env) == ("https://app.example/hooks", SECRET, ENV)
    assert SECRET not in repr(hook)
    assert policies.applications["credit-limit"].webhook is None


def test_a_missing_variable_is_a_load_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset variable is refused at load, naming the file, line, field and variable."""
    monkeypatch.delenv(ENV, raising=False)
    err = _error(tmp_path, f'{{url: "https://app.example/hooks", secret_env: {ENV}}}')
    assert err.location == "hook.yaml:5"
    assert err.field == "applications[0].webhook.secret_env"
    assert ENV in str(err) and "not set" in str(err)


def test_a_malformed_secret_is_refused_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value that is not ``whsec_`` and base64 is refused; the message does not repeat it."""
    monkeypatch.setenv(ENV, "plain-password-value")
    err = _error(tmp_path, f'{{url: "https://app.example/hooks", secret_env: {ENV}}}')
    assert "whsec_" in str(err) and "plain-password-value" not in str(err)


@pytest.mark.parametrize(
    ("webhook", "field", "words"),
    [
        ('{url: "http://app.example/hooks", secret_env: X}', "webhook.url", "HTTPS only"),
        ('{url: "ftp://app.example/x", secret_env: X}', "webhook.url", "http(s) URL"),
        ('{url: "https://u:p@app.example/", secret_env: X}', "webhook.url", "credentials"),
        ('{url: "https://app.example/", secret_env: "not a name"}', "webhook.secret_env", ""),
        ('{url: "https://app.example/"}', "webhook.secret_env", ""),
        ('{url: "https://app.example/", secret_env: X, retries: 3}', "webhook.retries", ""),
    ],
)
def test_bad_webhook_fields_name_the_field(
    tmp_path: Path, webhook: str, field: str, words: str
) -> None:
    """Each malformed webhook field is a load error naming that field."""
    err = _error(tmp_path, webhook)
    assert err.field == f"applications[0].{field}"
    assert err.location.startswith("hook.yaml:")
    assert words in str(err)


def test_plain_http_is_allowed_to_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver on this machine may use plain HTTP (tests, a sidecar)."""
    monkeypatch.setenv(ENV, SECRET)
    policies = load_policies(
        _policies(tmp_path, f'{{url: "http://127.0.0.1:8080/hooks", secret_env: {ENV}}}')
    )
    assert policies.applications["hooked"].webhook is not None


def test_callback_hosts_are_host_names_lowered_and_a_bad_one_is_located(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``callback_hosts`` keeps host names (lower case); a URL in their place is refused at
    its item."""
    monkeypatch.setenv(ENV, SECRET)
    spec = f'{{url: "https://app.example/hooks", secret_env: {ENV}, callback_hosts: [Cb.Example]}}'
    hook = load_policies(_policies(tmp_path, spec)).applications["hooked"].webhook
    assert hook is not None and hook.callback_hosts == ("cb.example",)
    bad = f'{{url: "https://app.example/h", secret_env: {ENV}, callback_hosts: ["https://x/"]}}'
    err = _error(tmp_path / "bad", bad)
    assert err.location == "hook.yaml:5"
    assert err.field == "applications[0].webhook.callback_hosts[0]"
