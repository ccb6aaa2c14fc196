"""Audit events carry the trace id of the request that caused them, on both stores.

One walk drives a real gateway as its callers do: decisions over gRPC (DecisionGateway and the
OIP ModelInfer), a data subject's erasure, the model inventory and a webhook re-send over
AdminService, the reviewer
UI over HTTP, and the ``keys`` and ``users`` commands. Each request sends a ``traceparent`` (a
header, gRPC metadata, or the ``TRACEPARENT`` environment variable for a command) with a fresh
trace id, and every event appended meanwhile must carry exactly that id. The walk must reach
every event type a request can cause, so a new type fails here until a request making it is
added.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf.message import Message

from bench.oip_model_server import LinearModel
from gateway._pb.hitl.admin.v1 import admin_pb2, admin_pb2_grpc, policy_pb2
from gateway._pb.hitl.audit.v1 import audit_pb2, audit_pb2_grpc
from gateway._pb.hitl.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway._pb.inference import grpc_service_pb2 as oip_pb
from gateway._pb.inference import grpc_service_pb2_grpc as oip_grpc
from gateway.app import Gateway
from gateway.audit.events import SYSTEM_ONLY, EventType
from gateway.audit.events import event as audit_event
from gateway.config import Settings
from gateway.core.auth import new_key
from gateway.modelrisk.record import ModelKey
from gateway.policy.versions import digest_of, policy_loaded
from gateway.telemetry.spans import span
from gateway.testing import create_api_key
from gateway.types import Role
from tests.integration.oip_app import policies_dir, settings
from tests.integration.serverproc import cli
from tests.pgserver import pg_dsn, pg_server

__all__ = ["pg_dsn", "pg_server", "policies_dir", "settings"]

PASSWORD = "correct horse battery"
HELD = {"score": 0.5, "customer": {"name": "Erika Mustermann", "age": 41.0}}
"""Held for one reviewer in the limited tier; the name is personal data of t-echo."""
PINNED = """
backends:
  - {{name: pinned, kind: oip, target: "127.0.0.1:{port}", model: scorer, version: "1"}}
applications:
  - id: t-pinned
    tier: limited
    backend: pinned
    oip:
      model_name: t-pinned-model
      inputs: [{{name: features, datatype: FP64, shape: [1, 2], field: features}}]
      outputs: [{{name: predict, datatype: FP64, shape: [1, 1], field: score}}]
"""
"""An OIP backend pinned to version "1" on a server that answers as "2"."""


class _AnswersAsVersion2(LinearModel):
    async def ModelInfer(self, request: oip_pb.ModelInferRequest, context: object) -> object:
        response = await super().ModelInfer(request, context)
        response.model_version = "2"
        return response


@pytest.fixture(autouse=True)
async def _misversioned_backend(policies_dir: Path) -> AsyncIterator[None]:
    """A real OIP server answering under another version than the pinned one."""
    server = grpc.aio.server()
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(_AnswersAsVersion2(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    (policies_dir / "t-pinned.yaml").write_text(PINNED.format(port=port))
    yield
    await server.stop(None)


def _traceparent() -> tuple[str, str]:
    """A fresh W3C trace id and the ``traceparent`` value naming it (sampled)."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text
    return match[1]


class Trail:
    """Reads the events appended since the last look and checks whose trace they carry."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.seq = 0
        self.seen: set[str] = set()

    async def skip(self) -> None:
        """Pass over events of the test's own set-up (made outside any request)."""
        events = await self.gateway.store.audit_events(after_seq=self.seq, limit=10_000)
        if events:
            self.seq = events[-1].seq

    async def caused(self, trace_id: str, *types: EventType) -> None:
        """Exactly ``types`` were appended since the last look, each with ``trace_id``."""
        events = await self.gateway.store.audit_events(after_seq=self.seq, limit=10_000)
        assert sorted(e.type for e in events) == sorted(t.value for t in types)
        assert [(e.type, e.trace_id) for e in events] == [(e.type, trace_id) for e in events]
        for e in events:  # a real span id beside a trace id, none without one
            if trace_id:
                assert len(e.span_id) == 16 and int(e.span_id, 16) != 0, e
            else:
                assert e.span_id == "", e
        if events:
            self.seq = events[-1].seq
        self.seen.update(e.type for e in events)


