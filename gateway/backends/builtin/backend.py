"""``BuiltinBackend``: serves one in-process model by name."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from gateway.backends.builtin import chat, models, testing
from gateway.backends.protocol import ModelError
from gateway.types import JSONObject, ModelRef

SyncModel = Callable[[JSONObject], JSONObject]
AsyncModel = Callable[[JSONObject], Awaitable[JSONObject]]

SYNC_MODELS: Mapping[str, SyncModel] = MappingProxyType(
    {
        "credit_v3": models.credit_v3,
        "fraud_v2": models.fraud_v2,
        "offer_v1": models.offer_v1,
        "assistant_v1": chat.assistant_v1,
        "echo": testing.echo,
        "fail": testing.fail,
    }
)
"""Plain-function models, called inline: each call takes microseconds."""

ASYNC_MODELS: Mapping[str, AsyncModel] = MappingProxyType({"slow": testing.slow})
"""Coroutine models, awaited under the call's timeout."""

MODEL_NAMES: tuple[str, ...] = tuple(sorted((*SYNC_MODELS, *ASYNC_MODELS)))
"""Every model name a builtin backend accepts."""


class BuiltinBackend:
    """A ``ModelBackend`` that runs one of the built-in models in process.

    Plain-function models run inline on the event loop with no thread hop (they cost a few
    microseconds, so ``timeout`` cannot be exceeded in practice). Coroutine models (the ``slow``
    test model) are awaited under ``timeout``. Any failure surfaces as ``ModelError``.
    """

    __slots__ = ("_async_fn", "_model", "_ref", "_sync_fn")

    def __init__(self, name: str, model: str, version: str) -> None:
        sync_fn = SYNC_MODELS.get(model)
        async_fn = ASYNC_MODELS.get(model)
        if sync_fn is None and async_fn is None:
            raise ValueError(
                f"backend {name!r}: unknown builtin model {model!r}; "
                f"known models: {', '.join(MODEL_NAMES)}"
            )
        self._sync_fn = sync_fn
        self._async_fn = async_fn
        self._model = model
        # Its inventory status is looked up per decision (`gateway.modelrisk.gate`).
        self._ref = ModelRef(backend=name, name=model, version=version)

    @property
    def ref(self) -> ModelRef:
        return self._ref

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ready(self) -> bool:
        return True

    # The timeout parameter is part of the ModelBackend protocol.
    async def predict(self, inputs: JSONObject, *, timeout: float) -> JSONObject:
        fn = self._sync_fn
        try:
            if fn is not None:
                return fn(inputs)
            assert self._async_fn is not None
            async with asyncio.timeout(timeout):
                return await self._async_fn(inputs)
        except ModelError:
            raise
        except TimeoutError as exc:
            raise ModelError(f"{self._model}: no answer within {timeout:g}s") from exc
        except Exception as exc:
            raise ModelError(f"{self._model}: {type(exc).__name__}: {exc}") from exc
