"""Fields <-> tensors by mapping, and the raw / typed wire encodings."""

from __future__ import annotations

import math

import pytest

from gateway._pb.inference import grpc_service_pb2 as pb
from gateway.oip.tensors import Tensor, TensorError, decode, encode, project
from gateway.oip.wire import from_raw, read_tensor, to_raw, write_contents
from gateway.policy import TensorSpec

FEATURES = TensorSpec("features", "FP64", (1, 2), fields=("income", "debt.ratio"))
AMOUNT = TensorSpec("amount", "INT64", (1,), field="amount")
HISTORY = TensorSpec("history", "INT32", (-1,), field="history")


def test_encode_spreads_fields_and_fills_variable_dimension() -> None:
    """``fields`` fill one tensor in order; a -1 dimension takes the element count."""
    obj = {"income": 85000, "debt": {"ratio": 0.2}, "amount": 15000, "history": [1, 0, 2]}
    tensors = encode(obj, (FEATURES, AMOUNT, HISTORY))
    assert tensors == [
        Tensor("features", "FP64", (1, 2), [85000.0, 0.2]),
        Tensor("amount", "INT64", (1,), [15000]),
        Tensor("history", "INT32", (3,), [1, 0, 2]),
    ]


@pytest.mark.parametrize(
    ("obj", "field", "message"),
    [
        ({"income": 1, "amount": 1, "history": []}, "debt.ratio", "missing"),
        ({"income": "x", "debt": {"ratio": 0}, "amount": 1, "history": []}, "income", "number"),
        ({"income": 1, "debt": {"ratio": 0}, "amount": 2.5, "history": []}, "amount", "integer"),
        ({"income": 1, "debt": {"ratio": 0}, "amount": 2**63, "history": []}, "amount", "range"),
        ({"income": math.inf, "debt": {"ratio": 0}, "amount": 1, "history": []}, "income", "NaN"),
        ({"income": 1, "debt": {"ratio": 0}, "amount": True, "history": []}, "amount", "number"),
    ],
)
def test_encode_names_the_field_that_does_not_fit(obj: dict, field: str, message: str) -> None:
    """A missing or ill-typed value fails with the field's path."""
    with pytest.raises(TensorError, match=message) as caught:
        encode(obj, (FEATURES, AMOUNT, HISTORY))
    assert caught.value.field == field


def test_decode_is_the_inverse_of_encode() -> None:
    """Decoding encoded tensors gives back the mapped fields."""
    obj = {"income": 85000.0, "debt": {"ratio": 0.2}, "amount": 15000, "history": [1, 2]}
    tensors = {t.name: t for t in encode(obj, (FEATURES, AMOUNT, HISTORY))}
    assert decode(tensors, (FEATURES, AMOUNT, HISTORY), strict=True) == obj


def test_strict_decode_checks_datatype_shape_and_finiteness() -> None:
    """A caller's tensor must have the declared datatype, a fitting shape and finite values."""
    with pytest.raises(TensorError, match="datatype FP64, got FP32"):
        decode(
            {"features": Tensor("features", "FP32", (1, 2), [1.0, 2.0])}, (FEATURES,), strict=True
        )
    with pytest.raises(TensorError, match=r"shape \[1, 2\], got \[2, 1\]"):
        decode(
            {"features": Tensor("features", "FP64", (2, 1), [1.0, 2.0])}, (FEATURES,), strict=True
        )
    with pytest.raises(TensorError, match="NaN"):
        decode(
            {"features": Tensor("features", "FP64", (1, 2), [1.0, math.nan])},
            (FEATURES,),
            strict=True,
        )
    with pytest.raises(TensorError, match="tensor missing"):
        decode({}, (FEATURES,), strict=True)


def test_lenient_decode_takes_the_servers_shape_and_keeps_nan() -> None:
    """A model's answer is taken as sent (NaN included: the pipeline fails closed on it)."""
    score = TensorSpec("predict", "FP64", (1, 1), field="score")
    out = decode({"predict": Tensor("predict", "FP32", (1,), [math.nan])}, (score,), strict=False)
    assert math.isnan(out["score"])


def test_project_keeps_only_listed_paths() -> None:
    """Projection drops every field outside the listed paths, nested ones included."""
    obj = {"doc": "p", "customer": {"name": "x", "country": "DE"}, "amount": 1}
    assert project(obj, ["doc", "customer.country", "absent"]) == {
        "doc": "p",
        "customer": {"country": "DE"},
    }


@pytest.mark.parametrize(
    "tensor",
    [
        Tensor("a", "FP64", (2,), [0.5, -1.25]),
        Tensor("b", "FP32", (1, 2), [0.75, 2.0]),
        Tensor("c", "INT64", (3,), [-(2**63), 0, 2**63 - 1]),
        Tensor("d", "UINT8", (2,), [0, 255]),
        Tensor("e", "BOOL", (2,), [True, False]),
        Tensor("f", "BYTES", (2,), [b"DE", b""]),
    ],
)
def test_raw_contents_round_trip(tensor: Tensor) -> None:
    """Raw little-endian encoding decodes to the same elements."""
    assert from_raw(tensor.datatype, tensor.shape, to_raw(tensor), "x") == list(tensor.data)


def test_raw_contents_must_match_the_shape() -> None:
    """Too few bytes for the declared shape fail, naming the tensor."""
    with pytest.raises(TensorError, match="needs 16") as caught:
        from_raw("FP64", (2,), b"\x00" * 8, "inputs[0]")
    assert caught.value.field == "inputs[0]"
    with pytest.raises(TensorError, match="past the end"):
        from_raw("BYTES", (1,), b"\x09\x00\x00\x00ab", "inputs[1]")


def test_typed_contents_round_trip_and_count_check() -> None:
    """Typed contents carry the elements; a count that contradicts the shape is refused."""
    message = pb.ModelInferRequest.InferInputTensor()
    write_contents(message, Tensor("x", "INT32", (1, 3), [1, 2, 3]))
    assert list(message.contents.int_contents) == [1, 2, 3]
    assert read_tensor(message, None, "inputs[0]") == Tensor("x", "INT32", (1, 3), [1, 2, 3])
    message.shape[1] = 4
    with pytest.raises(TensorError, match="needs 4 elements, got 3"):
        read_tensor(message, None, "inputs[0]")
