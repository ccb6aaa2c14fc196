from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from gateway.backends.builtin import MODEL_NAMES, BuiltinBackend
from gateway.backends.oip import OipBackend
from gateway.backends.protocol import ModelBackend, ModelError
from gateway.backends.registry import build_backend
from gateway.policy import BackendSpec
from gateway.types import ModelRef, Validation


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str
    model: str
    version: str = "1"
    target: str = ""
    timeout: float = 1.0


def _backend(model: str) -> BuiltinBackend:
    return BuiltinBackend("demo", model, "3.0.1")


def test_ref_describes_the_backend() -> None:
    """The ref carries backend name, model name and version; its status is the inventory's."""
    ref = _backend("credit_v3").ref
    assert ref == ModelRef("demo", "credit_v3", "3.0.1", Validation.UNREGISTERED)


def test_unknown_model_name_lists_known_models() -> None:
    """An unknown model name fails at construction and lists every known name."""
    with pytest.raises(ValueError, match="unknown builtin model 'credit_v9'") as caught:
        _backend("credit_v9")
    for known in ("credit_v3", "fraud_v2", "offer_v1", "echo", "fail", "slow"):
        assert known in str(caught.value)
    assert set(MODEL_NAMES) == {
        "credit_v3",
        "fraud_v2",
        "offer_v1",
        "assistant_v1",
        "echo",
        "fail",
        "slow",
    }


async def test_lifecycle_is_trivial_and_always_ready() -> None:
    """start and stop do nothing, and the backend is always ready."""
    backend = _backend("fraud_v2")
    await backend.start()
    assert await backend.ready() is True
    await backend.stop()
    await backend.stop()


async def test_predict_runs_the_named_model() -> None:
    """predict returns the model's output, explanation included."""
    out = await _backend("credit_v3").predict(
        {"income": 60_000, "debt_ratio": 0.2, "past_delinquencies": 0, "amount": 8_000},
        timeout=0.5,
    )
    assert set(out) == {"score", "recommended_limit", "baseline", "explanation"}


async def test_echo_returns_the_input_score() -> None:
    """echo answers with exactly the score it was given."""
    assert await _backend("echo").predict({"score": 0.9}, timeout=1.0) == {"score": 0.9}


async def test_echo_without_score_raises_model_error() -> None:
    """echo without a numeric score raises ModelError naming the field."""
    with pytest.raises(ModelError, match="echo: input field 'score' must be a number"):
        await _backend("echo").predict({}, timeout=1.0)


async def test_fail_always_raises_model_error() -> None:
    """fail raises ModelError whatever the input."""
    with pytest.raises(ModelError, match="always fails"):
        await _backend("fail").predict({"score": 0.5}, timeout=1.0)


async def test_slow_answers_within_the_timeout() -> None:
    """slow returns the score once its sleep ends inside the timeout."""
    out = await _backend("slow").predict({"score": 0.3, "sleep_s": 0.01}, timeout=1.0)
    assert out == {"score": 0.3}


async def test_slow_past_the_timeout_raises_model_error_promptly() -> None:
    """slow past its deadline raises ModelError at the deadline, not after the sleep."""
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"slow: no answer within 0\.05s"):
        await _backend("slow").predict({"score": 0.3, "sleep_s": 5}, timeout=0.05)
    assert time.monotonic() - started < 1.0


async def test_slow_does_not_block_the_event_loop() -> None:
    """Two slow calls overlap: the shorter one, started second, answers first."""
    backend = _backend("slow")
    finished: list[float] = []

    async def call(score: float, sleep_s: float) -> None:
        out = await backend.predict({"score": score, "sleep_s": sleep_s}, timeout=5.0)
        finished.append(out["score"])

    # Order, not elapsed time: run one after the other (or blocking the loop), the long call
    # would finish first however idle or busy the machine is.
    await asyncio.gather(call(0.1, 0.6), call(0.2, 0.05))
    assert finished == [0.2, 0.1]


async def test_unexpected_model_failure_becomes_model_error() -> None:
    """An input that is not an object still surfaces as ModelError, never another exception."""
    with pytest.raises(ModelError, match="credit_v3"):
        await _backend("credit_v3").predict(None, timeout=1.0)  # type: ignore[arg-type]


def test_build_backend_makes_a_builtin_backend() -> None:
    """kind 'builtin' builds a BuiltinBackend carrying the spec's name, model and version."""
    backend: ModelBackend = build_backend(Spec("scorer", "builtin", "offer_v1", "2"))
    assert isinstance(backend, BuiltinBackend)
    assert backend.ref == ModelRef("scorer", "offer_v1", "2")


def test_build_backend_rejects_unknown_builtin_model() -> None:
    """An unknown builtin model name fails when the backend is built."""
    with pytest.raises(ValueError, match="unknown builtin model"):
        build_backend(Spec("scorer", "builtin", "nope"))


def test_build_backend_oip_builds_an_oip_backend() -> None:
    """kind 'oip' builds an Open Inference Protocol backend for the spec's target."""
    spec = BackendSpec("remote", "oip", "credit", "1", target="127.0.0.1:1")
    backend = build_backend(spec)
    assert isinstance(backend, OipBackend)
    assert backend.ref == spec.ref()


def test_build_backend_rejects_unknown_kind() -> None:
    """An unknown kind raises ValueError listing the known kinds."""
    with pytest.raises(ValueError, match=r"unknown backend kind 'grpc'.*builtin, oip"):
        build_backend(Spec("remote", "grpc", "credit"))