class Web:
    """One person's browser on the reviewer UI; every request sends a new ``traceparent``."""

    def __init__(self, gateway: Gateway, trail: Trail) -> None:
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}/ui")
        self.trail = trail

    async def get(self, path: str) -> httpx.Response:
        trace_id, header = _traceparent()
        resp = await self.client.get(path, headers={"traceparent": header})
        assert resp.status_code == 200, resp.text
        await self.trail.caused(trace_id)  # reading a page records nothing
        return resp

    async def post(
        self, form_page: str, path: str, form: dict[str, str], *types: EventType
    ) -> httpx.Response:
        """Submit ``form`` with the token of ``form_page``; the request caused ``types``."""
        data = {"csrf": _csrf(await self.get(form_page)), **form}
        trace_id, header = _traceparent()
        resp = await self.client.post(path, data=data, headers={"traceparent": header})
        assert resp.status_code in (200, 303), resp.text
        await self.trail.caused(trace_id, *types)
        return resp

    async def sign_in(self, name: str) -> None:
        resp = await self.post("/login", "/login", {"name": name, "password": PASSWORD})
        assert resp.status_code == 303


@pytest.fixture
async def people(gateway: Gateway) -> AsyncIterator[list[Web]]:
    """Browsers opened by the test, closed afterwards."""
    opened: list[Web] = []
    yield opened
    for web in opened:
        await web.client.aclose()


