"""An assistant's tool call held for a person: the real ``openai`` client waits while a reviewer,
in a real browser, reads the conversation and approves, rejects or edits the call."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import openai
import pytest
from playwright.sync_api import Page, expect

from gateway.types import Role, Status
from tests.browser.conftest import login
from tests.browser.gatewaythread import GatewayThread
from tests.integration.chat_gateway import POLICY, TRANSFER_TOOL
from tests.integration.chat_server import MODEL, ChatServer
from tests.modelrisk_helpers import approve_in_gateway

PageFactory = Callable[[], Page]
ASK = "Please transfer 250 to DE89370400440532013000 today"


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """The OpenAI-compatible test server, on an event loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ChatServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def policies_dir(
    policies_dir: Path, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("HITL_TEST_LLM_KEY", "sk-test-upstream")
    (policies_dir / "chat.yaml").write_text(POLICY.format(url=chat_server.url, model=MODEL))
    return policies_dir


@pytest.fixture
def assistant_call(gw: GatewayThread) -> Callable[[], Future[Any]]:
    """Starts the assistant's chat call in a worker thread; its future holds the answer."""
    gw.call(approve_in_gateway(gw.gateway, "bank-llm", MODEL, "1"))
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=gw.api_key, max_retries=0)

    def ask() -> Any:
        return client.chat.completions.create(
            model="bank-assistant",
            messages=[
                {"role": "system", "content": "You are the bank's payments assistant."},
                {"role": "user", "content": ASK},
            ],
            tools=[TRANSFER_TOOL],  # type: ignore[list-item]
        )

    return lambda: gw.pool.submit(ask)


def _open_held_call(gw: GatewayThread, page: Page) -> str:
    """Sign in as a reviewer, wait for the held call in the queue and open it."""
    login(page, gw.url, "rita")
    row = page.locator("table.queue tr[data-decision]")
    expect(row).to_have_count(1, timeout=15_000)
    decision_id = row.get_attribute("data-decision")
    assert decision_id
    row.locator("a").click()
    expect(page.locator("[data-testid=claim]")).to_contain_text("Claimed by you")
    conversation = page.locator("[data-testid=conversation]")
    expect(conversation.locator("[data-testid=message-user]")).to_contain_text(ASK)
    expect(conversation.locator("[data-testid=message-system]")).to_contain_text("payments")
    expect(page.locator("[data-testid=tool-name]")).to_have_text("transfer_funds")
    expect(page.locator("[data-testid=tool-arguments]")).to_contain_text('"amount": 250')
    return decision_id


def test_held_tool_call_returns_once_approved_in_the_browser(
    gw: GatewayThread, new_page: PageFactory, assistant_call: Callable[[], Future[Any]]
) -> None:
    """The assistant's call blocks until the reviewer approves the tool call, then returns it."""
    gw.add_user("rita", Role.REVIEWER)
    waiting = assistant_call()
    page = new_page()
    decision_id = _open_held_call(gw, page)
    assert not waiting.done()
    page.click("[data-testid=approve]")
    expect(page.locator(".flash.ok")).to_contain_text("APPROVED")
    answer = waiting.result(timeout=15)
    (call,) = answer.choices[0].message.tool_calls
    assert call.function.name == "transfer_funds"
    assert json.loads(call.function.arguments) == {"to": "DE89370400440532013000", "amount": 250}
    assert answer.id == f"chatcmpl-{decision_id}"


def test_rejected_tool_call_gives_the_caller_the_refusal(
    gw: GatewayThread, new_page: PageFactory, assistant_call: Callable[[], Future[Any]]
) -> None:
    """A rejection in the browser reaches the caller as an error with the reviewer's reason."""
    gw.add_user("rita", Role.REVIEWER)
    waiting = assistant_call()
    page = new_page()
    decision_id = _open_held_call(gw, page)
    page.fill("[data-testid=reject-reason]", "the customer did not confirm")
    page.click("[data-testid=reject]")
    expect(page.locator(".flash.ok")).to_contain_text("REJECTED")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        waiting.result(timeout=15)
    body: Any = caught.value.body
    assert body["code"] == "decision_rejected"
    assert body["decision_id"] == decision_id
    assert "the customer did not confirm" in body["message"]


def test_edited_arguments_return_edited_and_audited(
    gw: GatewayThread, new_page: PageFactory, assistant_call: Callable[[], Future[Any]]
) -> None:
    """The reviewer edits the amount; the caller gets the edited call; the trail records it."""
    gw.add_user("rita", Role.REVIEWER)
    waiting = assistant_call()
    page = new_page()
    decision_id = _open_held_call(gw, page)
    edited = json.dumps({"to": "DE89370400440532013000", "amount": 25})
    page.fill("[data-testid=out-tool_call_0_arguments]", edited)
    page.fill("[data-testid=override-reason]", "customer confirmed 25 by phone")
    page.click("[data-testid=override]")
    expect(page.locator(".flash.ok")).to_contain_text("OVERRIDDEN")
    answer = waiting.result(timeout=15)
    (call,) = answer.choices[0].message.tool_calls
    assert json.loads(call.function.arguments)["amount"] == 25
    decision = gw.call(gw.gateway.store.get_decision(decision_id))
    assert decision is not None and decision.status is Status.OVERRIDDEN
    events = gw.call(gw.gateway.store.audit_events_for(decision_id))
    (reviewed,) = [e for e in events if e.type == "decision.reviewed"]
    assert reviewed.payload is not None and reviewed.actor.endswith("rita")
    assert edited in json.dumps(reviewed.payload, ensure_ascii=False).replace('\\"', '"')
