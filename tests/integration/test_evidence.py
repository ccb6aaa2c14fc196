"""Evidence packs and Merkle proofs from a real gateway's store, on SQLite and PostgreSQL: made
with the ``audit`` CLI offline, checked with nothing but the public key."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.app import Gateway
from gateway.audit import evidence_check
from gateway.audit.checkpoints import public_key_pem
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.reviews import Reviewer
from gateway.keys import generate_secrets
from gateway.testing import create_api_key
from gateway.types import Status, Verdict
from tests.integration.serverproc import cli
from tests.pgserver import pg_server, with_search_path

__all__ = ["pg_server"]

DECISIONS = 24
TARGET = 7


@dataclass
class Run:
    """A stopped gateway's store, the decisions made on it and how to reach it from the CLI."""

    settings: Settings
    where: tuple[str, ...]
    """``--db FILE`` or ``--store URL``, with ``--data-dir``."""
    env: dict[str, str]
    ids: list[str]
    public_key: Ed25519PublicKey
    pem: Path

    def audit(self, *args: str) -> tuple[int, str, str]:
        r = cli("audit", *args, *self.where, env=self.env)
        return r.returncode, r.stdout, r.stderr


def _name(i: int) -> str:
    return f"Customer Nr{i:03d}x"


async def _decide(gateway: Gateway) -> list[str]:
    token = await create_api_key(gateway)
    ids = []
    async with AsyncGatewayClient(f"127.0.0.1:{gateway.grpc_port}", api_key=token) as c:
        for i in range(DECISIONS):
            score = 0.5 if i % 2 else 0.9
            inp = {"score": score, "customer": {"name": _name(i)}}
            d = await c.decide("t-echo", inp, subject_ref=f"subj-{i:03d}x")
            ids.append(d.id)
    target = ids[TARGET]
    await gateway.reviews.submit(target, Reviewer("alice", "reviewer"), Verdict.APPROVE)
    done = await gateway.store.get_decision(target)
    assert done is not None and done.status is Status.APPROVED
    return ids


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def schema_dsn(store_kind: str, pg_server: str) -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own (empty text on SQLite), dropped afterwards."""
    if store_kind != "postgres":
        yield ""
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    yield with_search_path(pg_server, schema)
    conn = await asyncpg.connect(pg_server)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def run(schema_dsn: str, settings: Settings, tmp_path: Path) -> Run:
    env: dict[str, str] = {}
    if schema_dsn:
        dsn = schema_dsn
        secrets = generate_secrets()
        settings = replace(settings, store=dsn, admin_password="x" * 16, **secrets)
        env = {f"HITL_{k.upper()}": v for k, v in secrets.items()}
        where: tuple[str, ...] = ("--store", dsn, "--data-dir", str(settings.data_dir))
    else:
        where = (
            "--db",
            str(settings.data_dir / "gateway.db"),
            "--data-dir",
            str(settings.data_dir),
        )
    gateway = Gateway(settings)
    await gateway.start()
    try:
        ids = await _decide(gateway)
        key = gateway.signer.public_key
    finally:
        await gateway.stop()  # signs the final head: every event is checkpointed
    pem = tmp_path / "audit.pem"
    pem.write_text(public_key_pem(key))
    return Run(settings, where, env, ids, key, pem)


def _pack(run: Run, tmp_path: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    out = tmp_path / "pack.json"
    rc, _, err = run.audit("evidence", run.ids[TARGET], "-o", str(out), *extra)
    assert rc == 0, err
    return out, orjson.loads(out.read_bytes())


def _check(run: Run, pack: Path) -> tuple[int, str]:
    r = cli("audit", "check-evidence", str(pack), "--public-key", str(run.pem))
    return r.returncode, r.stdout + r.stderr


async def test_a_pack_for_one_decision_verifies_offline_and_holds_no_one_else(
    run: Run, tmp_path: Path
) -> None:
    """The pack of one decision among many checks with only the public key, and its bytes hold
    no other decision's id, subject or name (nor this subject's sealed name)."""
    path, pack = _pack(run, tmp_path)
    rc, out = _check(run, path)
    assert rc == 0, out
    assert f"ok: decision {run.ids[TARGET]}" in out
    types = [e["type"] for e in pack["events"]]
    assert types == ["decision.created", "decision.reviewed"]
    assert pack["decision"]["status"] == "APPROVED"
    assert pack["policy_version"]["digest"] == pack["decision"]["policy_version"]
    data = path.read_bytes()
    for i, other in enumerate(run.ids):
        if i == TARGET:
            continue
        assert other.encode() not in data
        assert f"subj-{i:03d}x".encode() not in data
        assert _name(i).encode() not in data
    assert _name(TARGET).encode() not in data  # sealed, masked as in the trail


async def test_every_changed_event_decision_or_proof_byte_is_named(
    run: Run, tmp_path: Path
) -> None:
    """Changing any character of any event field, of the decision record or of any proof
    hash makes the check fail, naming that event, the decision or that event's proof."""
    _, pack = _pack(run, tmp_path)
    assert evidence_check.check(pack, run.public_key).ok

    def changed(text: str, at: int) -> str:
        c = text[at]
        return text[:at] + ("1" if c != "1" else "2") + text[at + 1 :]

    for i, ev in enumerate(pack["events"]):
        seq = ev["seq"]
        for name in ("canonical", "ts", "actor", "type", "hash", "prev_hash", "payload_digest"):
            for at in range(0, len(ev[name]), 7):
                bad = copy.deepcopy(pack)
                bad["events"][i][name] = changed(ev[name], at)
                report = evidence_check.check(bad, run.public_key)
                assert any(f.startswith(f"event {seq}") for f in report.failures), (name, at)
        for k, step in enumerate(ev["proof"]["path"]):
            bad = copy.deepcopy(pack)
            bad["events"][i]["proof"]["path"][k] = changed(step, 5)
            report = evidence_check.check(bad, run.public_key)
            assert report.failures == [
                f"event {seq} proof: the proof does not lead to the tree's root"
            ]
        bad = copy.deepcopy(pack)
        bad["events"][i]["payload"]["tier"] = "high"
        assert any(
            f.startswith(f"event {seq}: its payload")
            for f in evidence_check.check(bad, run.public_key).failures
        )
    for name, value in (
        ("status", "REJECTED"),
        ("rule", "route[9]"),
        ("subject_ref", "subj-000x"),
        ("policy_version", "sha256:" + "0" * 64),
        ("input", {"score": 0.9, "customer": {"name": "***"}}),
        ("final_output", {"score": 0.1}),
        ("created_at", "2020-01-01T00:00:00.000000Z"),
    ):
        bad = copy.deepcopy(pack)
        bad["decision"][name] = value
        failures = evidence_check.check(bad, run.public_key).failures
        assert failures and all(f.startswith(("decision:", "policy version:")) for f in failures), (
            name,
            failures,
        )
    bad = copy.deepcopy(pack)
    bad["checkpoint"]["signature"] = changed(pack["checkpoint"]["signature"], 10)
    assert evidence_check.check(bad, run.public_key).failures == [
        "checkpoint signature: signature does not verify"
    ]