async def test_every_event_a_request_causes_carries_its_trace_id(
    gateway: Gateway, settings: Settings, people: list[Web]
) -> None:
    """Each event a gRPC call, UI form or command causes carries its trace; all types reached."""
    trail = Trail(gateway)
    target = f"127.0.0.1:{gateway.grpc_port}"
    auth = ("authorization", f"Bearer {await create_api_key(gateway)}")
    admin_token, admin_record = new_key((), role="admin")
    await gateway.store.add_api_key(admin_record)
    for name, role in (("rita", Role.REVIEWER), ("sam", Role.SENIOR), ("ada", Role.ADMIN)):
        await gateway.accounts.create(name, role, PASSWORD)
    await trail.skip()

    # gRPC: decisions through the DecisionGateway and the Open Inference Protocol; an erasure.
    made: list[str] = []
    async with grpc.aio.insecure_channel(target) as channel:
        decisions = gateway_pb2_grpc.DecisionGatewayStub(channel)
        for application, payload, subject in (
            ("t-echo", HELD, "cust-42"),  # only erased
            ("t-echo", HELD, ""),
            ("t-echo", HELD, ""),
            ("t-echo", HELD, ""),
            ("t-echo", HELD, ""),
            ("t-sampled", {"score": 0.7}, ""),
        ):
            request = gateway_pb2.DecideRequest(application=application, subject_ref=subject)
            request.input.update(payload)
            trace_id, header = _traceparent()
            answer = await decisions.Decide(request, metadata=(auth, ("traceparent", header)))
            await trail.caused(trace_id, EventType.DECISION_CREATED)
            made.append(answer.id)

        infer = oip_pb.ModelInferRequest(model_name="t-oip-model")
        infer.inputs.add(name="score", datatype="FP64", shape=[1]).contents.fp64_contents.append(
            0.9
        )
        trace_id, header = _traceparent()
        await oip_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            infer, metadata=(auth, ("traceparent", header))
        )
        await trail.caused(trace_id, EventType.DECISION_CREATED)

        pinned = gateway_pb2.DecideRequest(application="t-pinned")
        pinned.input.update({"features": [1.0, 1.0]})
        trace_id, header = _traceparent()
        await decisions.Decide(pinned, metadata=(auth, ("traceparent", header)))
        mismatch = EventType.MODEL_VERSION_MISMATCH
        await trail.caused(trace_id, EventType.DECISION_CREATED, mismatch)

        erase = admin_pb2.EraseSubjectRequest(subject_ref="cust-42", reason="DSR 2026-7")
        trace_id, header = _traceparent()
        admin_md = (("authorization", f"Bearer {admin_token}"), ("traceparent", header))
        await admin_pb2_grpc.AdminServiceStub(channel).EraseSubject(erase, metadata=admin_md)
        await trail.caused(trace_id, EventType.SUBJECT_ERASED)

        # Monitoring escalates a model version on its own (untraced); an admin clears it.
        await _escalate(gateway, ModelKey("echo", "echo", "1"))
        await trail.skip()
        clear = admin_pb2.ModelClearEscalationRequest(
            key=admin_pb2.ModelKey(backend="echo", name="echo", version="1"), reason="INC-9 ok"
        )
        trace_id, header = _traceparent()
        admin_md = (("authorization", f"Bearer {admin_token}"), ("traceparent", header))
        await admin_pb2_grpc.AdminServiceStub(channel).ClearModelEscalation(
            clear, metadata=admin_md
        )
        await trail.caused(trace_id, EventType.MODEL_CLEARED)
    _, approved, rejected, overridden, unmasked, sampled = made

    # HTTP: the reviewer UI, a form at a time, as a browser submits them.
    rita, sam, ada = (Web(gateway, trail) for _ in range(3))
    people.extend((rita, sam, ada))
    for web, name in ((rita, "rita"), (sam, "sam"), (ada, "ada")):
        await web.sign_in(name)
    reviewed = EventType.DECISION_REVIEWED
    item = f"/items/{approved}"  # opening an item claims it
    await rita.post(item, f"{item}/verdict", {"verdict": "approve", "reason": "ok"}, reviewed)
    item = f"/items/{rejected}"
    await rita.post(item, f"{item}/verdict", {"verdict": "reject", "reason": "no"}, reviewed)
    item = f"/items/{overridden}"
    override = {"verdict": "override", "reason": "lower it", "out.score": "0.3"}
    await rita.post(item, f"{item}/verdict", override, reviewed)
    item = f"/items/{sampled}?kind=qa"
    qa = {"opinion": "disagree", "reason": "income looks misreported"}
    await rita.post(item, f"/items/{sampled}/qa", qa, EventType.DECISION_QA_REVIEWED)
    item = f"/items/{unmasked}"
    await sam.post(item, f"{item}/unmask", {}, EventType.DECISION_UNMASKED)
    await sam.post(item, f"{item}/release", {})
    switch = {"kind": "application", "name": "t-echo", "reason": "model drift"}
    pause, resume = {**switch, "action": "pause"}, {**switch, "action": "resume"}
    await ada.post("/admin/switches", "/admin/switches", pause, EventType.SWITCH_PAUSED)
    await ada.post("/admin/switches", "/admin/switches", resume, EventType.SWITCH_RESUMED)
    await rita.post("/", "/logout", {})

    # An admin has a webhook sent again through AdminService (its receiver lost it).
    message_id = f"msg_{approved}_final"
    await _outbox_settled(gateway, message_id)
    trace_id, header = _traceparent()
    admin_md = (("authorization", f"Bearer {admin_token}"), ("traceparent", header))
    async with grpc.aio.insecure_channel(target) as channel:
        await admin_pb2_grpc.AdminServiceStub(channel).ResendOutbox(
            admin_pb2.ResendOutboxRequest(id=message_id), metadata=admin_md
        )
    await trail.caused(trace_id, EventType.OUTBOX_RESENT)

    # Commands: the trace comes from the environment, as a job runner hands it on.
    where = ["--data-dir", str(settings.data_dir), "--policies", str(settings.policies)]
    if settings.store:
        where += ["--store", settings.store]
    trace_id, header = _traceparent()
    done = await asyncio.to_thread(
        cli,
        "users",
        "add",
        "carol",
        "--role",
        "reviewer",
        *where,
        stdin=f"{PASSWORD}\n",
        env={"TRACEPARENT": header},
    )
    assert done.returncode == 0, done.stderr
    await trail.caused(trace_id, EventType.ACCOUNT_CREATED)
    for command, caused in (
        (("set-role", "carol", "--role", "senior"), EventType.ACCOUNT_ROLE_CHANGED),
        (("set-groups", "carol", "--group", "senior"), EventType.ACCOUNT_GROUPS_CHANGED),
        (("disable", "carol"), EventType.ACCOUNT_DISABLED),
        (("enable", "carol"), EventType.ACCOUNT_ENABLED),
    ):
        trace_id, header = _traceparent()
        done = await asyncio.to_thread(cli, "users", *command, *where, env={"TRACEPARENT": header})
        assert done.returncode == 0, done.stderr
        await trail.caused(trace_id, caused)
    trace_id, header = _traceparent()
    done = await asyncio.to_thread(
        cli, "keys", "create", "--role", "auditor", *where, env={"TRACEPARENT": header}
    )
    assert done.returncode == 0, done.stderr
    await trail.caused(trace_id, EventType.KEY_CREATED)
    key_id = done.stderr.split("key id ", 1)[1].split()[0]
    trace_id, header = _traceparent()
    done = await asyncio.to_thread(
        cli, "keys", "revoke", key_id, *where, env={"TRACEPARENT": header}
    )
    assert done.returncode == 0, done.stderr
    await trail.caused(trace_id, EventType.KEY_REVOKED)
    trace_id, header = _traceparent()
    online = ["--target", f"127.0.0.1:{gateway.grpc_port}", "--key", admin_token]
    done = await asyncio.to_thread(
        cli,
        "audit",
        "erase",
        *online,
        "--subject",
        "cust-43",
        "--reason",
        "DSR 2026-8",
        env={"TRACEPARENT": header},
    )
    assert done.returncode == 0, done.stderr
    await trail.caused(trace_id, EventType.SUBJECT_ERASED)

    # The model inventory's lifecycle, over AdminService.
    key = admin_pb2.ModelKey(backend="echo", name="echo", version="9")
    expires = admin_pb2.ModelTransitionRequest().validation_expires_at
    expires.FromDatetime(datetime.now(UTC) + timedelta(days=30))
    model_calls: list[tuple[str, Message, EventType]] = [
        (
            "RegisterModel",
            admin_pb2.ModelRegisterRequest(
                key=key, owner="olga", intended_use="demo", max_tier="limited"
            ),
            EventType.MODEL_REGISTERED,
        ),
    ]
    for move, fields, caused in (
        (admin_pb2.MODEL_TRANSITION_VALIDATE, {"validator": "vic"}, EventType.MODEL_VALIDATED),
        (admin_pb2.MODEL_TRANSITION_APPROVE, {"approver": "ann"}, EventType.MODEL_APPROVED),
        (admin_pb2.MODEL_TRANSITION_SUSPEND, {}, EventType.MODEL_SUSPENDED),
        (admin_pb2.MODEL_TRANSITION_RESUME, {"approver": "ann"}, EventType.MODEL_RESUMED),
        (admin_pb2.MODEL_TRANSITION_RETIRE, {}, EventType.MODEL_RETIRED),
    ):
        request = admin_pb2.ModelTransitionRequest(
            key=key, transition=move, justification="why", **fields
        )
        if move == admin_pb2.MODEL_TRANSITION_VALIDATE:
            request.validation_expires_at.CopyFrom(expires)
        model_calls.append(("TransitionModel", request, caused))
    # A policy change: set as the shadow, then promoted (which clears the shadow).
    changed = [
        policy_pb2.PolicyFile(name=name, text=text + "\n# changed\n" if i == 0 else text)
        for i, (name, text) in enumerate(gateway.policies.files)
    ]
    model_calls += [
        (
            "ApplyPolicy",
            policy_pb2.ApplyPolicyRequest(files=changed, shadow=True),
            EventType.POLICY_SHADOWED,
        ),
        ("ApplyPolicy", policy_pb2.ApplyPolicyRequest(files=changed), EventType.POLICY_LOADED),
    ]
    async with grpc.aio.insecure_channel(target) as channel:
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        for method, message, caused in model_calls:
            trace_id, header = _traceparent()
            admin_md = (("authorization", f"Bearer {admin_token}"), ("traceparent", header))
            await getattr(admin, method)(message, metadata=admin_md)
            promoted = isinstance(message, policy_pb2.ApplyPolicyRequest) and not message.shadow
            also = (EventType.POLICY_SHADOWED,) if promoted else ()
            await trail.caused(trace_id, caused, *also)

    # An auditor's evidence pack with the subject's personal data (AuditService).
    assert gateway._checkpointer is not None
    await gateway._checkpointer.checkpoint_now()
    async with grpc.aio.insecure_channel(target) as channel:
        evidence = audit_pb2.GetEvidenceRequest(decision_id=unmasked, with_personal_data=True)
        trace_id, header = _traceparent()
        admin_md = (("authorization", f"Bearer {admin_token}"), ("traceparent", header))
        await audit_pb2_grpc.AuditServiceStub(channel).GetEvidence(evidence, metadata=admin_md)
        await trail.caused(trace_id, EventType.EVIDENCE_PERSONAL_DATA)

    assert trail.seen == {t.value for t in EventType if t not in SYSTEM_ONLY}
    assert (await gateway.audit.verify()).result.ok


