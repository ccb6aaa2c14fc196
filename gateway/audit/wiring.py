"""The audit side of a gateway, built from its settings (part of the composition root): the
auditors' read side, the checkpoint signer and, with ``tsa_url``, the time-stamp fetcher."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit.checkpointer import Checkpointer
from gateway.audit.checkpoints import Signer
from gateway.audit.service import AuditTrail
from gateway.audit.timestamps import Stamper, load_certificates
from gateway.config import Settings
from gateway.core.vault import Vault
from gateway.store.protocol import ReviewStore


@dataclass(frozen=True, slots=True)
class AuditSideStarted:
    audit: AuditTrail
    checkpointer: Checkpointer
    stamper: Stamper | None


async def start_audit(
    store: ReviewStore, signer: Signer, vault: Vault, s: Settings
) -> AuditSideStarted:
    """The trail for auditors, and the checkpointer (and stamper) started."""
    side = await store.open_audit(signer.public_key)
    audit = AuditTrail(
        side.log,
        record=store.append_event,
        opener=lambda d, paths: vault.open(d.input, paths, d.id),
    )
    checkpointer = Checkpointer(
        store.chain_head,
        signer,
        side.save,
        every_events=s.audit_checkpoint_events,
        every_seconds=s.audit_checkpoint_seconds,
        last_seq=0 if side.latest is None else side.latest.seq,
        close=side.close,
        tree_root=side.tree_root or side.log.tree_root_hex,
    )
    await checkpointer.start()
    stamper = None
    if s.tsa_url.strip():
        # Tokens come in the background: an authority that is down never holds a decision.
        roots = load_certificates(s.tsa_ca_file.read_bytes()) if s.tsa_ca_file else []
        stamper = Stamper(
            s.tsa_url.strip(),
            side.log.unstamped,
            side.log.save_timestamp,
            roots=roots,
            interval=s.tsa_interval,
            warn_after=s.tsa_warn_after,
        )
        await stamper.start()
    return AuditSideStarted(audit, checkpointer, stamper)
