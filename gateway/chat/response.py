"""Answers in the OpenAI chat format: a completion, its server-sent-event chunks, the pending
answer and error bodies.

The pending answer (HTTP 202) is the gateway's own, documented in the README: the answer is held
for review, nothing of it is released, and ``hitl.decision_id`` names the decision to follow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from gateway.chat.shape import tool_calls
from gateway.types import JSONObject

__all__ = ["completion", "error_body", "pending_body", "sse_chunks"]


def _message(output: JSONObject) -> JSONObject:
    calls = tool_calls(output)
    content = output.get("content") or ""
    message: JSONObject = {"role": "assistant", "content": content or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return message


def _usage(output: JSONObject) -> JSONObject:
    usage = output.get("usage") or {}
    prompt = int(usage.get("prompt_tokens", 0))
    completion_tokens = int(usage.get("completion_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def completion(ident: str, created: int, model: str, output: JSONObject) -> JSONObject:
    """A ``chat.completion`` carrying a released output (the model's, or the reviewer's)."""
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(output),
                "finish_reason": str(output.get("finish_reason") or "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(output),
    }


def sse_chunks(
    ident: str, created: int, model: str, output: JSONObject, *, include_usage: bool
) -> Iterator[bytes]:
    """The released output as ``chat.completion.chunk`` events, ending with ``[DONE]``.

    The whole answer is known before the first byte (it was decided on), so the chunks only
    keep the streaming client's protocol: the role, the content, each tool call, the finish
    reason, and the usage when asked for (``stream_options.include_usage``).
    """

    def event(delta: JSONObject, finish: str | None = None) -> bytes:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    message = _message(output)
    yield event({"role": "assistant", "content": ""})
    if message["content"]:
        yield event({"content": message["content"]})
    for i, call in enumerate(message.get("tool_calls", [])):
        yield event({"tool_calls": [{"index": i, **call}]})
    yield event({}, str(output.get("finish_reason") or "stop"))
    if include_usage:
        usage = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(output),
        }
        yield b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def error_body(message: str, kind: str, code: str, param: str | None = None) -> JSONObject:
    """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def pending_body(decision_id: str, model: str, created: int, message: str) -> JSONObject:
    """The answer to a call whose decision is still held when its wait ends."""
    return {
        "id": f"chatcmpl-{decision_id}",
        "object": "hitl.pending",
        "created": created,
        "model": model,
        "choices": [],
        "hitl": {"decision_id": decision_id, "status": "PENDING_REVIEW", "message": message},
    }
