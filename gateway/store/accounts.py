"""Reviewer accounts and API keys: written once for both databases (through
`gateway.store.tx.WriteTx` and the shared reads' ``_rows``).

Each write runs inside the store's writer transaction, with its audit event chained in the same
transaction as the change it records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from gateway.audit.drafts import prepare_draft
from gateway.errors import Conflict, FailedPrecondition, NotFound
from gateway.store import codec, sql
from gateway.store.protocol import AccountChanges
from gateway.store.sessions import END_ACCOUNT_SESSIONS
from gateway.store.tx import WriteTx
from gateway.types import Account, ApiKey, AuditDraft

T = TypeVar("T")


class AccountsMixin:
    """Accounts and API keys for both stores (see the module docstring)."""

    if TYPE_CHECKING:

        def _check_running(self) -> None: ...

        async def _rows(self, statement: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]: ...

        async def _write(self, fn: Callable[[WriteTx], Awaitable[T]]) -> T: ...

    # -- accounts ----------------------------------------------------------------------------

    async def add_account(self, account: Account, event: AuditDraft) -> None:
        """Store a new account. Raises `Conflict` when the name is taken."""
        draft = prepare_draft(event)
        row = codec.account_row(account)

        async def add(tx: WriteTx) -> Any:
            if not await tx.execute(sql.INSERT_ACCOUNT, *row):
                return Conflict(f"account {account.name!r} already exists")
            await tx.append([draft])
            return None

        await self._write(add)

    async def change_account(
        self, before: Account, after: Account, event: AuditDraft, *, keep_admin: bool = False
    ) -> AccountChanges:
        """Store ``after`` (its role, groups and disabled flag) in place of ``before``, with
        ``event``, in one transaction.

        The account must still be exactly ``before`` inside the transaction: a change made
        meanwhile (by another command or replica) is not overwritten by one computed from an
        older read. Disabling also deletes the account's UI sessions and gives back every open
        review task it holds, so its next request is refused and others may claim at once.
        With ``keep_admin`` the change is refused unless another enabled admin remains; the
        count is taken inside the transaction, so two changes at once cannot both pass it.

        Raises:
            NotFound: No account of that name.
            Conflict: The stored account is no longer ``before``.
            FailedPrecondition: ``keep_admin`` and no other enabled admin.
        """
        self._check_running()
        draft = prepare_draft(event)
        name = before.name
        role, groups, _hash, _created, disabled = codec.account_row(after)[1:]
        ends = after.disabled and not before.disabled

        async def change(tx: WriteTx) -> Any:
            # No row lock: every account write appends an audit event, and such writes run one
            # at a time (SQLite's one writer; on PostgreSQL the chain's advisory lock).
            row = await tx.fetchrow(f"{sql.SELECT_ACCOUNTS} WHERE name = ?", name)
            if row is None:
                return NotFound("account", name)
            if codec.account_from_row(tuple(row)) != before:
                return Conflict(f"account {name!r} was changed meanwhile; run the command again")
            if keep_admin:
                others = await tx.fetchrow(sql.OTHER_ENABLED_ADMINS, name)
                if others is None or not others[0]:
                    return FailedPrecondition(
                        f"{name} is the last enabled admin: another admin was disabled or "
                        "demoted meanwhile, and one must stay"
                    )
            await tx.execute(sql.UPDATE_ACCOUNT, role, groups, disabled, name)
            sessions = leases = 0
            if ends:
                sessions = await tx.execute(END_ACCOUNT_SESSIONS, name)
                leases = await tx.execute(sql.RELEASE_ACCOUNT_LEASES, name)
            await tx.append([draft])
            return AccountChanges(sessions_ended=sessions, leases_released=leases)

        result: AccountChanges = await self._write(change)
        return result

    async def get_account(self, name: str) -> Account | None:
        rows = await self._rows(f"{sql.SELECT_ACCOUNTS} WHERE name = ?", (name,))
        return codec.account_from_row(tuple(rows[0])) if rows else None

    async def list_accounts(self) -> list[Account]:
        rows = await self._rows(f"{sql.SELECT_ACCOUNTS} ORDER BY name", ())
        return [codec.account_from_row(tuple(r)) for r in rows]

    # -- API keys ----------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKey, event: AuditDraft | None = None) -> None:
        """Store a new key, with ``event`` if given. Raises `Conflict` when the id is taken."""
        self._check_running()
        row = codec.api_key_row(key)
        drafts = [prepare_draft(event)] if event is not None else []

        async def add(tx: WriteTx) -> Any:
            if not await tx.execute(sql.INSERT_KEY, *row):
                return Conflict(f"api key {key.key_id!r} exists")
            await tx.append(drafts)
            return None

        await self._write(add)

    async def revoke_api_key(self, key_id: str, event: AuditDraft | None = None) -> bool:
        """Revoke a key, with ``event`` if given; True when this call revoked it, False (and no
        event) when it is missing or already revoked."""
        self._check_running()
        drafts = [prepare_draft(event)] if event is not None else []

        async def revoke(tx: WriteTx) -> bool:
            if not await tx.execute(sql.REVOKE_KEY, key_id):
                return False
            await tx.append(drafts)
            return True

        return await self._write(revoke)
