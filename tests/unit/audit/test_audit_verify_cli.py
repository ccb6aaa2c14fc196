"""`hitl-gateway audit verify` on a copied database file that was tampered with."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.audit.chain import canonical_bytes, chain_hash
from gateway.audit.checkpoints import KEY_FILE, Signer, public_key_pem
from gateway.cli import main
from gateway.store import SQLiteStore
from gateway.store.sqlite.audit import insert_checkpoint
from gateway.types import AuditDraft, Decision
from tests.audit_builders import audit_decision

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
N = 20
CHECKPOINT_AT = (10, 20)


def _decision(i: int) -> Decision:
    return audit_decision(i, subject_ref=f"cust-{i % 3}")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gateway data dir: N events (seq 1..N), checkpoints signed at seq 10 and 20."""
    data = tmp_path_factory.mktemp("var")
    path = data / "gateway.db"
    signer = Signer.load_or_create(data / KEY_FILE)

    async def fill() -> None:
        async with SQLiteStore(path) as store:
            for i in range(1, N + 1):
                d = _decision(i)
                draft = AuditDraft(d.id, "decision.created", "app:k1", {"input": d.input})
                await store.create_decision(d, [draft], [])
                seq, head = store.chain_head()
                if seq in CHECKPOINT_AT:
                    insert_checkpoint(path, signer.sign(seq, head, T0))

    asyncio.run(fill())
    (data / "public.pem").write_text(public_key_pem(signer.public_key))
    return data


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    """An auditor's copy of the database file, with only the public key next to it."""
    shutil.copy(original / "gateway.db", tmp_path / "copy.db")
    shutil.copy(original / "public.pem", tmp_path / "public.pem")
    return tmp_path / "copy.db"


