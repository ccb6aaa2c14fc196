"""The ModelBackend protocol: one model the gateway can call."""

from __future__ import annotations

from typing import Protocol

from gateway.types import JSONObject, ModelRef


class ModelError(Exception):
    """The model call failed (timeout, bad response, backend down). Never approves."""


class ModelVersionMismatch(ModelError):
    """The model server answered under another model version than the policy pins."""

    def __init__(self, backend: str, model: str, pinned: str, reported: str) -> None:
        super().__init__(
            f"{backend}: model {model} answered as version {reported!r}, not the pinned "
            f"version {pinned!r}"
        )
        self.backend = backend
        self.model = model
        self.pinned = pinned
        self.reported = reported


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
