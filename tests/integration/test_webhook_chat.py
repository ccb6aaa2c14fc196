"""Reviewer notices to a chat incoming webhook (a real HTTP receiver on loopback): new items in
one batch per group, in the Slack/Teams ``{"text": ...}`` shape plus a generic JSON part."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.client import AsyncGatewayClient
from gateway.config import Settings
from gateway.testing import create_api_key
from tests.integration.serverproc import free_port
from tests.integration.webhook_receiver import SECRET, SECRET_ENV, write_hook_policy

SENSITIVE = "Ana Sensitive-Surname"


class Chat:
    """An incoming-webhook endpoint keeping each JSON body as received."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                chat.bodies.append(self.rfile.read(int(self.headers["content-length"])))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/chat"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat() -> Iterator[Chat]:
    c = Chat()
    yield c
    c.close()


@pytest.fixture
async def notifying(
    settings: Settings, policies_dir: Path, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    write_hook_policy(policies_dir, f"http://127.0.0.1:{free_port()}/unused")
    fast = replace(
        settings,
        chat_webhook_url=chat.url,
        public_url="https://hitl.bank.example/",
        notify_interval=2.0,
        outbox_interval=0.05,
    )
    gw = Gateway(fast)
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


async def test_new_items_reach_the_chat_in_one_message(notifying: Gateway, chat: Chat) -> None:
    """Items held together are announced in one chat message (per scan interval), with a
    link each and no value of their input."""
    key = await create_api_key(notifying, "t-hook")
    async with AsyncGatewayClient(f"127.0.0.1:{notifying.grpc_port}", api_key=key) as client:
        held = [
            await client.decide("t-hook", {"score": 0.5, "customer": {"name": SENSITIVE}})
            for _ in range(3)
        ]
    links = [f"https://hitl.bank.example/ui/items/{d.id}" for d in held]
    for _ in range(100):
        if sum(len(json.loads(b)["items"]) for b in chat.bodies) >= 3:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # the next scan: nothing new to tell
    # One message for the three, unless a scan fell between the calls (then two).
    assert 1 <= len(chat.bodies) <= 2
    seen: list[str] = []
    for raw in chat.bodies:
        assert SENSITIVE.encode() not in raw and b"0.5" not in raw
        body = json.loads(raw)
        assert body["event"] == "review.queued"
        assert body["groups"] == ["reviewers"]
        urls = [i["url"] for i in body["items"]]
        assert body["text"].startswith(f"{len(urls)} new item(s) to review (reviewers)")
        assert all(url in body["text"] for url in urls)
        seen += urls
    assert seen == links
