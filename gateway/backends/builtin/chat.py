"""The demo chat model: a deterministic assistant that answers in the OpenAI chat format.

It downloads nothing and needs no GPU: it reads the conversation and answers by fixed rules, so
the demo (and anyone's first test of an LLM application) shows a held tool call within a minute.

- The last message is a tool's result: it reports that result.
- The last user message asks for a transfer and a ``transfer_funds`` tool is offered: it calls
  the tool with the first amount and the first account-like word (an IBAN) it finds.
- Otherwise it answers with a short, fixed reply that quotes the question.

Its output is the decision output of `gateway.chat.shape` (``content``, ``tool_calls``,
``finish_reason``, ``usage``); token counts are word counts.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.chat.shape import output_from_completion
from gateway.types import JSONObject

__all__ = ["assistant_v1"]

MODEL = "assistant_v1"
_AMOUNT = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_ACCOUNT = re.compile(r"\b([A-Z]{2}\d{2}[A-Z0-9]{8,30})\b")


def _text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _offers(inputs: JSONObject, tool: str) -> bool:
    for spec in inputs.get("tools") or []:
        if isinstance(spec, dict) and (spec.get("function") or {}).get("name") == tool:
            return True
    return False


def assistant_v1(inputs: JSONObject) -> JSONObject:
    """Demo model: answer the conversation in ``inputs["messages"]`` by fixed rules."""
    messages = inputs.get("messages") or []
    last = messages[-1] if messages else {}
    asked = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    message: JSONObject = {"role": "assistant", "content": None}
    finish = "stop"
    if isinstance(last, dict) and last.get("role") == "tool":
        message["content"] = f"Done. The bank's system answered: {_text(last)}"
    elif "transfer" in asked.lower() and _offers(inputs, "transfer_funds"):
        amount = _AMOUNT.search(asked)
        account = _ACCOUNT.search(asked)
        arguments = {
            "to": account.group(1) if account else "savings",
            "amount": float(amount.group(1)) if amount else 100.0,
        }
        message["tool_calls"] = [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "transfer_funds", "arguments": json.dumps(arguments)},
            }
        ]
        finish = "tool_calls"
    else:
        quoted = asked if len(asked) <= 200 else asked[:200] + "…"
        message["content"] = (
            f"You asked: {quoted!r}. I am the gateway's demo assistant; a bank's model "
            "would answer here."
        )
    prompt = sum(len(_text(m).split()) for m in messages)
    completion = len((message["content"] or "").split()) + 8 * len(message.get("tool_calls", []))
    body = {
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
    }
    return output_from_completion(body, MODEL)
