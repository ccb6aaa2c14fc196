"""Trusted-header single sign-on: a reverse proxy (e.g. oauth2-proxy) names the user and groups.

Off unless a user header is configured. The headers are believed only when the TCP peer is one
of the configured proxies; anyone else sending them is refused, since a client that can set
``X-Forwarded-User`` itself could otherwise become any reviewer.

The account is built from the headers on every request and never written to the store: the
identity provider stays the one source of truth, so removing someone from a group there takes
effect on their next click, with no stale copy to reconcile. A stored account of the same name
that an admin disabled still blocks the person (checked in `gateway.core.signin`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from gateway.errors import InvalidInput, PermissionDenied
from gateway.types import Account, Role

log = structlog.get_logger("gateway.sso")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Same shapes as local account and group names (see `gateway.core.accounts`)."""
MAX_GROUPS = 200


def parse_proxies(text: str) -> tuple[Network, ...]:
    """``"10.0.0.5, 10.1.0.0/16"`` as networks.

    Raises:
        ValueError: An entry that is not an address or CIDR (named in the message).
    """
    out = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            out.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR") from None
    return tuple(out)


def parse_role_map(text: str) -> tuple[tuple[str, Role], ...]:
    """``"hitl-admins=admin, hitl-reviewers=reviewer"`` as ``(group, role)`` pairs, in order.

    Raises:
        ValueError: An entry without ``=``, a bad group name or an unknown role.
    """
    out = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        group, sep, role = (p.strip() for p in entry.partition("="))
        if not sep or not _GROUP.match(group):
            raise ValueError(f"{entry!r}: expected group=role")
        try:
            out.append((group, Role(role)))
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ValueError(f"{entry!r}: role must be one of {roles}") from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SsoConfig:
    user_header: str
    """Header naming the user; empty turns SSO off."""
    groups_header: str
    """Header with the user's groups, comma-separated."""
    role_map: tuple[tuple[str, Role], ...]
    """Group -> role; the first entry whose group the user has decides the role."""
    trusted_proxies: tuple[Network, ...]
    """Peers allowed to send the headers."""

    @classmethod
    def parse(cls, user_header: str, groups_header: str, role_map: str, proxies: str) -> SsoConfig:
        """Raises ValueError naming the setting that is wrong."""
        try:
            roles = parse_role_map(role_map)
        except ValueError as exc:
            raise ValueError(f"sso_role_map: {exc}") from None
        try:
            nets = parse_proxies(proxies)
        except ValueError as exc:
            raise ValueError(f"sso_trusted_proxies: {exc}") from None
        config = cls(user_header.strip().lower(), groups_header.strip().lower(), roles, nets)
        if config.enabled and not nets:
            raise ValueError("sso_trusted_proxies: SSO needs the addresses of the proxies")
        if config.enabled and not roles:
            raise ValueError("sso_role_map: SSO needs at least one group=role entry")
        return config

    @property
    def enabled(self) -> bool:
        return bool(self.user_header)


class TrustedHeaderSso:
    def __init__(self, config: SsoConfig) -> None:
        self.config = config

    def _trusted(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in net for net in self.config.trusted_proxies)

    def account_for(self, peer: str, user: str | None, groups: str | None) -> Account | None:
        """The account the proxy asserts, or None when SSO is off or no user header came.

        Raises:
            PermissionDenied: The identity headers came from a peer that is not a trusted
                proxy, or none of the user's groups maps to a role.
            InvalidInput: The user header does not hold a valid account name.
        """
        c = self.config
        if not c.enabled or (user is None and groups is None):
            return None
        if not self._trusted(peer):
            log.warning("sso.untrusted_peer", peer=peer)
            raise PermissionDenied(
                f"identity headers are accepted only from a trusted proxy, not from {peer}"
            )
        if user is None:
            return None
        name = user.strip()
        if not _NAME.match(name):
            raise InvalidInput(c.user_header, "not a valid account name")
        # Groups the gateway cannot name (other systems' groups, odd characters) are dropped:
        # they cannot grant anything here, and queue filters rely on the name shape.
        have = [g for g in (p.strip() for p in (groups or "").split(",")) if _GROUP.match(g)]
        have = list(dict.fromkeys(have))[:MAX_GROUPS]
        role = next((r for g, r in c.role_map if g in have), None)
        if role is None:
            raise PermissionDenied(f"{name} is in no group that grants a role here")
        return Account(name, role, tuple(have), "", datetime.now(UTC))