def verify(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    rc = main(
        [
            "audit",
            "verify",
            "--db",
            str(db),
            "--data-dir",
            str(db.parent / "nothing-here"),
            "--public-key",
            str(db.parent / "public.pem"),
            *extra,
        ]
    )
    out = capsys.readouterr()
    return rc, out.out + out.err


@contextmanager
def tamper(path: Path) -> Iterator[sqlite3.Connection]:
    """A raw connection with the append-only guards dropped, as an intruder would."""
    conn = sqlite3.connect(path)
    for trigger in (
        "audit_events_no_delete",
        "audit_events_only_erase",
        "audit_checkpoints_no_delete",
        "audit_checkpoints_no_update",
    ):
        conn.execute(f"DROP TRIGGER {trigger}")
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def test_untouched_copy_verifies_with_its_checkpoints(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An untouched copy verifies, and both signed checkpoints are checked."""
    rc, out = verify(copy, capsys)
    assert rc == 0, out
    assert f"ok: {N} events verified, 2 signed checkpoints checked" in out


def test_changed_field_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Changing one field of one event names that event and the field."""
    with tamper(copy) as conn:
        conn.execute("UPDATE audit_events SET actor = 'app:other' WHERE seq = 7")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 7" in out and "'actor'" in out


def test_changed_payload_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Changing a stored payload names the event through its digest."""
    with tamper(copy) as conn:
        conn.execute("""UPDATE audit_events SET payload = '{"input":{}}' WHERE seq = 12""")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 12" in out and "payload digest" in out


def test_deleted_event_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting one event names the missing seq."""
    with tamper(copy) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq = 5")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 5" in out and "missing: 5" in out


def test_inserted_event_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A forged event that links onto its predecessor breaks the link of the one after it."""
    with tamper(copy) as conn:
        conn.execute("UPDATE audit_events SET seq = -seq WHERE seq >= 15")
        conn.execute("UPDATE audit_events SET seq = 1 - seq WHERE seq < 0")
        prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 14").fetchone()[0]
        canonical = canonical_bytes(15, T0, "dec-x", "decision.reviewed", "user:eve", "d", "", "")
        conn.execute(
            "INSERT INTO audit_events (seq, ts, decision_id, type, actor, payload,"
            " payload_digest, trace_id, span_id, prev_hash, hash, canonical)"
            " VALUES (15, ?, 'dec-x', 'decision.reviewed', 'user:eve', NULL, 'd', '', '', ?, ?, ?)",
            ("2025-03-01T09:30:00.000000Z", prev, chain_hash(prev, canonical), canonical),
        )
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 16" in out and "prev_hash" in out


def test_swapped_events_are_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Swapping two neighbouring events names the first of them."""
    with tamper(copy) as conn:
        conn.execute("UPDATE audit_events SET seq = -1 WHERE seq = 3")
        conn.execute("UPDATE audit_events SET seq = 3 WHERE seq = 4")
        conn.execute("UPDATE audit_events SET seq = 4 WHERE seq = -1")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 3" in out


def test_cut_tail_is_caught_by_the_checkpoint(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cutting events off the end is caught: a signed checkpoint covers seq 20."""
    with tamper(copy) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq > 16")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 17" in out and "missing: 17..20" in out and "cut off" in out


def test_cut_tail_with_its_checkpoints_is_caught_by_a_saved_checkpoint(
    copy: Path, original: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing the tail and its checkpoints too is caught by a checkpoint saved earlier."""
    assert main(["audit", "checkpoint", "--db", str(copy)]) == 0
    saved = tmp_path / "saved.json"
    saved.write_text(capsys.readouterr().out)
    with tamper(copy) as conn:
        conn.execute("DELETE FROM audit_events WHERE seq > 16")
        conn.execute("DELETE FROM audit_checkpoints WHERE seq > 16")
    rc, out = verify(copy, capsys)
    assert rc == 0, "without the saved checkpoint the cut is invisible: the premise of the test"
    rc, out = verify(copy, capsys, "--checkpoint", str(saved))
    assert rc == 1
    assert "FAILED at event 17" in out


def test_rewritten_and_rehashed_tail_is_caught_by_the_checkpoint(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rewriting events 18..20 and re-hashing them consistently fails at the signed head."""
    with tamper(copy) as conn:
        rows = conn.execute(
            "SELECT seq, ts, decision_id, type, payload_digest FROM audit_events"
            " WHERE seq >= 18 ORDER BY seq"
        ).fetchall()
        prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 17").fetchone()[0]
        for seq, ts, decision_id, type_, digest in rows:
            stamp = datetime.fromisoformat(ts)
            canonical = canonical_bytes(seq, stamp, decision_id, type_, "user:eve", digest, "", "")
            new_hash = chain_hash(prev, canonical)
            conn.execute(
                "UPDATE audit_events SET actor = 'user:eve', canonical = ?, hash = ?,"
                " prev_hash = ? WHERE seq = ?",
                (canonical, new_hash, prev, seq),
            )
            prev = new_hash
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "FAILED at event 20" in out and "signed checkpoint" in out


def test_forged_checkpoint_signature_is_refused(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint whose signature does not verify with the public key fails verification."""
    with tamper(copy) as conn:
        conn.execute("UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = 10")
    rc, out = verify(copy, capsys)
    assert rc == 1
    assert "checkpoint at seq 10: signature does not verify" in out


def test_erased_payloads_still_verify(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`audit erase --subject` erases payloads without tampering, and the chain still verifies."""
    assert main(["audit", "erase", "--db", str(copy), "--subject", "cust-1"]) == 0
    assert "erased 7 payloads" in capsys.readouterr().out
    conn = sqlite3.connect(copy)
    erased = conn.execute("SELECT count(*) FROM audit_events WHERE payload IS NULL").fetchone()[0]
    conn.close()
    assert erased == 7
    rc, out = verify(copy, capsys)
    assert rc == 0, out


def test_erase_requires_a_selection(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`audit erase` with neither --before nor --subject refuses to erase everything."""
    assert main(["audit", "erase", "--db", str(copy)]) == 2
    assert "--before" in capsys.readouterr().err
