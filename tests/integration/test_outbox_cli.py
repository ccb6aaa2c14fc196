"""`hitl-gateway outbox …`: a dead-lettered webhook is listed and re-sent, through a running
gateway's AdminService (--target) and on its data directory."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.core.reviews import Reviewer
from gateway.testing import create_api_key
from gateway.types import Role, Verdict
from tests.integration.serverproc import cli
from tests.integration.webhook_receiver import (
    SECRET,
    SECRET_ENV,
    WebhookReceiver,
    write_hook_policy,
)


@pytest.fixture
def receiver(policies_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    r = WebhookReceiver()
    write_hook_policy(policies_dir, r.url)
    yield r
    r.stop()


@pytest.fixture
async def hooked(settings: Settings, receiver: WebhookReceiver) -> AsyncIterator[Gateway]:
    # Dead-lettered after about a second of failed attempts.
    fast = replace(
        settings,
        outbox_interval=0.05,
        outbox_backoff_base=0.1,
        outbox_backoff_max=0.2,
        outbox_max_age=1.0,
    )
    gw = Gateway(fast)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def _outbox(*args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(cli, "outbox", *args, env={SECRET_ENV: SECRET})
    return done.returncode, done.stdout, done.stderr


async def _dead_letter(gw: Gateway) -> str:
    """A final decision whose webhook could not be delivered within its window."""
    key = await create_api_key(gw, "t-hook")
    async with AsyncGatewayClient(f"127.0.0.1:{gw.grpc_port}", api_key=key) as client:
        d = await client.decide("t-hook", {"score": 0.5, "customer": {"name": "Ana"}})
    await gw.reviews.submit(d.id, Reviewer("rita", "reviewer"), Verdict.APPROVE)
    for _ in range(100):
        if await gw.store.outbox_list(dead=True, limit=10):
            break
        await asyncio.sleep(0.1)
    (dead,) = await gw.store.outbox_list(dead=True, limit=10)
    return dead.id


async def test_dead_letter_is_listed_and_resent_through_the_gateway(
    hooked: Gateway, receiver: WebhookReceiver
) -> None:
    """`outbox list --dead` shows the message with its last error; `outbox resend ID` makes the
    gateway deliver it, same id, audited as the admin key; unknown ids and limits are refused."""
    message_id = await _dead_letter(hooked)
    token, record = new_key((), role="admin")
    await hooked.store.add_api_key(record)
    target = ("--target", f"127.0.0.1:{hooked.grpc_port}", "--key", token)

    rc, out, err = await _outbox("list", "--dead", "--format", "jsonl", *target)
    assert rc == 0, err
    (listed,) = [orjson.loads(line) for line in out.splitlines()]
    assert listed["id"] == message_id
    assert listed["dead_at"] is not None and "ConnectError" in listed["last_error"]
    rc, out, err = await _outbox("list", *target)
    assert rc == 0 and message_id not in out, out

    receiver.start()
    rc, out, err = await _outbox("resend", message_id, *target)
    assert rc == 0, err
    assert message_id in out
    (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert delivery.id == message_id
    assert delivery.payload["data"]["status"] == "APPROVED"

    events = [e for e in await hooked.store.audit_events(limit=1000) if e.type == "outbox.resent"]
    assert [(e.actor, e.payload["message_id"]) for e in events] == [
        (f"app:{record.key_id}", message_id)
    ]
    # A delivered message its receiver lost is sent again too, same id.
    rc, _, err = await _outbox("resend", message_id, *target)
    assert rc == 0, err
    assert [d.id for d in await asyncio.to_thread(receiver.wait_for, 2)] == [message_id] * 2
    rc, _, err = await _outbox("resend", "msg_unknown", *target)
    assert rc == 1 and "NOT_FOUND" in err, err
    rc, _, err = await _outbox("list", "--limit", "5000", *target)
    assert rc == 1 and "INVALID_ARGUMENT" in err and "limit" in err, err


async def test_dead_letter_is_resent_on_the_data_directory(
    hooked: Gateway, receiver: WebhookReceiver, settings: Settings
) -> None:
    """On the data directory (no --target) the same commands act on the store itself."""
    message_id = await _dead_letter(hooked)
    local = ("--data-dir", str(settings.data_dir), "--policies", str(settings.policies))
    rc, out, err = await _outbox("list", "--dead", *local)
    assert rc == 0, err
    assert message_id in out
    receiver.start()
    rc, _, err = await _outbox("resend", message_id, *local)
    assert rc == 0, err
    (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert delivery.id == message_id
    rc, _, err = await _outbox("resend", " ", *local)
    assert rc == 2 and err.startswith("error: ID:"), err


async def test_dead_letter_is_listed_and_resent_in_the_admin_page(
    hooked: Gateway, receiver: WebhookReceiver
) -> None:
    """The admin's outbox page lists the dead letter with its error; its Re-send button makes
    it due again (same id, audited as the person); a reviewer may not see the page."""
    dead_id = await _dead_letter(hooked)
    for name, role in (("ada", Role.ADMIN), ("rita", Role.REVIEWER)):
        await hooked.accounts.create(name, role, PASSWORD)
    base = f"http://127.0.0.1:{hooked.http_port}/ui"
    async with httpx.AsyncClient(base_url=base) as rita:
        await _sign_in(rita, "rita")
        assert (await rita.get("/admin/outbox")).status_code == 403
    async with httpx.AsyncClient(base_url=base) as ada:
        await _sign_in(ada, "ada")
        page = await ada.get("/admin/outbox")
        assert page.status_code == 200, page.text
        assert f'data-message="{dead_id}"' in page.text and "ConnectError" in page.text
        receiver.start()
        sent = await ada.post("/admin/outbox/resend", data={"csrf": _csrf(page), "id": dead_id})
        assert sent.status_code == 303, sent.text
        (delivery,) = await asyncio.to_thread(receiver.wait_for, 1)
    assert delivery.id == dead_id
    events = await hooked.store.audit_events(limit=10_000)
    resent = [e for e in events if e.type == "outbox.resent"]
    assert [(e.actor, (e.payload or {}).get("message_id")) for e in resent] == [
        ("user:ada", dead_id)
    ]


PASSWORD = "correct horse battery"


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


async def _sign_in(client: httpx.AsyncClient, name: str) -> None:
    page = await client.get("/login")
    signed = await client.post(
        "/login", data={"csrf": _csrf(page), "name": name, "password": PASSWORD}
    )
    assert signed.status_code == 303, signed.text
