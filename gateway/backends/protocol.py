"""The ModelBackend protocol: one model the gateway can call."""

from __future__ import annotations

from typing import Protocol

from gateway.types import JSONObject, ModelRef


class ModelError(Exception):
    """The model call failed (timeout, bad response, backend down). Never approves."""


class ModelBackend(Protocol):
    @property
    def ref(self) -> ModelRef:
        """Backend name, model name, version and validation status."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool:
        """Whether the backend can serve now (part of the gateway's health)."""

    async def predict(self, inputs: JSONObject, *, timeout: float) -> JSONObject:
        """Return the model's output object; raise ``ModelError`` on any failure.

        The output holds the model's fields (e.g. ``score``) and, where the model explains
        itself, ``explanation``: a mapping of feature name to its contribution.
        """
