"""A third-party ``openai`` backend receives only the message roles its ``send_fields`` list,
checked on the wire in the model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai

from gateway.app import Gateway
from tests.integration.chat_gateway import TRANSFER_TOOL, chat_gateway, chat_key, chat_server
from tests.integration.chat_server import ChatServer

__all__ = ["chat_gateway", "chat_key", "chat_server"]

import pytest


@pytest.fixture
async def llm(chat_gateway: Gateway, chat_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    base = f"http://127.0.0.1:{chat_gateway.http_port}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key=chat_key, max_retries=0) as client:
        yield client


async def test_only_listed_roles_leave_for_a_third_party(
    llm: openai.AsyncOpenAI, chat_server: ChatServer
) -> None:
    """System and user messages leave as given; assistant and tool messages are masked; tools,
    the end user and metadata never leave."""
    messages: Any = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What did my last transfer do?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"iban": "DE02SECRETIBAN"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "balance 98765.43 EUR, Jane Roe"},
        {"role": "user", "content": "Summarise please"},
    ]
    answer = await llm.chat.completions.create(
        model="partner-assistant",
        messages=messages,
        tools=[TRANSFER_TOOL],  # type: ignore[list-item]
        user="customer-4711",
        metadata={"customer_name": "Jane Roe"},
        temperature=0.2,
    )
    assert answer.choices[0].message.content == "Echo: Summarise please"
    (sent,) = chat_server.requests
    body = sent.body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert body["messages"][0]["content"] == "You are a helpful assistant."
    assert body["messages"][1]["content"] == "What did my last transfer do?"
    assert body["messages"][2]["tool_calls"][0]["function"]["arguments"] == "***"
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "call_9", "content": "***"}
    assert body["temperature"] == 0.2
    assert set(body) == {"model", "messages", "temperature"}
    for secret in (b"SECRETIBAN", b"98765", b"Jane Roe", b"customer-4711", b"transfer_funds"):
        assert secret not in sent.raw
    # The gateway's own backend (not third party) gets the conversation as given.
    await llm.chat.completions.create(model="bank-assistant", messages=messages[:2])
    assert chat_server.requests[1].body["messages"] == messages[:2]