async def test_a_command_without_a_traceparent_stamps_a_trace_of_its_own(
    gateway: Gateway, settings: Settings
) -> None:
    """`keys create` with no TRACEPARENT still records a real (non-zero) trace id."""
    where = ["--data-dir", str(settings.data_dir), "--policies", str(settings.policies)]
    if settings.store:
        where += ["--store", settings.store]
    done = await asyncio.to_thread(cli, "keys", "create", "--role", "auditor", *where)
    assert done.returncode == 0, done.stderr
    events = await gateway.store.audit_events(limit=10_000)
    created = [e for e in events if e.type == EventType.KEY_CREATED and e.actor.startswith("cli:")]
    assert len(created) == 1
    assert len(created[0].trace_id) == 32 and int(created[0].trace_id, 16) != 0
    assert len(created[0].span_id) == 16 and int(created[0].span_id, 16) != 0


async def test_sla_sweeper_events_carry_no_trace_id_even_inside_a_span(gateway: Gateway) -> None:
    """Escalation and expiry by the sweeper carry no trace id, even swept inside a span."""
    trail = Trail(gateway)
    auth = ("authorization", f"Bearer {await create_api_key(gateway)}")
    request = gateway_pb2.DecideRequest(application="t-echo")
    request.input.update({"score": 0.5})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        answer = await gateway_pb2_grpc.DecisionGatewayStub(channel).Decide(
            request, metadata=(auth,)
        )
    await trail.skip()
    sweeper = gateway._sweeper
    assert sweeper is not None
    stored = await gateway.store.get_decision(answer.id)
    assert stored is not None
    created = stored.created_at
    with span("unrelated"):
        sweeper._clock = lambda: created + timedelta(hours=2)  # past the limited tier's SLA
        assert [d.tier for d in await sweeper.sweep()] == ["high"]
        sweeper._clock = lambda: created + timedelta(hours=7)  # past the high tier's SLA
        assert [d.id for d in await sweeper.sweep()] == [answer.id]
    await trail.caused("", EventType.DECISION_ESCALATED, EventType.DECISION_EXPIRED)
    assert trail.seen == {EventType.DECISION_ESCALATED.value, EventType.DECISION_EXPIRED.value}


