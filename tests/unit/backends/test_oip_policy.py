"""Policy checks for Open Inference Protocol backends and tensor mappings."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import NotFound, PolicyError
from gateway.policy import TensorSpec, load_policies

TIERS = "tiers:\n  - {name: minimal}\n"
BACKENDS = """\
backends:
  - {name: remote, kind: oip, target: "127.0.0.1:9", model: m, version: "1",
     third_party: true, send_fields: [doc, country],
     circuit: {failures: 3, cooldown: 2s}}
"""
APP = """\
applications:
  - id: kyc
    tier: minimal
    backend: remote
    oip:
      model_name: kyc-model
      inputs:
{inputs}
      outputs:
        - {{name: score, datatype: FP32, field: score}}
"""
GOOD_INPUTS = """\
        - {name: doc, datatype: BYTES, shape: [1], field: doc}
        - {name: extra, datatype: FP64, shape: [1, 2], fields: [a, b]}"""


def _load(tmp_path: Path, inputs: str = GOOD_INPUTS, app: str = APP) -> object:
    (tmp_path / "tiers.yaml").write_text(TIERS)
    (tmp_path / "backends.yaml").write_text(BACKENDS)
    (tmp_path / "apps.yaml").write_text(app.format(inputs=inputs))
    return load_policies(tmp_path)


def test_mapping_and_circuit_load(tmp_path: Path) -> None:
    """A valid mapping loads into tensor specs; the circuit settings reach the backend spec."""
    policies = _load(tmp_path)
    app = policies.application_for_model("kyc-model")  # type: ignore[attr-defined]
    assert app.id == "kyc" and app.oip is not None
    assert app.oip.inputs[1] == TensorSpec("extra", "FP64", (1, 2), fields=("a", "b"))
    assert app.oip.outputs[0].shape == (-1,)
    assert app.backend.circuit_failures == 3 and app.backend.circuit_cooldown == 2.0
    with pytest.raises(NotFound):
        policies.application_for_model("nope")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            "        - {name: mix, datatype: BYTES, shape: [2], fields: [doc, name]}",
            "mixes fields inside and outside send_fields",
        ),
        ("        - {name: x, datatype: FP64, shape: [1], field: a}", "no input tensor"),
        ("        - {name: x, datatype: FP64, shape: [3], fields: [doc, country]}", "holds 3"),
        ("        - {name: x, datatype: FP64, field: doc, fields: [doc]}", "exactly one"),
        ("        - {name: x, datatype: FP16, field: doc}", "datatype"),
        ("        - {name: x, datatype: FP64, shape: [-1, -1], field: doc}", "at most one"),
        (GOOD_INPUTS + "\n        - {name: doc, datatype: BYTES, field: doc}", "listed twice"),
    ],
)
def test_bad_mappings_are_refused_with_location(tmp_path: Path, inputs: str, message: str) -> None:
    """A mapping that cannot work stops loading, naming the file and field."""
    with pytest.raises(PolicyError, match=message) as caught:
        _load(tmp_path, inputs)
    assert caught.value.location.startswith("apps.yaml:")
    assert caught.value.field.startswith("applications[0].oip")


def test_oip_backend_needs_a_mapping(tmp_path: Path) -> None:
    """An application on an oip backend without an oip section is refused."""
    app = "applications:\n  - {{id: kyc, tier: minimal, backend: remote}}\n"
    with pytest.raises(PolicyError, match="needs an oip section"):
        _load(tmp_path, app=app)
