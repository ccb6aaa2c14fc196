"""Policy versions in the store: every loaded version kept with its exact texts, one
``policy.loaded`` event per change of the version in force (both stores)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.audit.events import EventType
from gateway.policy import PolicySet, load_policies
from gateway.policy.versions import PolicyVersion, policy_loaded
from gateway.store import open_store
from gateway.store.trail import open_trail
from gateway.types import AuditDraft
from tests.unit.store.conftest import AnyStore
from tests.unit.store.raw import count, verify_chain

REPO_POLICIES = Path(__file__).parents[3] / "policies"
NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)

SCHEMA_APP = """\
applications:
  - id: zz-schema
    tier: limited
    backend: credit-scorer
    input_schema: schemas/credit.json
"""
# UTF-16 (with its byte-order mark), which YAML reads and UTF-8 does not decode: the version must
# still keep the exact bytes that were hashed.
SCHEMA_BYTES = '{"description": "café", "required": ["amount"]}\n'.encode("utf-16")


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """The repository's policies plus an application whose input schema is a file."""
    directory = tmp_path / "policies"
    directory.mkdir()
    for path in REPO_POLICIES.glob("*.yaml"):
        shutil.copy(path, directory / path.name)
    (directory / "zz-schema.yaml").write_text(SCHEMA_APP)
    (directory / "schemas").mkdir()
    (directory / "schemas" / "credit.json").write_bytes(SCHEMA_BYTES)
    return directory


def _loaded(
    policies: PolicySet, source: str = "/etc/hitl/policies", at: datetime = NOW
) -> tuple[PolicyVersion, AuditDraft]:
    return policy_loaded(policies.version, policies.files, source, "system", at)


def _by_hand(files: tuple[tuple[str, str], ...]) -> str:
    """The loader's digest, computed here from the files' bytes as they are on disk."""
    digest = hashlib.sha256()
    for name, text in files:
        for part in (name.encode(), text.encode("utf-8", "surrogateescape")):
            digest.update(len(part).to_bytes(8, "big") + part)
    return f"sha256:{digest.hexdigest()}"


async def _loaded_events(store: AnyStore) -> list[dict[str, object]]:
    events = await store.audit_events(limit=1000)
    return [e.payload or {} for e in events if e.type == EventType.POLICY_LOADED]


async def test_stored_texts_hash_to_the_digest_decisions_record(
    store: AnyStore, policy_dir: Path
) -> None:
    """The stored files of a loaded version hash to its digest, schema file bytes included."""
    policies = load_policies(policy_dir)
    assert await store.record_policy_version(*_loaded(policies))
    stored = await store.get_policy_version(policies.version)
    assert stored is not None
    assert _by_hand(stored.files) == policies.version
    assert [n for n, _ in stored.files] == [
        "applications.yaml",
        "backends.yaml",
        "tiers.yaml",
        "zz-schema.yaml",
        "schemas/credit.json",
    ]
    assert stored.file("tiers.yaml") == (policy_dir / "tiers.yaml").read_text()
    schema = stored.file("schemas/credit.json")
    assert schema is not None and schema.encode("utf-8", "surrogateescape") == SCHEMA_BYTES
    assert (stored.source, stored.loaded_by, stored.loaded_at) == (
        "/etc/hitl/policies",
        "system",
        NOW,
    )


async def test_loading_the_same_version_again_writes_no_second_row_or_event(
    store: AnyStore, location: str, policy_dir: Path
) -> None:
    """A restart (or another replica) loading the version in force records nothing new."""
    policies = load_policies(policy_dir)
    assert await store.record_policy_version(*_loaded(policies))
    assert not await store.record_policy_version(*_loaded(policies, at=datetime.now(UTC)))
    assert await count(location, "policy_versions") == 1
    assert await _loaded_events(store) == [
        {"digest": policies.version, "source": "/etc/hitl/policies", "previous": ""}
    ]
    first = await store.get_policy_version(policies.version)
    assert first is not None and first.loaded_at == NOW


async def test_a_change_and_a_change_back_each_write_an_event_naming_the_previous(
    store: AnyStore, location: str, policy_dir: Path
) -> None:
    """v1 -> v2 -> v1 writes three events, each with the digest in force before it."""
    v1 = load_policies(policy_dir)
    (policy_dir / "zz-schema.yaml").write_text(SCHEMA_APP.replace("limited", "high"))
    v2 = load_policies(policy_dir)
    assert v1.version != v2.version
    for policies in (v1, v2, v1):
        assert await store.record_policy_version(*_loaded(policies))
    assert [(e["digest"], e["previous"]) for e in await _loaded_events(store)] == [
        (v1.version, ""),
        (v2.version, v1.version),
        (v1.version, v2.version),
    ]
    assert [v.digest for v in await store.list_policy_versions()] == sorted(
        [v1.version, v2.version]
    )  # both loaded at NOW: ordered by digest
    assert await count(location, "policy_versions") == 2
    assert (await verify_chain(location)).ok


async def test_two_replicas_starting_together_write_one_event(
    store: AnyStore, location: str, policy_dir: Path
) -> None:
    """A second store on the same database loading the same version adds no event."""
    policies = load_policies(policy_dir)
    first = await store.record_policy_version(*_loaded(policies))
    if not location.startswith("postgresql"):  # one process owns a SQLite file: a restart
        await store.stop()
    other = open_store(location)
    await other.start()
    try:
        second = await other.record_policy_version(*_loaded(policies))
    finally:
        await other.stop()
    results = [first, second]
    assert results == [True, False]


async def test_an_unknown_digest_is_none_and_the_trail_reader_reads_stored_versions(
    store: AnyStore, location: str, policy_dir: Path
) -> None:
    """get_policy_version and the offline TrailReader agree; an unknown digest is None."""
    policies = load_policies(policy_dir)
    await store.record_policy_version(*_loaded(policies))
    assert await store.get_policy_version("sha256:" + "0" * 64) is None
    reader = open_trail(location)  # synchronous, as the CLI uses it: off the event loop
    read = await asyncio.to_thread(reader.policy_version, policies.version)
    assert read == await store.get_policy_version(policies.version)
    assert isinstance(read, PolicyVersion)
    assert await asyncio.to_thread(reader.policy_version, "sha256:" + "0" * 64) is None