async def _outbox_settled(gateway: Gateway, message_id: str) -> None:
    """Wait until the delivery task is done with a message (no endpoint: recorded as done)."""
    for _ in range(200):
        message = await gateway.store.outbox_message(message_id)
        if message is not None and message.delivered_at is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox message {message_id} was not settled")


async def _escalate(gateway: Gateway, key: ModelKey) -> None:
    """Record a breach with an escalation of ``key`` as the early warning does."""
    figures = {"backend": key.backend, "name": key.name, "version": key.version}
    breach = audit_event(EventType.MODEL_BREACH, "", "system", figures)
    escalated = audit_event(EventType.MODEL_ESCALATED, "", "system", figures)
    assert await gateway.store.record_breach(key, "override_rate", breach, ("x", escalated)) == (
        True,
        True,
    )


async def test_early_warning_events_carry_no_trace_id_even_inside_a_span(
    gateway: Gateway,
) -> None:
    """A breach and its escalation are the gateway's own: no trace id, even made in a span."""
    trail = Trail(gateway)
    await trail.skip()
    with span("unrelated"):
        await _escalate(gateway, ModelKey("echo", "echo", "1"))
    await trail.caused("", EventType.MODEL_BREACH, EventType.MODEL_ESCALATED)
    # The sweeper's and the start's own are checked in their tests (above and below).
    others = {EventType.DECISION_ESCALATED, EventType.DECISION_EXPIRED}
    assert trail.seen | others == {t.value for t in SYSTEM_ONLY}


async def test_the_start_policy_loaded_event_is_the_systems_and_untraced(
    gateway: Gateway,
) -> None:
    """The start's policy.loaded is the system's, untraced; a change applied by the system
    outside any request (SIGHUP) is too."""
    events = await gateway.store.audit_events(limit=10_000)
    at_start = [e for e in events if e.type == EventType.POLICY_LOADED]
    assert [(e.actor, e.trace_id, e.span_id) for e in at_start] == [("system", "", "")]
    assert at_start[0].payload is not None
    assert at_start[0].payload["digest"] == gateway.policies.version
    trail = Trail(gateway)
    await trail.skip()
    files = (("other.yaml", "applications: []\n"),)
    version, loaded = policy_loaded(
        digest_of(files), files, "/elsewhere", "system", datetime.now(UTC)
    )
    assert await gateway.store.record_policy_version(version, loaded)
    await trail.caused("", EventType.POLICY_LOADED)
