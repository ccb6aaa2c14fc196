"""Notification settings are checked at load, each error naming its setting."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_settings
from gateway.notify.reviewers import parse_email_groups


def test_email_groups_parse_into_addresses_per_group() -> None:
    """``group=a;b,other=c`` gives each group its addresses, spaces ignored."""
    assert parse_email_groups(" reviewers = a@x.example ; b@x.example , senior=c@x.example ") == {
        "reviewers": ("a@x.example", "b@x.example"),
        "senior": ("c@x.example",),
    }
    assert parse_email_groups("") == {}


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"HITL_NOTIFY_EMAIL_GROUPS": "reviewers"}, "notify_email_groups"),
        ({"HITL_NOTIFY_EMAIL_GROUPS": "reviewers=not-an-address"}, "not-an-address"),
        ({"HITL_NOTIFY_SLA_SHARE": "1.5"}, "notify_sla_share"),
        ({"HITL_NOTIFY_INTERVAL": "0"}, "notify_interval"),
        ({"HITL_OUTBOX_MAX_AGE": "-1"}, "outbox_max_age"),
        ({"HITL_OUTBOX_BACKOFF_BASE": "soon"}, "outbox_backoff_base"),
        ({"HITL_PUBLIC_URL": "hitl.example"}, "public_url"),
        ({"HITL_SMTP_PORT": "70000"}, "smtp_port"),
        ({"HITL_SMTP_STARTTLS": "maybe"}, "smtp_starttls"),
    ],
)
def test_bad_settings_name_the_setting(environ: dict[str, str], words: str) -> None:
    """Each unusable notification setting is refused, naming it."""
    with pytest.raises(ConfigError, match=words):
        load_settings(environ=environ)


def test_a_bad_chat_url_is_refused_without_repeating_it() -> None:
    """An incoming-webhook URL is a credential: the error names the setting, not the URL."""
    url = "http://chat.example/hooks/T000/B000/XXXXsecretXXXX"
    with pytest.raises(ConfigError, match="chat_webhook_url") as err:
        load_settings(environ={"HITL_CHAT_WEBHOOK_URL": url})
    assert "secret" not in str(err.value)
    settings = load_settings(environ={"HITL_CHAT_WEBHOOK_URL": "https://chat.example/hooks/1"})
    assert "chat.example" not in repr(settings)
