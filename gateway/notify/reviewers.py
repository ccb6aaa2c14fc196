"""Messages to reviewers: email through an SMTP server (STARTTLS) and chat through an incoming
webhook URL (Slack- and Teams-compatible ``{"text": ...}``, with a generic JSON part beside it).

Events: new items in a group's queue (batched), an item near the end of its SLA, an escalation,
a monitoring breach of a model version (then the model, the metric and a link to the models
page). What a message holds: the event, the application, the tier and a link to the item in the
reviewer UI (``public_url``). Never the input, the model's output or any other value of the
decision: a reviewer opens the link and signs in to see them, masked as the UI masks them.

Where the addresses come from: ``notify_email_groups`` in the settings maps each reviewer group
(as the policies' tiers name them) to a list of addresses, usually a team mailbox or list per
group; a group with no entry gets no email. The chat webhook is one channel for all groups.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gateway.notify.webhook import DeliveryFailed
from gateway.policy.webhook_schema import check_url
from gateway.store.outbox import (
    CHAT,
    EMAIL,
    MODEL_BREACH,
    REVIEW_ESCALATED,
    REVIEW_QUEUED,
    OutboxMessage,
)

if TYPE_CHECKING:
    from gateway.config import Settings

__all__ = ["ReviewerChannels", "SmtpSettings", "parse_email_groups", "reviewer_channels"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """An SMTP server to send through (from `gateway.config.Settings`, ``smtp_*``)."""

    host: str
    port: int = 587
    starttls: bool = True
    tls_ca: Path | None = None
    """CA bundle that signed the server's certificate; None: the system's trust store."""
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "hitl-gateway@localhost"
    timeout: float = 10.0


def parse_email_groups(text: str) -> dict[str, tuple[str, ...]]:
    """``group=a@x;b@x,other=c@x`` to ``{group: (a@x, b@x), other: (c@x,)}``.

    Raises:
        ValueError: An entry has no ``=``, no group, or an address without ``@``.
    """
    groups: dict[str, tuple[str, ...]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        group, sep, addresses = entry.partition("=")
        listed = tuple(a.strip() for a in addresses.split(";") if a.strip())
        if not sep or not group.strip() or not listed:
            raise ValueError(f"notify_email_groups: {entry!r} is not group=address;address")
        bad = [a for a in listed if "@" not in a or any(c in a for c in " <>\r\n")]
        if bad:
            raise ValueError(f"notify_email_groups: {bad[0]!r} is not an email address")
        groups[group.strip()] = listed
    return groups


def _text(message: OutboxMessage, public_url: str) -> tuple[str, list[dict[str, Any]], str]:
    """``(subject, items with links, plain text)`` of a reviewer message."""
    body = message.body
    groups = ", ".join(body.get("groups", ()))
    items = [
        {**item, "url": f"{public_url.rstrip('/')}/ui/items/{item['decision_id']}"}
        for item in body.get("items", ())
    ]
    if message.topic == MODEL_BREACH:
        model = body.get("model", {})
        name = f"{model.get('backend')}/{model.get('name')}@{model.get('version')}"
        subject = f"Model {name}: {body.get('metric')} breached its threshold"
        link = f"{public_url.rstrip('/')}/ui/models"
        return subject, [], f"{subject}\n\n{link}\n"
    if message.topic == REVIEW_QUEUED:
        subject = f"{len(items)} new item(s) to review ({groups})"
    elif message.topic == REVIEW_ESCALATED:
        subject = f"Item escalated to tier {items[0]['tier']} ({groups})" if items else "Escalated"
    else:
        due = body.get("deadline", "")
        subject = f"Item at {round(100 * float(body.get('share', 0.8)))}% of its SLA, due {due}"
    lines = [subject, ""]
    lines += [f"- {i['application']} ({i['tier']}): {i['url']}" for i in items]
    return subject, items, "\n".join(lines) + "\n"


class ReviewerChannels:
    """Sends reviewer messages by email and chat; a channel not configured is skipped.

    Args:
        smtp: The SMTP server, or None for no email.
        email_groups: Addresses per reviewer group (`parse_email_groups`).
        chat_url: The chat's incoming-webhook URL, or "" for no chat.
        public_url: The reviewer UI's base URL as reviewers reach it.
    """

    def __init__(
        self,
        *,
        smtp: SmtpSettings | None,
        email_groups: Mapping[str, tuple[str, ...]],
        chat_url: str,
        public_url: str,
        timeout: float = 10.0,
    ) -> None:
        self._smtp = smtp
        self._groups = dict(email_groups)
        self._chat_url = chat_url
        self._public_url = public_url
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def wants(self, message: OutboxMessage) -> bool:
        """Whether ``message`` has somewhere to go (else it is recorded as done, unsent)."""
        if message.channel == EMAIL:
            return self._smtp is not None and bool(self._recipients(message))
        return message.channel == CHAT and bool(self._chat_url)

    def _recipients(self, message: OutboxMessage) -> list[str]:
        seen: dict[str, None] = {}
        for group in message.body.get("groups", ()):
            seen.update(dict.fromkeys(self._groups.get(group, ())))
        return list(seen)

    async def send(self, message: OutboxMessage) -> None:
        """Send ``message`` on its channel.

        Raises:
            DeliveryFailed: The server refused it or could not be reached.
        """
        subject, items, text = _text(message, self._public_url)
        if message.channel == EMAIL:
            await self._email(message, subject, text)
        else:
            await self._chat(message, subject, items, text)

    async def _chat(
        self, message: OutboxMessage, subject: str, items: list[dict[str, Any]], text: str
    ) -> None:
        try:
            url = check_url(self._chat_url)
        except ValueError:  # the URL is a credential: not repeated in the stored error
            raise DeliveryFailed("chat webhook URL is not an https URL") from None
        payload = {
            "text": text,
            "id": message.id,
            "event": message.topic,
            "title": subject,
            "groups": message.body.get("groups", []),
            "items": items,
        }
        try:
            response = await self._client.post(url, json=payload)
        except httpx.HTTPError as exc:  # the type only: its text may hold the URL
            raise DeliveryFailed(f"chat webhook: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"chat webhook answered HTTP {response.status_code}")

    async def _email(self, message: OutboxMessage, subject: str, text: str) -> None:
        smtp = self._smtp
        assert smtp is not None  # `wants` checked it
        mail = EmailMessage()
        mail["From"] = smtp.sender
        mail["To"] = ", ".join(self._recipients(message))
        mail["Subject"] = f"[hitl-gateway] {subject}"
        # The outbox id: a mail system (or a person) can tell a re-sent message from a new one.
        mail["Message-ID"] = f"<{message.id}@hitl-gateway>"
        mail.set_content(text)
        try:
            await asyncio.to_thread(_send_mail, smtp, mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryFailed(f"SMTP {smtp.host}: {type(exc).__name__}: {exc}") from None


def _send_mail(smtp: SmtpSettings, mail: EmailMessage) -> None:
    """Blocking: one SMTP session (run in a worker thread)."""
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as server:
        if smtp.starttls:
            context = ssl.create_default_context(
                cafile=None if smtp.tls_ca is None else str(smtp.tls_ca)
            )
            server.starttls(context=context)
        if smtp.username:
            server.login(smtp.username, smtp.password)
        server.send_message(mail)


def reviewer_channels(settings: Settings) -> ReviewerChannels:
    """The channels the settings configure (`gateway.config.Settings`: ``smtp_*``,
    ``notify_email_groups``, ``chat_webhook_url``, ``public_url``)."""
    s = settings
    smtp = None
    if s.smtp_host:
        smtp = SmtpSettings(
            host=s.smtp_host,
            port=s.smtp_port,
            starttls=s.smtp_starttls,
            tls_ca=s.smtp_tls_ca,
            username=s.smtp_username,
            password=s.smtp_password,
            sender=s.smtp_from,
            timeout=s.outbox_timeout,
        )
    return ReviewerChannels(
        smtp=smtp,
        email_groups=parse_email_groups(s.notify_email_groups),
        chat_url=s.chat_webhook_url,
        public_url=s.public_url,
        timeout=s.outbox_timeout,
    )
