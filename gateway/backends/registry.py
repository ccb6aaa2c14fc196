"""Build a ``ModelBackend`` from a backend spec in the policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from gateway.backends.builtin import BuiltinBackend
from gateway.backends.oip import OipBackend
from gateway.backends.openai import OpenAIBackend
from gateway.backends.protocol import ModelBackend
from gateway.policy import ApplicationPolicy, BackendSpec

BACKEND_KINDS: tuple[str, ...] = ("builtin", "oip", "openai")
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


def build_backend(spec: BackendSpecLike) -> ModelBackend:
    """Return the backend ``spec`` describes, not yet started.

    Raises ``ValueError`` for an unknown kind or builtin model name.
    """
    kind = spec.kind
    if kind == "builtin":
        return BuiltinBackend(spec.name, spec.model, spec.version)
    if kind == "oip":
        if not isinstance(spec, BackendSpec):
            raise TypeError(f"backend {spec.name!r}: an oip backend needs a full BackendSpec")
        return OipBackend(spec)
    if kind == "openai":
        if not isinstance(spec, BackendSpec):
            raise TypeError(f"backend {spec.name!r}: an openai backend needs a full BackendSpec")
        return OpenAIBackend(spec)
    raise ValueError(
        f"backend {spec.name!r}: unknown backend kind {kind!r}; "
        f"known kinds: {', '.join(BACKEND_KINDS)}"
    )


def application_backends(
    applications: Iterable[ApplicationPolicy], backends: Mapping[str, ModelBackend]
) -> dict[str, ModelBackend]:
    """Per-application views of shared backends, keyed by application id.

    An application on an Open Inference Protocol backend calls it through its own tensor
    mapping; every other application calls its backend directly and needs no entry here.
    """
    bound: dict[str, ModelBackend] = {}
    for app in applications:
        backend = backends.get(app.backend.name)
        if isinstance(backend, OipBackend) and app.oip is not None:
            bound[app.id] = backend.bind(app.oip)
    return bound