async def test_the_cli_names_the_altered_part(run: Run, tmp_path: Path) -> None:
    """``check-evidence`` exits 1 and prints which part of an edited pack fails."""
    path, pack = _pack(run, tmp_path)
    seq = pack["events"][1]["seq"]
    pack["events"][1]["canonical"] = pack["events"][1]["canonical"].replace("alice", "mallory")
    path.write_bytes(orjson.dumps(pack))
    rc, out = _check(run, path)
    assert rc == 1
    assert f"FAILED: event {seq}: its fields do not match its canonical bytes" in out


async def test_personal_data_only_when_asked_and_recorded(run: Run, tmp_path: Path) -> None:
    """With --with-personal-data the sealed name is in the pack, the pack still checks, and the
    trail records who asked (an evidence.personal_data event of that decision)."""
    path, pack = _pack(run, tmp_path, "--with-personal-data")
    assert pack["personal_data"] is True
    assert pack["decision"]["input"]["customer"]["name"] == _name(TARGET)
    assert _name(TARGET + 1).encode() not in path.read_bytes()
    rc, out = _check(run, path)
    assert rc == 0, out
    assert all(e["seq"] <= pack["checkpoint"]["seq"] for e in pack["events"])
    rc, trail, err = run.audit("trail", run.ids[TARGET], "--format", "jsonl")
    assert rc == 0, err
    last = orjson.loads(trail.splitlines()[-1])
    assert last["type"] == "evidence.personal_data"
    assert last["actor"].startswith("cli:")
    assert last["payload"] == {"fields": ["customer.name"]}


async def test_prove_and_consistency_from_the_cli(run: Run, tmp_path: Path) -> None:
    """``audit prove`` gives an inclusion proof that checks against the signed root, and
    ``audit consistency`` one between two checkpoints; a version 1 or missing checkpoint is
    refused naming the option."""
    rc, out, err = run.audit("prove", "3")
    assert rc == 0, err
    doc = orjson.loads(out)
    from gateway.audit.proofs import InclusionProof

    proof = InclusionProof.from_record(doc["inclusion"])
    proof.check()
    assert proof.root.hex() == doc["checkpoint"]["tree_root"]
    rc, out, err = run.audit("prove", "3", "--checkpoint", "2")
    assert rc == 2 and "checkpoint" in err
    rc, out, err = run.audit("prove", "0")
    assert rc == 2 and "event_seq" in err
    last = doc["checkpoint"]["seq"]
    rc, out, err = run.audit("consistency", str(last), str(last))
    assert rc == 0, err
