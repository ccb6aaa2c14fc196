"""Build a ``ModelBackend`` from a backend spec in the policy."""

from __future__ import annotations

from typing import Protocol

from gateway.backends.builtin import BuiltinBackend
from gateway.backends.protocol import ModelBackend
from gateway.types import Validation

BACKEND_KINDS: tuple[str, ...] = ("builtin", "oip")
"""Every backend kind a policy may name."""


class BackendSpecLike(Protocol):
    """The fields of a policy's backend spec that choose and describe the backend."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def validation(self) -> Validation: ...


def build_backend(spec: BackendSpecLike) -> ModelBackend:
    """Return the backend ``spec`` describes, not yet started.

    Raises ``ValueError`` for an unknown kind or builtin model name, and ``NotImplementedError``
    for kind ``oip``, which this version cannot serve yet.
    """
    kind = spec.kind
    if kind == "builtin":
        return BuiltinBackend(spec.name, spec.model, spec.version, spec.validation)
    if kind == "oip":
        raise NotImplementedError(
            f"backend {spec.name!r}: backend kind 'oip' (Open Inference Protocol over HTTP) "
            "is not supported by this version of the gateway; use kind 'builtin'"
        )
    raise ValueError(
        f"backend {spec.name!r}: unknown backend kind {kind!r}; "
        f"known kinds: {', '.join(BACKEND_KINDS)}"
    )
