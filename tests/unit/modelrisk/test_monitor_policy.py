"""The policies' ``monitor:`` thresholds: loaded per backend and per application, checked at
load, and merged per model version with the strictest threshold kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import PolicyError
from gateway.modelrisk.early_warning import monitored
from gateway.modelrisk.record import ModelKey
from gateway.policy import PolicySet, load_policies

TIERS = """\
tiers:
  - name: limited
    review: {approvals: 1, groups: [reviewers], sla: 1h, on_timeout: reject}
"""
POLICY = """\
backends:
  - name: scorer
    kind: builtin
    model: credit_v3
    version: "3"
    monitor:
      override_rate: {above: 0.2, min_reviews: 30, action: alert}
      psi: {above: 0.25, window: 1d, action: suspend}
applications:
  - id: credit
    tier: limited
    backend: scorer
    monitor:
      override_rate: {above: 0.15, min_reviews: 50, window: 7d, action: escalate}
      error_rate: {above: 0.05}
"""


def _load(tmp_path: Path, text: str) -> PolicySet:
    (tmp_path / "tiers.yaml").write_text(TIERS)
    (tmp_path / "apps.yaml").write_text(text)
    return load_policies(tmp_path)


def test_thresholds_load_and_the_strictest_per_metric_wins(tmp_path: Path) -> None:
    """Backend and application rules both apply to the version; override_rate keeps 0.15."""
    rules = monitored(_load(tmp_path, POLICY))[ModelKey("scorer", "credit_v3", "3")]
    assert sorted(rules) == ["error_rate", "override_rate", "psi"]
    override = rules["override_rate"]
    assert (override.above, override.min_samples, override.window, override.action) == (
        0.15,
        50,
        7 * 86400.0,
        "escalate",
    )
    assert (rules["error_rate"].min_samples, rules["error_rate"].action) == (50, "alert")
    assert rules["psi"].window == 86400.0 and rules["psi"].action == "suspend"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("reject_rate: {above: 1.5}", "above must be a share below 1"),
        ("reject_rate: {above: 0.1, action: page}", "action"),
        ("drift: {above: 0.1}", "drift"),
        ("error_rate: {above: 0.1, min_reviews: 0}", "min_reviews"),
    ],
)
def test_a_bad_threshold_stops_loading_naming_it(tmp_path: Path, rule: str, message: str) -> None:
    """A rate above 1, an unknown action or metric, or no minimum is refused at load."""
    text = POLICY.replace("      error_rate: {above: 0.05}", f"      {rule}")
    with pytest.raises(PolicyError, match=message):
        _load(tmp_path, text)
