"""Reviewer email to a real SMTP server (aiosmtpd, STARTTLS on loopback): a new item and an SLA
warning arrive, with a link to the item and no value of the decision's input."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key
from tests.integration.serverproc import free_port
from tests.integration.tls_certs import TestCA
from tests.integration.webhook_receiver import SECRET, SECRET_ENV, write_hook_policy

SENSITIVE = "Ana Sensitive-Surname"
ACCOUNT = "DE44500105175407324931"
INPUT = {"score": 0.5, "customer": {"name": SENSITIVE, "account": ACCOUNT}}


class Inbox:
    """An aiosmtpd handler keeping every message's bytes as received."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"

    def parsed(self) -> list[tuple[list[str], Message, bytes]]:
        return [(to, message_from_bytes(raw), raw) for to, raw in self.messages]


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    ca = TestCA(tmp_path)
    cert = ca.server_cert("smtp")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_file, cert.key_file)
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    yield inbox, port, ca.ca_file
    controller.stop()


@pytest.fixture
async def notifying(
    settings: Settings,
    policies_dir: Path,
    smtp: tuple[Inbox, int, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_hook_policy(policies_dir, f"http://127.0.0.1:{free_port()}/unused", sla="6s")
    _, port, ca_file = smtp
    gw = Gateway(
        replace(
            settings,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_tls_ca=ca_file,
            smtp_from="hitl@bank.example",
            notify_email_groups="reviewers=review-team@bank.example;lead@bank.example",
            public_url="https://hitl.bank.example",
            notify_interval=0.3,
            # Warned from 3 s on: two seconds and more of scans before the deadline, even on a
            # busy machine.
            notify_sla_share=0.5,
            outbox_interval=0.05,
        )
    )
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def _wait(inbox: Inbox, n: int, seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if len(inbox.messages) >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(inbox.messages)} of {n} emails arrived")


async def test_new_item_and_sla_warning_are_emailed_without_personal_data(
    notifying: Gateway, smtp: tuple[Inbox, int, Path]
) -> None:
    """A held item is announced to its group, then warned at its SLA share; both link to the
    item, and no value of its input appears anywhere in the message bytes."""
    inbox = smtp[0]
    key = await create_api_key(notifying, "t-hook")
    async with AsyncGatewayClient(f"127.0.0.1:{notifying.grpc_port}", api_key=key) as client:
        d = await client.decide("t-hook", INPUT)
    await _wait(inbox, 2)
    link = f"https://hitl.bank.example/ui/items/{d.id}"
    (new, new_mail, new_raw), (warn, warn_mail, warn_raw) = inbox.parsed()[:2]
    assert new == warn == ["review-team@bank.example", "lead@bank.example"]
    assert "1 new item(s) to review (reviewers)" in new_mail["Subject"]
    assert "at 50% of its SLA" in warn_mail["Subject"]
    for mail in (new_mail, warn_mail):
        assert mail["From"] == "hitl@bank.example"
        assert link in mail.get_payload(decode=True).decode()
    for raw in (new_raw, warn_raw):
        for value in (SENSITIVE, "Sensitive", ACCOUNT, "0.5"):
            assert value.encode() not in raw
    await asyncio.sleep(1.0)  # later scans tell nobody twice
    assert len(inbox.messages) == 2
