"""What each reviewer UI role may do with the review queues."""

from __future__ import annotations

from gateway.types import Account, Role

DECIDING_ROLES = frozenset({Role.REVIEWER, Role.SENIOR})
UNMASKING_ROLES = frozenset({Role.SENIOR, Role.AUDITOR})
ALL_SEEING_ROLES = frozenset({Role.AUDITOR, Role.ADMIN})
"""Read-only roles that see every group's items."""


def visible_groups(account: Account) -> tuple[str, ...] | None:
    """The groups whose items ``account`` sees (None: every group)."""
    if account.role in ALL_SEEING_ROLES:
        return None
    # Roles that neither decide nor see everything (model-risk) see no queue, whatever groups
    # an account of theirs holds (a reviewer re-roled keeps its groups).
    return account.groups if account.role in DECIDING_ROLES else ()
