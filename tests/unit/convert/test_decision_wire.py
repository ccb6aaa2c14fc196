"""Both directions of the Decision <-> protobuf mapping, checked together."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from gateway._pb.hitl.gateway.v1 import gateway_pb2 as pb
from gateway.convert.decision import decision_from_pb, decision_to_pb
from gateway.types import Decision, ModelRef, Review, Status, Validation, Verdict
from tests.audit_builders import audit_decision

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_decision_round_trips_through_the_wire() -> None:
    """A decision converted to protobuf and back keeps every field the client sees."""
    d = _decision()
    back = decision_from_pb(pb.Decision.FromString(decision_to_pb(d).SerializeToString()))
    # The key and the digest of the request it is bound to stay on the server.
    assert back == Decision(**{**_fields(d), "idempotency_key": "", "request_digest": ""})
    assert back.requested_by == "maria.officer"


def test_a_decision_without_optional_parts_reads_back_without_them() -> None:
    """No model, outputs, reviews or deadline on the way out means none on the way back."""
    d = audit_decision(2)
    back = decision_from_pb(pb.Decision.FromString(decision_to_pb(d).SerializeToString()))
    assert back == d


def test_the_client_mapping_does_not_load_the_server_core() -> None:
    """Applications import the client; reading a decision must not pull in the server's core."""
    server = ("gateway.core", "gateway.api", "gateway.store")
    probe = (
        "import sys, gateway.client; "
        f"print(sorted(m for m in sys.modules if m.startswith({server!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def _fields(d: Decision) -> dict[str, object]:
    return {f: getattr(d, f) for f in d.__dataclass_fields__}


def _decision() -> Decision:
    return Decision(
        id="d1",
        application="credit-limit",
        tier="high",
        status=Status.OVERRIDDEN,
        input={"amount": 1.0, "customer": {"name": "Jane", "tags": ["a", None, True]}},
        model=ModelRef("credit-scorer", "credit_v3", "3", Validation.APPROVED),
        model_output={"score": 0.5, "explanation": {"income": 0.25}},
        final_output={"score": 0.75},
        reasons=("large amount", "grey zone"),
        rule="route[2]",
        created_at=NOW,
        updated_at=NOW,
        trace_id="ab" * 16,
        policy_version="sha256:00",
        subject_ref="cust-9",
        idempotency_key="k",
        labels={"channel": "web"},
        reviews=(Review("bob", "senior", Verdict.OVERRIDE, "manual", NOW, {"score": 0.75}),),
        approvals_needed=2,
        review_deadline=NOW,
        requested_by="maria.officer",
        request_digest="sha256:" + "cd" * 32,
    )
