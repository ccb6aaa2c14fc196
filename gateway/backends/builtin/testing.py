"""Models for tests only: they let a test drive exact scores, failures and slow answers.

They are registered under the names ``echo``, ``fail`` and ``slow`` so a test policy can point a
builtin backend at them. They make no decision of any value; never use them in a real policy.

``echo``: returns ``{"score": input.score}``.
``fail``: always raises ``ModelError``.
``slow``: waits ``input.sleep_s`` seconds (without blocking the event loop), then returns
``{"score": input.score}``; the backend turns an overrun of the call's timeout into ``ModelError``.
"""

from __future__ import annotations

import asyncio

from gateway.backends.builtin._common import non_negative, number
from gateway.backends.protocol import ModelError
from gateway.types import JSONObject


def echo(inputs: JSONObject) -> JSONObject:
    """Test model: answer with the input's ``score``, whatever it is."""
    return {"score": number("echo", inputs, "score")}


def fail(inputs: JSONObject) -> JSONObject:
    """Test model: always fail."""
    raise ModelError("fail: this test model always fails")


async def slow(inputs: JSONObject) -> JSONObject:
    """Test model: sleep ``sleep_s`` seconds, then answer with the input's ``score``."""
    sleep_s = non_negative("slow", inputs, "sleep_s")
    score = number("slow", inputs, "score")
    await asyncio.sleep(sleep_s)
    return {"score": score}
