"""A small OpenAI-compatible chat server for tests and benchmarks: Starlette on uvicorn, on a
loopback port chosen by the kernel, in the caller's event loop.

Why it is enough: the gateway's ``openai`` backend uses only ``POST /chat/completions``
(non-streamed: the gateway decides on the whole answer) and ``GET /models`` (readiness), and
reads only the completion's JSON fields every OpenAI-compatible server (vLLM, SGLang, llama.cpp,
Ollama, the hosted APIs) returns: ``choices[0].message`` (content, tool_calls),
``finish_reason``, ``usage``, ``model``. This server speaks exactly that wire format, over real
HTTP, with deterministic answers, and keeps every request as it arrived (body and headers) so a
test can check what left the gateway. A language model would add only nondeterminism.

Answers, from the last messages:
- a tool's result last: ``"Transfer done: <result>"``;
- a user message that asks to transfer, with a ``transfer_funds`` tool offered: a call of that
  tool with ``{"to": <IBAN in the text>, "amount": <first number>}``;
- otherwise ``"Echo: <last user message>"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MODEL = "bank-llm-1"
_AMOUNT = re.compile(r"\b(\d+(?:\.\d+)?)\b")
_IBAN = re.compile(r"\b([A-Z]{2}\d{2}[A-Z0-9]{8,30})\b")


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """The deterministic completion for a request body."""
    messages = body.get("messages", [])
    last = messages[-1] if messages else {}
    asked = next((m.get("content") or "" for m in reversed(messages) if m["role"] == "user"), "")
    tools = {t["function"]["name"] for t in body.get("tools", [])}
    message: dict[str, Any] = {"role": "assistant", "content": None}
    finish = "stop"
    if last.get("role") == "tool":
        message["content"] = f"Transfer done: {last.get('content')}"
    elif "transfer" in str(asked).lower() and "transfer_funds" in tools:
        amount = _AMOUNT.search(str(asked))
        iban = _IBAN.search(str(asked))
        arguments = {
            "to": iban.group(1) if iban else "unknown",
            "amount": float(amount.group(1)) if amount else 0.0,
        }
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "transfer_funds", "arguments": json.dumps(arguments)},
            }
        ]
        finish = "tool_calls"
    else:
        message["content"] = f"Echo: {asked}"
    prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1700000000,
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7},
    }


@dataclass
class Recorded:
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ChatServer:
    """The server; ``requests`` holds every chat request received, in order."""

    def __init__(self, cert: tuple[Path, Path] | None = None) -> None:
        """``cert``: (certificate file, key file) to serve https instead of http."""
        self.requests: list[Recorded] = []
        self.port = 0
        self.cert = cert
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1"

    async def _completions(self, request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw)
        self.requests.append(Recorded(body, raw, dict(request.headers)))
        return JSONResponse(answer(body))

    async def _models(self, _: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models),
            ]
        )

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        certfile, keyfile = self.cert or (None, None)
        config = uvicorn.Config(
            self.app(),
            log_config=None,
            access_log=False,
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        server = self._server = _Quiet(config)
        task = self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                raise OSError("the chat server failed to start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            # Not waiting for idle keep-alive connections: a TLS one would hold the stop for
            # asyncio's 30 s TLS shutdown timeout, as the client never answers close_notify.
            self._server.force_exit = True
            await self._task


class _Quiet(uvicorn.Server):
    """No signal handlers: the test process owns them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def main() -> None:
    """Serve on ``--port`` until killed (``bench.chat_bench`` runs it as its model server)."""
    import argparse

    parser = argparse.ArgumentParser(description="deterministic OpenAI-compatible chat server")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = ChatServer()
    uvicorn.run(
        server.app(),
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
