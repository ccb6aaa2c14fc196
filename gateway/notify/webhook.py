"""Signed webhooks to applications: one HTTP POST per outbox message, Standard Webhooks.

The body is ``{"type", "timestamp", "data"}``. For ``decision.final`` the data is the decision
exactly as ``GetDecision`` returns it to its application (the same converter, then protobuf's
JSON mapping), read when it is sent: a final decision never changes, so the content is the same
at every attempt, and only the status is kept in the outbox row. The headers ``webhook-id``
(the outbox id, stable across retries and restarts), ``webhook-timestamp`` and
``webhook-signature`` are made by the ``standardwebhooks`` package with the endpoint's secret.

TLS is verified against the system's trust store (httpx's default); plain HTTP is accepted only to
a loopback address (checked again here, not only at policy load).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from google.protobuf import json_format
from standardwebhooks.webhooks import Webhook

from gateway.convert.decision import decision_to_pb
from gateway.policy.model import WebhookSpec
from gateway.policy.webhook_schema import check_url
from gateway.store.outbox import DECISION_FINAL, OutboxMessage
from gateway.types import Decision

LoadDecision = Callable[[str, str], Awaitable[Decision]]
"""``(application, decision_id)`` to the decision as that application reads it."""


class DeliveryFailed(Exception):
    """An attempt did not deliver; the message says why, without secrets or bodies."""


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision in protobuf's JSON mapping of ``hitl.gateway.v1.Decision``."""
    data: dict[str, Any] = json_format.MessageToDict(decision_to_pb(decision))
    return data


class WebhookSender:
    """Sends outbox messages to applications' endpoints.

    Args:
        load: Reads a decision as its application sees it (sealed fields opened).
        timeout: Seconds one attempt may take, connecting included.
    """

    def __init__(self, load: LoadDecision, *, timeout: float = 10.0) -> None:
        self._load = load
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def body(self, message: OutboxMessage) -> str:
        """The JSON body of ``message`` (the same at every attempt)."""
        if message.topic == DECISION_FINAL:
            decision = await self._load(message.application, message.decision_id)
            data = decision_json(decision)
        else:
            data = {"id": message.decision_id, "application": message.application, **message.body}
        created = message.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        payload = {"type": message.topic, "timestamp": created, "data": data}
        return json.dumps(payload, separators=(",", ":"), sort_keys=True)

    async def send(self, message: OutboxMessage, endpoint: WebhookSpec) -> None:
        """POST ``message`` to ``endpoint``, signed.

        Raises:
            DeliveryFailed: The endpoint did not answer 2xx, or could not be reached.
        """
        try:
            url = check_url(endpoint.url)
        except ValueError as exc:
            raise DeliveryFailed(str(exc)) from None
        body = await self.body(message)
        now = datetime.now(UTC)
        signature = Webhook(endpoint.secret).sign(message.id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        host = urlsplit(url).hostname
        try:
            response = await self._client.post(url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{host}: {type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"{host} answered HTTP {response.status_code}")
