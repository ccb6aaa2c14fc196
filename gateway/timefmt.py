"""The one text form of a timestamp: stored in both databases, hashed into the audit chain,
shown by the CLI and the APIs.

Kept apart from the audit chain and the stores so that neither has to reach into the other
for it: a decision being stored formats its times here, and the chain hashes the same text.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2025-01-31T08:15:00.000000Z``.

    Raises:
        ValueError: ``ts`` is naive (has no time zone).
    """
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError(f"naive datetime {ts.isoformat()!r}: a time zone is required")
        ts = ts.astimezone(UTC)
    # isoformat is about twice as fast as strftime and pads years below 1000 correctly.
    return ts.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_ts(text: str) -> datetime:
    """Inverse of `format_ts`; always returns an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
