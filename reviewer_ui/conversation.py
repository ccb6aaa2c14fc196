"""A chat decision as the item page shows it: the conversation as a conversation (each message
with its role, content and tool calls), the model's answer with each tool call's name and
arguments, and an override form that offers only what a reviewer may edit: the answer's text
and each tool call's arguments (`gateway.chat.shape` keeps those as top-level strings).

The input shown is the queue's view of it, so personal data stays masked (``***``) unless the
reviewer chose to see it, which is audited.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.chat.shape import arguments_key, tool_calls
from gateway.types import Decision, JSONObject

__all__ = ["conversation_context"]


def _pretty(arguments: Any) -> str:
    """Tool arguments as indented JSON when they parse, else as given."""
    if not isinstance(arguments, str):
        return json.dumps(arguments)
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


def _is_chat(d: Decision, input: JSONObject) -> bool:
    output = d.model_output or {}
    return isinstance(input.get("messages"), list) and isinstance(output.get("tool_calls"), list)


def _message(message: Any) -> JSONObject:
    if not isinstance(message, dict):
        return {"role": "?", "content": str(message), "calls": []}
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    calls = [
        {
            "name": (c.get("function") or {}).get("name", "?"),
            "arguments": _pretty((c.get("function") or {}).get("arguments", "")),
        }
        for c in message.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    return {
        "role": str(message.get("role", "?")),
        "content": "" if content is None else str(content),
        "calls": calls,
        "tool_call_id": message.get("tool_call_id", ""),
    }


def conversation_context(
    d: Decision, input: JSONObject, editable: dict[str, Any]
) -> dict[str, Any]:
    """Extra item-page context for a chat decision (empty for any other decision)."""
    if not _is_chat(d, input):
        return {}
    output = d.model_output or {}
    calls = tool_calls(output)
    # An answer that only calls tools has no text to edit: offering an empty box would invite
    # adding words the model never said to a tool call.
    labels = {"content": "answer text"} if output.get("content") or not calls else {}
    for i, call in enumerate(calls):
        labels[arguments_key(i)] = f"arguments of {call['function']['name']}"
    others = {k: v for k, v in input.items() if k not in ("messages", "tools")}
    return {
        "chat": {
            "messages": [_message(m) for m in input["messages"]],
            "tools": [
                (t.get("function") or {}).get("name", "?")
                for t in input.get("tools") or []
                if isinstance(t, dict)
            ],
            "answer": str(output.get("content") or ""),
            "calls": [
                {"name": c["function"]["name"], "arguments": _pretty(c["function"]["arguments"])}
                for c in calls
            ],
            "finish_reason": output.get("finish_reason", ""),
            "usage": output.get("usage") or {},
            "others": others,
        },
        "editable": {k: v for k, v in editable.items() if k in labels},
        "labels": labels,
    }
