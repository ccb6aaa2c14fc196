"""The OpenAI-compatible endpoint, called with the real ``openai`` client (only ``base_url``
and ``api_key`` changed), in front of a real OpenAI-compatible server (`chat_server`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from gateway.app import Gateway
from gateway.core.reviews import Reviewer
from gateway.telemetry import metrics
from gateway.types import Decision, Status, TaskKind, Verdict
from tests.integration.chat_gateway import TRANSFER_TOOL, chat_gateway, chat_key, chat_server
from tests.integration.chat_server import MODEL, ChatServer

__all__ = ["chat_gateway", "chat_key", "chat_server"]

TRANSFER = "Please transfer 250 to DE89370400440532013000 today"


@pytest.fixture
async def llm(chat_gateway: Gateway, chat_key: str) -> AsyncIterator[openai.AsyncOpenAI]:
    base = f"http://127.0.0.1:{chat_gateway.http_port}/v1"
    async with openai.AsyncOpenAI(base_url=base, api_key=chat_key, max_retries=0) as client:
        yield client


async def _held(gw: Gateway) -> Decision:
    """The decision the running call is held on, once its review task exists."""
    for _ in range(500):
        tasks = await gw.store.list_review_tasks(TaskKind.DECISION)
        if tasks:
            decision = await gw.store.get_decision(tasks[0].decision_id)
            assert decision is not None
            return decision
        await asyncio.sleep(0.02)
    raise AssertionError("no decision was held")


async def _transfer(llm: openai.AsyncOpenAI, **extra: Any) -> Any:
    return await llm.chat.completions.create(
        model="bank-assistant",
        messages=[{"role": "user", "content": TRANSFER}],
        tools=[TRANSFER_TOOL],  # type: ignore[list-item]
        **extra,
    )


async def test_harmless_answer_returns_unchanged(
    llm: openai.AsyncOpenAI, chat_server: ChatServer
) -> None:
    """An approved answer is the model's answer, as the model server gives it directly."""
    messages: Any = [{"role": "user", "content": "What are your opening hours?"}]
    via = await llm.chat.completions.create(model="bank-assistant", messages=messages)
    async with openai.AsyncOpenAI(base_url=chat_server.url, api_key="x") as direct_client:
        direct = await direct_client.chat.completions.create(model=MODEL, messages=messages)
    assert via.choices[0].message.content == direct.choices[0].message.content
    assert via.choices[0].message.content == "Echo: What are your opening hours?"
    assert via.choices[0].finish_reason == direct.choices[0].finish_reason == "stop"
    assert via.usage is not None and direct.usage is not None
    assert via.usage.prompt_tokens == direct.usage.prompt_tokens
    assert via.usage.completion_tokens == direct.usage.completion_tokens
    assert via.id.startswith("chatcmpl-")
    assert chat_server.requests[0].headers["authorization"] == "Bearer sk-test-upstream"


