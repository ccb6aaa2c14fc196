"""The inventory's fields as people type them: model keys, names, free text, links, times.
Each check raises `InvalidInput` naming the field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from gateway.errors import InvalidInput
from gateway.modelrisk.record import ModelKey, ModelRecord
from gateway.timefmt import format_ts
from gateway.types import JSONObject

MAX_NAME = 128
"""Longest backend, model name, version or person name."""
MAX_TEXT = 2000
"""Longest intended use, limitations or justification."""
MAX_URL = 500
_PART = re.compile(r"[^\s/@]{1,128}")
"""A key part: no white space, and no ``/`` or ``@`` (``backend/name@version`` stays unique)."""


def parse_key(text: str) -> ModelKey:
    """``backend/name@version`` as a `ModelKey`; raises `InvalidInput` naming ``model``."""
    backend, slash, rest = text.partition("/")
    name, at, version = rest.rpartition("@")
    if not (slash and at):
        raise InvalidInput("model", f"expected backend/name@version, not {text!r}")
    return check_key(ModelKey(backend, name, version))


def check_key(key: ModelKey) -> ModelKey:
    """``key`` if each part is well formed; else `InvalidInput` naming the part."""
    for field, value in (("backend", key.backend), ("name", key.name), ("version", key.version)):
        if not _PART.fullmatch(value):
            raise InvalidInput(field, "required: 1 to 128 characters, no white space, '/' or '@'")
    return key


def text_field(field: str, value: str, limit: int = MAX_TEXT, *, required: bool = False) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, "required")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidInput(field, "control characters are not allowed")
    return value


def person_field(field: str, value: str) -> str:
    value = text_field(field, value, MAX_NAME, required=True)
    if "\n" in value or "\t" in value:
        raise InvalidInput(field, "one line")
    return value


def url_field(value: str) -> str:
    value = text_field("documentation_url", value, MAX_URL)
    if value and not re.fullmatch(r"https?://[^\s<>\"']+", value):
        raise InvalidInput("documentation_url", "an http:// or https:// address")
    return value


def aware_field(field: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(field, "a time zone is required")
    return value.astimezone(UTC)


def key_payload(key: ModelKey) -> JSONObject:
    """What every ``model.*`` event names (`gateway.store.models.names_model` reads it)."""
    return {"model": str(key), "backend": key.backend, "name": key.name, "version": key.version}


def record_fields(r: ModelRecord) -> dict[str, Any]:
    """The record's lifecycle fields as JSON values (times as `format_ts` text)."""

    def ts(v: datetime | None) -> str | None:
        return None if v is None else format_ts(v)

    return {
        "owner": r.owner,
        "validator": r.validator,
        "intended_use": r.intended_use,
        "max_tier": r.max_tier,
        "status": r.status.value,
        "validated_at": ts(r.validated_at),
        "validation_expires_at": ts(r.validation_expires_at),
        "documentation_url": r.documentation_url,
        "limitations": r.limitations,
        "updated_at": ts(r.updated_at),
        "updated_by": r.updated_by,
    }
