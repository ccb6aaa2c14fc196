"""A policy version as stored: the exact texts its digest was computed from.

`digest_of` is the one definition of a policy set's version (the loader computes
``PolicySet.version`` with it), so the texts kept here always hash back to the digest that every
decision records as ``policy_version``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.audit.events import EventType, event
from gateway.types import AuditDraft, JSONObject

__all__ = ["PolicyVersion", "digest_of", "file_bytes", "policy_loaded"]


def file_bytes(text: str) -> bytes:
    """The bytes a file's text was read from (a schema file need not be UTF-8: the loader keeps
    undecodable bytes as surrogates, so the text gives back exactly what was hashed)."""
    return text.encode("utf-8", "surrogateescape")


def digest_of(files: Iterable[tuple[str, str]]) -> str:
    """``sha256:<hex>`` over each (name, text) in order, each part prefixed by its length."""
    digest = hashlib.sha256()
    for name, text in files:
        for part in (name.encode(), file_bytes(text)):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One loaded policy version: its digest and the files it was computed from."""

    digest: str
    """``sha256:<hex>``, as decisions record it in ``policy_version``."""
    files: tuple[tuple[str, str], ...]
    """(file name, exact text) in digest order: the policy files by name, then schema files."""
    source: str
    """The policy directory it was loaded from, or ``apply``."""
    loaded_at: datetime
    """When it was first loaded."""
    loaded_by: str
    """Who first loaded it (``system`` at start)."""

    def file(self, name: str) -> str | None:
        """The text of the file called ``name``, or None."""
        return next((text for n, text in self.files if n == name), None)


def policy_loaded(
    digest: str, files: tuple[tuple[str, str], ...], source: str, actor: str, now: datetime
) -> tuple[PolicyVersion, AuditDraft]:
    """The version to store for a loaded policy set and its ``policy.loaded`` event (the store
    adds the previous digest to the payload)."""
    version = PolicyVersion(digest, files, source, now, actor)
    payload: JSONObject = {"digest": digest, "source": source}
    return version, event(EventType.POLICY_LOADED, "", actor, payload)