async def test_harmless_answer_streams_unchanged(llm: openai.AsyncOpenAI) -> None:
    """With ``stream: true`` the approved answer arrives as chunks that join to the answer."""
    stream = await llm.chat.completions.create(
        model="bank-assistant",
        messages=[{"role": "user", "content": "Hello there"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts: list[str] = []
    finish: list[str] = []
    usage = None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        for choice in chunk.choices:
            parts.append(choice.delta.content or "")
            if choice.finish_reason:
                finish.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert "".join(parts) == "Echo: Hello there"
    assert finish == ["stop"]
    assert usage is not None and usage.completion_tokens == 7


async def test_held_tool_call_returns_once_approved(
    llm: openai.AsyncOpenAI, chat_gateway: Gateway
) -> None:
    """A call of a tool that needs approval waits for a reviewer, then returns the call."""
    call = asyncio.create_task(_transfer(llm))
    held = await _held(chat_gateway)
    assert not call.done()
    assert held.status is Status.PENDING_REVIEW
    assert held.rule == "route:approve_tools"
    await chat_gateway.reviews.submit(held.id, Reviewer("ana", "reviewers"), Verdict.APPROVE)
    answer = await asyncio.wait_for(call, 10)
    (tool,) = answer.choices[0].message.tool_calls or []
    assert tool.function.name == "transfer_funds"
    assert json.loads(tool.function.arguments) == {"to": "DE89370400440532013000", "amount": 250}
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.id == f"chatcmpl-{held.id}"


async def test_streamed_tool_call_is_buffered_until_approved(
    llm: openai.AsyncOpenAI, chat_gateway: Gateway
) -> None:
    """A streamed answer under review sends nothing until approved, then the whole call."""
    call = asyncio.create_task(_transfer(llm, stream=True))
    held = await _held(chat_gateway)
    await chat_gateway.reviews.submit(held.id, Reviewer("ana", "reviewers"), Verdict.APPROVE)
    stream = await asyncio.wait_for(call, 10)
    calls = [
        c
        for chunk in [c async for c in stream]
        for ch in chunk.choices
        for c in ch.delta.tool_calls or []
    ]
    assert [c.function.name for c in calls if c.function] == ["transfer_funds"]


async def test_rejected_tool_call_returns_the_refusal(
    llm: openai.AsyncOpenAI, chat_gateway: Gateway
) -> None:
    """A rejected tool call is an OpenAI-style error naming the decision and the reason."""
    call = asyncio.create_task(_transfer(llm))
    held = await _held(chat_gateway)
    await chat_gateway.reviews.submit(
        held.id, Reviewer("ana", "reviewers"), Verdict.REJECT, "customer did not confirm"
    )
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await asyncio.wait_for(call, 10)
    body: Any = caught.value.body
    assert body["code"] == "decision_rejected"
    assert body["type"] == "hitl_rejected"
    assert body["decision_id"] == held.id
    assert "customer did not confirm" in body["message"]
    assert caught.value.response.headers["x-hitl-decision-id"] == held.id


async def test_edited_argument_returns_edited_and_audited(
    llm: openai.AsyncOpenAI, chat_gateway: Gateway
) -> None:
    """A reviewer's edited tool arguments are what the caller gets, and the trail records them."""
    call = asyncio.create_task(_transfer(llm))
    held = await _held(chat_gateway)
    assert held.model_output is not None
    edited = json.dumps({"to": "DE89370400440532013000", "amount": 25})
    output = {**held.model_output, "tool_call_0_arguments": edited}
    await chat_gateway.reviews.submit(
        held.id, Reviewer("ana", "reviewers"), Verdict.OVERRIDE, "customer meant 25", output
    )
    answer = await asyncio.wait_for(call, 10)
    (tool,) = answer.choices[0].message.tool_calls or []
    assert json.loads(tool.function.arguments)["amount"] == 25
    events = await chat_gateway.store.audit_events_for(held.id)
    (reviewed,) = [e for e in events if e.type == "decision.reviewed"]
    assert reviewed.payload is not None
    assert edited in json.dumps(reviewed.payload, ensure_ascii=False).replace('\\"', '"'), (
        reviewed.payload
    )


async def test_held_past_the_wait_answers_pending(
    llm: openai.AsyncOpenAI, chat_gateway: Gateway
) -> None:
    """A call still held when its wait ends gets 202 and the pending answer with the id."""
    raw = await llm.chat.completions.with_raw_response.create(
        model="bank-assistant",
        messages=[{"role": "user", "content": TRANSFER}],
        tools=[TRANSFER_TOOL],  # type: ignore[list-item]
        extra_headers={"x-hitl-wait": "0.5"},
    )
    assert raw.status_code == 202
    body = json.loads(raw.http_response.content)
    assert body["object"] == "hitl.pending"
    assert body["choices"] == []
    decision_id = body["hitl"]["decision_id"]
    assert raw.headers["x-hitl-decision-id"] == decision_id
    held = await chat_gateway.store.get_decision(decision_id)
    assert held is not None and held.status is Status.PENDING_REVIEW


async def test_streamed_call_held_past_the_wait_raises_pending(llm: openai.AsyncOpenAI) -> None:
    """A streamed call still held when its wait ends gets one error event the client raises."""
    stream = await _transfer(llm, stream=True, extra_headers={"x-hitl-wait": "0"})
    with pytest.raises(openai.APIError) as caught:
        async for _ in stream:
            pass
    body: Any = caught.value.body
    assert body["code"] == "decision_pending"
    assert body["decision_id"]


async def test_rejected_by_policy_is_an_error(llm: openai.AsyncOpenAI) -> None:
    """An answer the policy rejects never reaches the caller."""
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await llm.chat.completions.create(
            model="bank-assistant", messages=[{"role": "user", "content": "say forbidden"}]
        )
    body: Any = caught.value.body
    assert body["code"] == "decision_rejected"
    assert "forbidden topic" in body["message"]


async def test_models_lists_the_keys_chat_models(llm: openai.AsyncOpenAI) -> None:
    """``/v1/models`` lists the chat models of the key's applications."""
    models = [m.id async for m in llm.models.list()]
    assert models == ["bank-assistant", "partner-assistant"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"model": "bank-assistant", "messages": [{"role": "robot", "content": "x"}]},
            "messages[0].role",
        ),
        ({"model": "bank-assistant", "messages": []}, "messages"),
        ({"model": "bank-assistant", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n"),
        ({"model": "bank-assistant", "messages": [{"role": "user", "content": "x"}], "x": 1}, "x"),
        (
            {"model": "bank-assistant", "messages": [{"role": "tool", "content": "x"}]},
            "messages[0]",
        ),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_bad_request_names_the_parameter(
    chat_gateway: Gateway, chat_key: str, body: dict[str, Any], param: str
) -> None:
    """Every bad body is a 400 whose ``param`` names the offending parameter."""
    url = f"http://127.0.0.1:{chat_gateway.http_port}/v1/chat/completions"
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json=body, headers={"authorization": f"Bearer {chat_key}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


async def test_garbage_and_bad_keys_are_refused(chat_gateway: Gateway, chat_key: str) -> None:
    """Not JSON, an unknown model and a bad key are refused with a clear code."""
    url = f"http://127.0.0.1:{chat_gateway.http_port}/v1/chat/completions"
    auth = {"authorization": f"Bearer {chat_key}"}
    async with httpx.AsyncClient() as http:
        garbage = await http.post(url, content=b"\xff{", headers=auth)
        unknown = await http.post(
            url,
            json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
            headers=auth,
        )
        unauth = await http.post(url, json={}, headers={"authorization": "Bearer sk-1"})
        huge = await http.post(url, content=b"x" * (5 * 1024 * 1024), headers=auth)
    assert garbage.status_code == 400
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert unauth.status_code == 401
    assert unauth.json()["error"]["code"] == "invalid_api_key"
    assert huge.status_code == 413


async def test_token_usage_is_counted_per_application(llm: openai.AsyncOpenAI) -> None:
    """Prompt and completion tokens are counted under the application's label."""
    counter = metrics.CHAT_TOKENS.labels("t-assistant", "completion")
    before = counter._value.get()
    await llm.chat.completions.create(
        model="bank-assistant", messages=[{"role": "user", "content": "count me"}]
    )
    assert counter._value.get() - before == 7


async def test_bad_wait_header_is_refused(chat_gateway: Gateway, chat_key: str) -> None:
    """A wait that is not a number of seconds is a 400 naming the header."""
    url = f"http://127.0.0.1:{chat_gateway.http_port}/v1/chat/completions"
    body = {"model": "bank-assistant", "messages": [{"role": "user", "content": "x"}]}
    headers = {"authorization": f"Bearer {chat_key}", "x-hitl-wait": "soon"}
    async with httpx.AsyncClient() as http:
        response = await http.post(url, json=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-hitl-wait"
