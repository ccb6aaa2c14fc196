"""Creating and revoking API keys, each change recorded in the audit trail.

Who may call the gateway, and for which applications, is itself evidence an auditor asks for:
``key.created`` names the key id, role, applications and whether it is a client certificate
identity (never the secret); ``key.revoked`` names the key id. Each event is written in the same
transaction as the change. Nothing is logged here: the commands that call this print to stdout
(a new key's token) and the event is the record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.audit.events import EventType
from gateway.audit.events import event as audit_event
from gateway.core.auth import CERT_PREFIX, check_role
from gateway.store.protocol import Store
from gateway.types import ApiKey


class ApiKeyAdmin:
    def __init__(
        self, store: Store, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._store = store
        self._clock = clock

    async def create(self, key: ApiKey, actor: str) -> None:
        """Store ``key`` (made by `gateway.core.auth.new_key` or `certificate_identity`).

        Raises:
            Conflict: The key id is taken.
            ValueError: The role does not fit the applications (see `check_role`).
        """
        check_role(key.role, tuple(key.applications))
        payload = {
            "key_id": key.key_id,
            "role": key.role,
            "applications": sorted(key.applications),
            "client_certificate": key.key_id.startswith(CERT_PREFIX),
        }
        event = audit_event(EventType.KEY_CREATED, "", actor, payload, ts=self._clock())
        await self._store.add_api_key(key, event)

    async def revoke(self, key_id: str, actor: str) -> bool:
        """Revoke ``key_id``; False (and nothing recorded) when missing or already revoked."""
        payload = {"key_id": key_id}
        event = audit_event(EventType.KEY_REVOKED, "", actor, payload, ts=self._clock())
        return await self._store.revoke_api_key(key_id, event)
