"""The ``webhook:`` section of an application: where its decisions are announced
(`gateway.notify.webhook`), signed with Standard Webhooks.

The secret never appears in a policy file: ``secret_env`` names the environment variable that
holds it (``whsec_`` and base64), read when the policy is loaded.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import StringConstraints, field_validator

from gateway.policy.fields import StrictModel
from gateway.policy.fields import policy_error as _error
from gateway.policy.model import WebhookSpec

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
HostName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")
]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (the one place plain HTTP is allowed)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """``url`` if it is an absolute HTTPS URL (or HTTP to a loopback address); else ValueError
    saying what is wrong."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"{url!r}: webhooks leave this machine over HTTPS only")
    if parts.username or parts.password:
        raise ValueError(f"{url!r}: credentials in the URL are not allowed")
    return url


class WebhookModel(StrictModel):
    """An application's webhook endpoint."""

    url: str
    """HTTPS URL receiving ``decision.final`` and ``decision.escalated`` (HTTP to loopback)."""
    secret_env: EnvName
    """Environment variable holding the endpoint's signing secret (``whsec_...``)."""
    callback_hosts: list[HostName] = []
    """Hosts a Decide may name in its own ``callback_url`` for that decision's
    ``decision.final`` (signed with the same secret); empty: none may."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            return check_url(value)
        except ValueError as exc:
            raise _error(str(exc)) from None


def webhook_spec(spec: WebhookModel) -> WebhookSpec:
    """The endpoint with its secret read from the environment now; ValueError naming the
    variable (never its value) when it is unset or not a Standard Webhooks secret."""
    secret = os.environ.get(spec.secret_env, "").strip()
    if not secret:
        raise ValueError(f"environment variable {spec.secret_env} is not set")
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith("whsec_") or len(key) < 24:
        raise ValueError(
            f"environment variable {spec.secret_env} does not hold a Standard Webhooks "
            "secret (whsec_ and at least 24 bytes in base64)"
        )
    return WebhookSpec(
        url=spec.url,
        secret=secret,
        secret_env=spec.secret_env,
        callback_hosts=tuple(h.lower() for h in spec.callback_hosts),
    )
