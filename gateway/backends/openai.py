"""Backends that speak the OpenAI chat completions API over HTTP (vLLM, SGLang, llama.cpp,
Ollama, hosted providers).

``OpenAIBackend`` owns what belongs to one remote server: the HTTP clients (`Lanes`, optionally
TLS with a private CA), the API key (read from the environment variable the policy names, so no
key sits in a policy file), the circuit breaker, retries of transient failures within the
call's deadline, and readiness. The call is never streamed upstream: the gateway needs the whole
answer to decide on it, and streams it to its own caller only once released.

A third-party backend (``third_party: true``) receives only the message roles its
``send_fields`` list; the rest is masked before the request is built (`gateway.chat.shape`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import httpx
import structlog
from opentelemetry import propagate

from gateway.backends.breaker import CircuitBreaker
from gateway.backends.http_lanes import Lanes
from gateway.backends.protocol import ModelError
from gateway.backends.retry import backoff_delays
from gateway.chat.shape import ShapeError, output_from_completion, request_body
from gateway.policy import BackendSpec
from gateway.types import JSONObject, ModelRef

__all__ = ["OpenAIBackend"]

log = structlog.get_logger("gateway.backends.openai")

# Statuses that say the server (not this request) is in trouble: retried while the deadline
# allows, and counted toward opening the circuit. A 4xx proves the server is up, and a caller
# must not be able to open the circuit for everyone with bad input.
_RETRIED = frozenset({429, 502, 503, 504})
_MIN_ATTEMPT = 0.005
_READY_TIMEOUT = 1.0


class OpenAIBackend:
    """One OpenAI-compatible server and the model it serves for the gateway."""

    def __init__(self, spec: BackendSpec) -> None:
        if spec.target is None:
            raise ValueError(f"backend {spec.name!r}: an openai backend needs a target URL")
        self.spec = spec
        self.breaker = CircuitBreaker(spec.circuit_failures, spec.circuit_cooldown)
        self._base = spec.target.rstrip("/")
        self._lanes: Lanes | None = None

    @property
    def ref(self) -> ModelRef:
        return self.spec.ref()

    def _headers(self) -> dict[str, str]:
        env = self.spec.api_key_env
        key = os.environ.get(env, "") if env else ""
        return {"authorization": f"Bearer {key}"} if key else {}

    async def start(self) -> None:
        if self._lanes is not None:
            return
        verify: ssl.SSLContext | bool = True
        if self.spec.tls_ca:
            verify = ssl.create_default_context(cafile=self.spec.tls_ca)
        # The key is read once: rotating it means restarting, as for every other secret.
        headers = self._headers()
        self._lanes = Lanes(
            lambda limits: httpx.AsyncClient(
                base_url=self._base, verify=verify, headers=headers, limits=limits
            )
        )

    async def stop(self) -> None:
        lanes, self._lanes = self._lanes, None
        if lanes is not None:
            await lanes.aclose()

    async def ready(self) -> bool:
        """Whether the server answers ``GET /models`` listing the model (a server without that
        endpoint, 404, is judged by its answers alone)."""
        if self._lanes is None:
            return False
        try:
            response = await self._lanes.next().get("/models", timeout=_READY_TIMEOUT)
        except httpx.HTTPError:
            return False
        if response.status_code == 404:
            return True
        if response.status_code != 200:
            return False
        try:
            listed = [m.get("id") for m in response.json().get("data", [])]
        except (ValueError, AttributeError):
            return False
        return not listed or self.spec.model in listed

    async def predict(self, inputs: JSONObject, *, timeout: float) -> JSONObject:
        """The decision output for the conversation in ``inputs`` (`gateway.chat.shape`).

        Connection failures and 429/502/503/504 are retried with backoff while the deadline
        allows; an open circuit fails at once. Raises ModelError on any failure.
        """
        spec = self.spec
        body = request_body(inputs, spec.model, spec.send_fields if spec.third_party else ())
        answer = await self._post(body, timeout)
        try:
            return output_from_completion(answer, spec.model)
        except ShapeError as exc:
            raise ModelError(f"{spec.name}: {exc}") from None

    async def _post(self, body: JSONObject, timeout: float) -> Any:
        lanes = self._lanes
        name = self.spec.name
        if lanes is None:
            raise ModelError(f"{name}: backend not started")
        breaker = self.breaker
        if not breaker.allow():
            raise ModelError(f"{name}: circuit open, next try in {breaker.retry_in():.1f}s")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delays = backoff_delays()
        attempts = 0
        headers: dict[str, str] = {}
        propagate.inject(headers)
        try:
            while True:
                attempts += 1
                left = deadline - loop.time()
                try:
                    response = await lanes.next().post(
                        "/chat/completions", json=body, timeout=left, headers=headers
                    )
                except httpx.TimeoutException:
                    breaker.failure()
                    raise ModelError(f"{name}: no answer within {timeout:g}s") from None
                except httpx.HTTPError as exc:
                    delay = next(delays)
                    if _fits(deadline, delay):
                        await asyncio.sleep(delay)
                        continue
                    breaker.failure()
                    raise ModelError(
                        f"{name}: {type(exc).__name__} after {attempts} attempt(s)"
                    ) from None
                status = response.status_code
                if status in _RETRIED:
                    delay = next(delays)
                    if _fits(deadline, delay):
                        await asyncio.sleep(delay)
                        continue
                if status >= 500 or status in _RETRIED:
                    breaker.failure()
                else:
                    breaker.success()
                if status != 200:
                    raise ModelError(f"{name}: HTTP {status} after {attempts} attempt(s)")
                try:
                    return response.json()
                except ValueError:
                    raise ModelError(f"{name}: the answer is not JSON") from None
        except asyncio.CancelledError:
            breaker.release()
            raise


def _fits(deadline: float, delay: float) -> bool:
    """Whether another attempt fits before ``deadline`` after sleeping ``delay``."""
    return asyncio.get_running_loop().time() + delay + _MIN_ATTEMPT < deadline
