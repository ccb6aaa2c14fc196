"""People named in different places (an account, an SSO identity, a model's owner, the
``requested_by`` of a decision) are compared one way."""

from __future__ import annotations


def same_person(a: str, b: str) -> bool:
    """Two names for one person: equal ignoring case and surrounding spaces. Errs towards
    "the same" (fail closed): the rules that use it keep someone out."""
    return a.strip().casefold() == b.strip().casefold()
