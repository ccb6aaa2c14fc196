"""A conversation as a decision: the input and output objects policies and reviewers see.

Input: the caller's request without transport details, ``{"messages": [...], "tools": [...],
<sampling parameters>, "user", "metadata"}``; ``user`` and ``metadata`` belong to the gateway
(policies, masking) and never reach a model.

Output: ``{"content", "finish_reason", "tool_calls", "usage", "model"}`` with ``content`` a string
("" when the model gave none) and, for each tool call ``i``, a top-level copy of its arguments,
``tool_call_<i>_arguments``. Reviewers override top-level strings of an output (see
`gateway.core.overrides`), so that copy is where an edited argument lands; the answer sent back
takes each call's arguments from it (`tool_calls`).
"""

from __future__ import annotations

from typing import Any

from gateway.types import JSONObject

__all__ = [
    "FORWARDED_PARAMS",
    "ShapeError",
    "arguments_key",
    "output_from_completion",
    "request_body",
    "tool_calls",
]

FORWARDED_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)
"""Request parameters passed on to the model as the caller gave them."""
MASK = "***"
"""What stands for withheld content (as `gateway.core.masking` writes it; this module sits below
the core, so it cannot import it)."""


class ShapeError(ValueError):
    """A model's answer is not a chat completion the gateway can carry."""


def arguments_key(index: int) -> str:
    """The output field holding tool call ``index``'s arguments (the one a reviewer edits)."""
    return f"tool_call_{index}_arguments"


def _mask_message(message: JSONObject, send: frozenset[str]) -> JSONObject:
    role = str(message.get("role", ""))
    if f"messages.{role}" in send:
        return message
    out = dict(message)
    if "content" in out and out["content"] is not None:
        out["content"] = MASK
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [
            {**c, "function": {**c.get("function", {}), "arguments": MASK}}
            if isinstance(c, dict)
            else c
            for c in calls
        ]
    return out


def request_body(inputs: JSONObject, model: str, send_fields: tuple[str, ...] = ()) -> JSONObject:
    """The ``/chat/completions`` body for a decision's input.

    With ``send_fields`` (a third-party model), only the content of messages whose role is
    listed (``messages.user``) leaves as given; every other message keeps its place and role,
    so the conversation stays well formed, with its content and tool arguments masked. Tool
    definitions leave only when ``tools`` is listed.
    """
    send = frozenset(send_fields)
    messages = list(inputs.get("messages") or [])
    if send:
        messages = [_mask_message(m, send) if isinstance(m, dict) else m for m in messages]
    body: JSONObject = {"model": model, "messages": messages}
    tools = inputs.get("tools")
    if tools and (not send or "tools" in send):
        body["tools"] = tools
    for name in FORWARDED_PARAMS:
        if name in inputs and (name != "tool_choice" or "tools" in body):
            body[name] = inputs[name]
    return body


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def output_from_completion(body: Any, model: str) -> JSONObject:
    """The decision output for a ``chat.completion`` response body.

    Raises:
        ShapeError: the body is not a chat completion with at least one choice.
    """
    if not isinstance(body, dict):
        raise ShapeError("the answer is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ShapeError("the answer has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ShapeError("choices[0].message is missing")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ShapeError("choices[0].message.content is not a string")
    calls: list[JSONObject] = []
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ShapeError(f"choices[0].message.tool_calls[{i}] has no function name")
        arguments = function.get("arguments")
        calls.append(
            {
                "id": str(call.get("id") or f"call_{i}"),
                "type": "function",
                "function": {
                    "name": function["name"],
                    "arguments": arguments if isinstance(arguments, str) else "{}",
                },
            }
        )
    usage = body.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    output: JSONObject = {
        "content": content or "",
        "finish_reason": str(choices[0].get("finish_reason") or "stop"),
        "tool_calls": calls,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "model": str(body.get("model") or model),
    }
    for i, call in enumerate(calls):
        output[arguments_key(i)] = call["function"]["arguments"]
    return output


def tool_calls(output: JSONObject) -> list[JSONObject]:
    """The output's tool calls, each with the arguments of its top-level copy (a reviewer's
    edit, when there is one)."""
    calls: list[JSONObject] = []
    for i, call in enumerate(output.get("tool_calls") or []):
        arguments = output.get(arguments_key(i), call["function"]["arguments"])
        calls.append({**call, "function": {**call["function"], "arguments": arguments}})
    return calls
