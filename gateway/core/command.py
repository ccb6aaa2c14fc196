"""What an application asks the pipeline, as the transports hand it over."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway.errors import InvalidInput
from gateway.policy import ApplicationPolicy, TierSpec
from gateway.policy.webhook_schema import check_url
from gateway.types import JSONObject


@dataclass(frozen=True, slots=True)
class DecideCommand:
    application: str
    input: JSONObject
    subject_ref: str = ""
    idempotency_key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0
    """Seconds to block for a human verdict when the decision is held."""
    requested_by: str = ""
    """The person on whose behalf the application asks (the transport has validated it)."""
    callback_url: str = ""
    """Where this decision's ``decision.final`` webhook goes (`check_callback`)."""


def check_callback(app: ApplicationPolicy, cmd: DecideCommand) -> None:
    """Refuse a ``callback_url`` the application's policy does not allow: it has no webhook
    (no secret to sign with), the URL is not HTTPS (or HTTP to loopback), or its host is not
    one of ``webhook.callback_hosts``."""
    url = cmd.callback_url
    if not url:
        return
    hook = app.webhook
    if hook is None or not hook.callback_hosts:
        raise InvalidInput(
            "callback_url",
            f"application {app.id!r} allows no callback URL (webhook.callback_hosts)",
        )
    try:
        check_url(url)
    except ValueError as exc:
        raise InvalidInput("callback_url", str(exc)) from None
    host = (urlsplit(url).hostname or "").lower()
    if host not in hook.callback_hosts:
        raise InvalidInput(
            "callback_url", f"host {host!r} is not one of application {app.id!r}'s callback_hosts"
        )


def check_requester(app: ApplicationPolicy, tier: TierSpec, cmd: DecideCommand) -> None:
    """Refuse, before the model is called and before anything is written, a request without
    ``requested_by`` when its tier needs one (maker-checker needs to know the maker)."""
    if tier.require_requester and not cmd.requested_by:
        raise InvalidInput(
            "requested_by",
            f"is required: application {app.id!r} classified this request into tier "
            f"{tier.name!r}, which needs the person on whose behalf it is made",
        )
