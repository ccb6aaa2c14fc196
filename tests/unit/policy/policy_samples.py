"""Small policy files the policy tests build on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

TIERS = """\
tiers:
  - {name: prohibited, action: reject}
  - name: high
    require_approved_model: true
    review: {approvals: 2, groups: [senior], sla: 4h, on_timeout: reject}
  - name: limited
    review: {approvals: 1, groups: [reviewers], sla: 1h, on_timeout: escalate}
  - {name: minimal}
"""

BACKENDS = """\
backends:
  - {name: scorer, kind: builtin, model: credit_v3, version: "3"}
  - {name: draft, kind: builtin, model: offer_v1, version: "1"}
"""

APPLICATIONS = """\
applications:
  - id: credit
    tier: limited
    backend: scorer
    escalate:
      - {when: "input.amount > 100000", tier: high, reason: large amount}
    route:
      - {when: "output.score >= 0.8", action: approve, reason: good score}
      - {when: "output.score < 0.2", action: reject, reason: bad score}
      - {when: "true", action: review, reason: grey zone}
"""

WritePolicies = Callable[..., Path]
