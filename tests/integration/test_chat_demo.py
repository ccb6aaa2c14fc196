"""The demo's LLM application on the built-in demo chat model, called with the real ``openai``
client, and the snippet ``hitl-gateway demo`` prints for it."""

from __future__ import annotations

import json
from typing import Any

import openai

from gateway.app import Gateway
from gateway.cli_chat import chat_demo_lines
from gateway.types import Status


def _client(gateway: Gateway, key: str) -> openai.AsyncOpenAI:
    base = f"http://127.0.0.1:{gateway.http_port}/v1"
    return openai.AsyncOpenAI(base_url=base, api_key=key, max_retries=0)


async def test_demo_assistant_answers_and_holds_transfers(gateway: Gateway, api_key: str) -> None:
    """A question is answered at once; a transfer call is held with its decision id."""
    async with _client(gateway, api_key) as llm:
        answer = await llm.chat.completions.create(
            model="payments-assistant", messages=[{"role": "user", "content": "Opening hours?"}]
        )
        assert "Opening hours?" in (answer.choices[0].message.content or "")
        tool: Any = {
            "type": "function",
            "function": {"name": "transfer_funds", "parameters": {"type": "object"}},
        }
        raw = await llm.chat.completions.with_raw_response.create(
            model="payments-assistant",
            messages=[{"role": "user", "content": "Transfer 40 to DE89370400440532013000"}],
            tools=[tool],
            extra_headers={"x-hitl-wait": "0"},
        )
    assert raw.status_code == 202
    pending = json.loads(raw.http_response.content)["hitl"]
    held = await gateway.store.get_decision(pending["decision_id"])
    assert held is not None and held.status is Status.PENDING_REVIEW
    assert held.model_output is not None
    (call,) = held.model_output["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {
        "to": "DE89370400440532013000",
        "amount": 40.0,
    }


async def test_models_lists_the_demo_assistant(gateway: Gateway, api_key: str) -> None:
    """The demo key's applications include the assistant, listed by ``/v1/models``."""
    async with _client(gateway, api_key) as llm:
        assert "payments-assistant" in [m.id async for m in llm.models.list()]


def test_demo_prints_a_runnable_openai_snippet(gateway: Gateway) -> None:
    """The printed snippet names the endpoint, the key and the chat model, and compiles."""
    lines = chat_demo_lines(gateway.policies, "http://127.0.0.1:8080", "hitl_k_s")
    code = "\n".join(
        line[2:] for line in lines[lines.index("  python - <<'PY'") + 1 : lines.index("  PY")]
    )
    compile(code, "snippet", "exec")
    assert 'base_url="http://127.0.0.1:8080/v1"' in code and "payments-assistant" in code
