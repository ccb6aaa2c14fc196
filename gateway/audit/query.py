"""Auditor queries over the audit trail: filters, ordering and page tokens.

Pages are keyset pages on ``seq`` (never OFFSET), so any page costs the same however deep it
is. A page token carries the last seq served and a digest of the query it belongs to; a token
from another query, or one that does not decode, is refused naming ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Protocol

import orjson

from gateway.audit.chain import VerifyResult
from gateway.audit.checkpoints import Checkpoint
from gateway.audit.evidence import EvidenceLog
from gateway.audit.timestamps import TimeStamp
from gateway.errors import InvalidInput
from gateway.timefmt import format_ts
from gateway.types import AuditEvent, Status

MAX_PAGE = 1000
DEFAULT_PAGE = 100
_TEXT_LIMIT = 512
_TOKEN_LIMIT = 512


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Events matching every field that is set (empty strings and None match everything)."""

    since: datetime | None = None
    """Inclusive lower bound of the event time."""
    until: datetime | None = None
    """Exclusive upper bound of the event time."""
    application: str = ""
    tier: str = ""
    decision_id: str = ""
    subject_ref: str = ""
    actor: str = ""
    type: str = ""
    outcome: str = ""
    """The decision's current status, e.g. ``APPROVED``."""
    newest_first: bool = True

    def validate(self) -> EventFilter:
        """Return self, or raise `InvalidInput` naming the first bad field."""
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise InvalidInput(name, "needs a time zone")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidInput("until", "must be later than since (the time range is inverted)")
        for name in ("application", "tier", "decision_id", "subject_ref", "actor", "type"):
            if len(getattr(self, name)) > _TEXT_LIMIT:
                raise InvalidInput(name, f"longer than {_TEXT_LIMIT} characters")
        if self.outcome and self.outcome not in Status.__members__:
            raise InvalidInput(
                "outcome", f"unknown status {self.outcome!r}; one of {', '.join(Status)}"
            )
        return self

    def digest(self) -> str:
        parts = [format_ts(v) if isinstance(v, datetime) else v for v in astuple(self)]
        return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Page:
    events: list[AuditEvent]
    next_token: str
    """Empty when there are no more events."""


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidInput("page_size", "must not be negative")
    if requested > MAX_PAGE:
        raise InvalidInput("page_size", f"at most {MAX_PAGE}")
    return requested or DEFAULT_PAGE


def encode_token(flt: EventFilter, last_seq: int) -> str:
    raw = orjson.dumps({"q": flt.digest(), "s": last_seq})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(flt: EventFilter, token: str) -> int | None:
    """The last seq served by the previous page, or None for the first page.

    Raises:
        InvalidInput: The token is malformed or was issued for a different query.
    """
    if not token:
        return None
    if len(token) > _TOKEN_LIMIT:
        raise InvalidInput("page_token", "too long to be a page token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidInput("page_token", "not a page token of this API") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("s"), int) or "q" not in doc:
        raise InvalidInput("page_token", "not a page token of this API")
    if doc["q"] != flt.digest():
        raise InvalidInput("page_token", "issued for a different query; keep the same filters")
    seq: int = doc["s"]
    return seq


def seq_range(from_seq: int, to_seq: int) -> tuple[int, int | None]:
    """Validate a seq range (0 = open end); returns ``(first, last or None)``."""
    if from_seq < 0:
        raise InvalidInput("from_seq", "must not be negative")
    if to_seq < 0:
        raise InvalidInput("to_seq", "must not be negative")
    if to_seq and from_seq and to_seq < from_seq:
        raise InvalidInput("to_seq", "must not be before from_seq (the range is inverted)")
    return max(from_seq, 1), (to_seq or None)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """`VerifyResult` plus what the signed checkpoints contributed."""

    result: VerifyResult
    checkpoints_checked: int


class AuditLog(EvidenceLog, Protocol):
    """Read access to a stored audit trail (a live store or a copied file), with the proofs
    and evidence reads of `EvidenceLog` and the checkpoints' time-stamp tokens."""

    async def query(self, flt: EventFilter, after_seq: int | None, limit: int) -> list[AuditEvent]:
        """Up to ``limit`` matching events past ``after_seq`` in the filter's order."""

    async def trail(self, decision_id: str) -> list[AuditEvent]: ...

    def export(self, first: int, last: int | None) -> AsyncIterator[AuditEvent]:
        """Events ``first..last`` in chain order, read in bounded batches."""

    async def verify(self, first: int, last: int | None) -> ChainReport: ...

    async def latest_checkpoint(self) -> Checkpoint | None: ...

    async def tree_root_hex(self, size: int) -> str:
        """Hex root of the Merkle tree over events ``1..size`` (what checkpoints sign)."""
        ...

    async def unstamped(self, limit: int) -> list[Checkpoint]:
        """Checkpoints without a time-stamp token yet, oldest first."""
        ...

    async def save_timestamp(self, stamp: TimeStamp) -> None: ...


def limit_text(name: str, value: str) -> str:
    if len(value) > _TEXT_LIMIT:
        raise InvalidInput(name, f"longer than {_TEXT_LIMIT} characters")
    return value
