"""Who a reviewer UI request acts as: the person a trusted proxy asserts, else the session's.

The UI keeps the sessions (cookies, CSRF tokens); this module decides whose they may be, so the
rules sit beside the accounts they read rather than in a web route:

- A proxy's assertion wins over any session, since the identity provider is the source of truth;
  but a stored account of the same name that an admin disabled still blocks the person.
- A session started from a proxy's assertion acts only while the proxy keeps vouching: when the
  headers stop, the person is signed out rather than carried on by a cookie.
- A password session acts only while its account exists and is enabled, so disabling someone
  takes effect on their next click.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.core.accounts import AccountService
from gateway.core.sso import TrustedHeaderSso
from gateway.errors import PermissionDenied
from gateway.types import Account


@dataclass(frozen=True, slots=True)
class SessionClaim:
    """What a request's session says about who signed in."""

    user: str | None
    """None for a visitor who has not signed in."""
    sso: bool = False
    """The session was started from a trusted proxy's headers."""


@dataclass(frozen=True, slots=True)
class Acting:
    """The account a request acts as."""

    account: Account | None
    """None: nobody may act; a session the request brought must end."""
    asserted: bool = False
    """Named by a trusted proxy: the request's session must be an SSO session of this name."""


NOBODY = Acting(None)


class SignIn:
    """The sign-in rules of the reviewer UI (see the module docstring).

    Args:
        accounts: The stored accounts.
        sso: Trusted-header single sign-on; None means password sign-in only.
    """

    def __init__(self, accounts: AccountService, sso: TrustedHeaderSso | None = None) -> None:
        self._accounts = accounts
        self._sso = sso

    def asserted(self, peer: str, headers: Mapping[str, str]) -> Account | None:
        """The account a trusted proxy asserts in ``headers``, or None when none is asserted.

        Raises:
            PermissionDenied: Identity headers from a peer that is not a trusted proxy, or a
                user in no group that grants a role.
            InvalidInput: The user header does not hold a valid account name.
        """
        if self._sso is None:
            return None
        config = self._sso.config
        return self._sso.account_for(
            peer, headers.get(config.user_header), headers.get(config.groups_header)
        )

    async def acting(
        self, peer: str, headers: Mapping[str, str], session: SessionClaim | None
    ) -> Acting:
        """Who a request from ``peer`` with ``headers`` and ``session`` acts as.

        Raises:
            PermissionDenied: As for `asserted`, or the asserted person's stored account is
                disabled.
            InvalidInput: As for `asserted`.
        """
        asserted = self.asserted(peer, headers)
        if asserted is not None:
            stored = await self._accounts.get(asserted.name)
            if stored is not None and stored.disabled:
                raise PermissionDenied(f"account {asserted.name} is disabled")
            return Acting(asserted, asserted=True)
        if session is None or session.user is None or session.sso:
            return NOBODY
        account = await self._accounts.get(session.user)
        if account is None or account.disabled:
            return NOBODY
        return Acting(account)

    async def password(self, name: str, password: str, client: str) -> Account:
        """The account whose ``password`` this is (see `AccountService.authenticate`).

        Raises:
            RateLimited: Too many recent failures for this name or this client.
            Unauthenticated: Unknown name, wrong password or disabled account.
        """
        return await self._accounts.authenticate(name, password, client)
