"""The policy file format as pydantic models.

``PolicyFile`` is the shape of one YAML file (any of ``tiers``, ``backends``, ``applications``);
``Policies`` is all files merged, and its validator checks the references between sections. Unknown
keys are errors everywhere. Cross-reference failures carry the path of the offending value in the
error context (``ctx["loc"]``) so the loader can name the file and line.

CEL conditions are plain strings here; the loader compiles them (see ``gateway.policy.cel``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from gateway.policy.chat_schema import ChatModel, check_chat_send_fields, check_target_url
from gateway.policy.fields import (
    Duration,
    FieldPath,
    Loc,
    Name,
    StrictModel,
    Text,
    error_loc,
    parse_duration,
)
from gateway.policy.fields import policy_error as _error
from gateway.policy.monitor_schema import MonitorModel, MonitorRuleModel
from gateway.policy.oip_schema import OipModel, TensorModel
from gateway.policy.webhook_schema import WebhookModel
from gateway.types import Action

__all__ = [
    "ApplicationModel",
    "BackendModel",
    "CircuitModel",
    "EscalateModel",
    "Loc",
    "MonitorModel",
    "MonitorRuleModel",
    "OipModel",
    "Policies",
    "PolicyFile",
    "ReviewModel",
    "RouteModel",
    "TensorModel",
    "TierModel",
    "error_loc",
    "parse_duration",
]


class ReviewModel(StrictModel):
    """How held decisions of a tier are reviewed."""

    approvals: int = Field(default=1, ge=1, le=10)
    """Distinct people who must agree on any final outcome (approve, override, reject)."""
    reject_approvals: int | None = Field(default=None, ge=1, le=10)
    """People who must agree on a rejection; None: as many as ``approvals``."""
    blind: bool = False
    """A later reviewer sees earlier verdicts only after giving theirs."""
    groups: list[Name] = Field(default_factory=lambda: ["reviewers"], min_length=1)
    sla: Duration | None = None
    on_timeout: Literal["approve", "reject", "escalate"] | None = None
    allow_approve_on_timeout: bool = False
    """``on_timeout: approve`` is refused unless stated: nobody looked, yet it is approved."""

    @model_validator(mode="after")
    def _sla_and_timeout_together(self) -> ReviewModel:
        if self.sla is not None and self.on_timeout is None:
            raise _error("an sla needs on_timeout (approve, reject or escalate)", ("on_timeout",))
        if self.sla is None and self.on_timeout is not None:
            raise _error("on_timeout needs an sla", ("sla",))
        if self.reject_approvals is not None and self.reject_approvals > self.approvals:
            raise _error(
                f"reject_approvals ({self.reject_approvals}) cannot exceed approvals "
                f"({self.approvals})",
                ("reject_approvals",),
            )
        if self.on_timeout == "approve" and self.approvals > 1:
            raise _error(
                f"on_timeout: approve would let an SLA breach replace the {self.approvals} "
                "people this tier needs; use reject or escalate",
                ("on_timeout",),
            )
        if self.on_timeout == "approve" and not self.allow_approve_on_timeout:
            raise _error(
                "on_timeout: approve approves decisions nobody looked at; state "
                "allow_approve_on_timeout: true if that is intended",
                ("on_timeout",),
            )
        return self


INVENTORY_HINT = (
    "moved to the model inventory: register the model version and have it validated and "
    "approved there (hitl-gateway models register ...); the policy names the version only"
)
"""What a policy that still states a model's validation status is told."""


class TierModel(StrictModel):
    name: Name
    action: Literal["reject"] | None = None
    require_approved_model: bool = True
    """Every automatic decision needs an approved, valid model version in the inventory now;
    the key stays accepted (``true``) so that files which state it keep loading, and ``false``
    is refused, since it can no longer mean anything."""
    require_explanation: bool = False
    """A model output without an explanation is held for review, never decided automatically."""
    require_requester: bool = False
    """A Decide must name ``requested_by`` (maker-checker needs to know the maker)."""
    review: ReviewModel | None = None
    description: str = ""

    @model_validator(mode="after")
    def _reject_has_no_review(self) -> TierModel:
        if not self.require_approved_model:
            raise _error(
                "every automatic decision needs an approved model version in the model "
                "inventory; require_approved_model: false cannot lift that (remove the key)",
                ("require_approved_model",),
            )
        if self.action == "reject" and self.review is not None:
            raise _error("a reject tier never holds decisions, so it takes no review", ("review",))
        return self


class CircuitModel(StrictModel):
    """When a remote backend's circuit opens, and how long it stays open before a probe."""

    failures: int = Field(default=5, ge=1, le=1000)
    cooldown: Duration = timedelta(seconds=10)


class BackendModel(StrictModel):
    name: Name
    kind: Literal["builtin", "oip", "openai"]
    model: Text
    version: Text
    """The model version this backend must serve (the inventory entry; an OIP server must
    report it)."""
    timeout: Duration = timedelta(seconds=2)
    target: Text | None = None
    third_party: bool = False
    send_fields: list[FieldPath] | None = None
    tls: bool = False
    tls_ca: Text | None = None
    """PEM file of the CA that signed the backend's certificate, relative to the policy directory.

    Unset, gRPC's default roots are used: the public CAs bundled with grpcio, not the operating
    system's trust store, so a private CA must be named here.
    """
    circuit: CircuitModel = CircuitModel()
    description: str = ""
    monitor: MonitorModel | None = None
    api_key_env: Name | None = None
    """``openai`` backends: the environment variable holding the server's API key (sent as a
    bearer token); the key itself never appears in a policy file."""

    @model_validator(mode="before")
    @classmethod
    def _no_validation(cls, data: Any) -> Any:
        if isinstance(data, dict) and "validation" in data:
            raise _error(INVENTORY_HINT, ("validation",))
        return data

    @model_validator(mode="after")
    def _kind_fields(self) -> BackendModel:
        if self.tls_ca is not None and not self.tls:
            raise _error("tls_ca needs tls: true", ("tls_ca",))
        if self.kind == "oip" and self.target is None:
            raise _error("an oip backend needs a target (host:port)", ("target",))
        if self.kind == "openai":
            check_target_url(self.target, self.tls)
            check_chat_send_fields(self.send_fields or [])
        elif self.api_key_env is not None:
            raise _error("only an openai backend takes api_key_env", ("api_key_env",))
        if self.kind == "builtin" and self.target is not None:
            raise _error("a builtin backend runs in-process and takes no target", ("target",))
        if self.kind == "builtin" and self.third_party:
            raise _error("a builtin backend cannot be third_party", ("third_party",))
        if self.third_party and not self.send_fields:
            raise _error(
                "a third_party backend must list send_fields (only those input fields leave "
                "the bank)",
                ("send_fields",),
            )
        return self


class EscalateModel(StrictModel):
    when: Text
    tier: Name
    reason: str = ""


class RouteModel(StrictModel):
    when: Text
    action: Action
    reason: str = ""


class ApplicationModel(StrictModel):
    id: Name
    tier: Name
    backend: Name
    description: str = ""
    sensitive_fields: list[FieldPath] = Field(default_factory=list)
    escalate: list[EscalateModel] = Field(default_factory=list)
    route: list[RouteModel] = Field(default_factory=list)
    sample_for_review: float = Field(default=0.0, ge=0.0, le=1.0)
    on_model_error: Literal["review", "reject"] = "review"
    on_pause: Literal["review", "reject"] = "review"
    """While paused by the kill switch: hold every new decision for review, or refuse it."""
    monitor: MonitorModel | None = None
    """Early warning thresholds on the application's model version."""
    oip: OipModel | None = None
    chat: ChatModel | None = None
    """How OpenAI-compatible clients reach the application (``/v1/chat/completions``)."""
    input_schema: dict[str, Any] | str | None = None
    """A JSON Schema for the input, inline or the path of a JSON/YAML file (relative to the
    policy directory)."""
    webhook: WebhookModel | None = None
    """Where final and escalated decisions are announced, signed (`gateway.notify.webhook`)."""


class PolicyFile(StrictModel):
    """One policy file: any subset of the three sections."""

    tiers: list[TierModel] = Field(default_factory=list)
    backends: list[BackendModel] = Field(default_factory=list)
    applications: list[ApplicationModel] = Field(default_factory=list)


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            key = "id" if section == "applications" else "name"
            raise _error(f"{name!r} is defined more than once", (section, index, key))
        seen.add(name)


class Policies(PolicyFile):
    """All policy files merged; checks every reference between tiers, backends and applications."""

    @model_validator(mode="after")
    def _references(self) -> Policies:
        _unique("tiers", [t.name for t in self.tiers])
        _unique("backends", [b.name for b in self.backends])
        _unique("applications", [a.id for a in self.applications])
        if not self.tiers:
            raise _error("no tiers defined", ("tiers",))
        if not self.applications:
            raise _error("no applications defined", ("applications",))
        rank = {t.name: i for i, t in enumerate(self.tiers)}
        for i, tier in enumerate(self.tiers):
            escalates = tier.review is not None and tier.review.on_timeout == "escalate"
            if escalates and not any(t.action is None for t in self.tiers[:i]):
                raise _error(
                    f"tier {tier.name!r} escalates on timeout but no higher-risk tier holds "
                    "decisions for review",
                    ("tiers", i, "review", "on_timeout"),
                )
        backends = {b.name: b for b in self.backends}
        for i, app in enumerate(self.applications):
            _check_application(i, app, rank, backends)
            _check_oip(i, app, backends[app.backend])
            _check_chat(i, app, backends[app.backend])
        model_names = [a.oip.model_name for a in self.applications if a.oip is not None]
        chat_names = [a.chat.model_name for a in self.applications if a.chat is not None]
        for i, app in enumerate(self.applications):
            if app.chat is not None and chat_names.count(app.chat.model_name) > 1:
                raise _error(
                    f"chat model_name {app.chat.model_name!r} is used by more than one application",
                    ("applications", i, "chat", "model_name"),
                )
        for i, app in enumerate(self.applications):
            if app.oip is not None and model_names.count(app.oip.model_name) > 1:
                raise _error(
                    f"oip model_name {app.oip.model_name!r} is used by more than one application",
                    ("applications", i, "oip", "model_name"),
                )
        return self


def _check_application(
    index: int,
    app: ApplicationModel,
    rank: dict[str, int],
    backends: dict[str, BackendModel],
) -> None:
    at: Loc = ("applications", index)
    if app.tier not in rank:
        raise _error(f"unknown tier {app.tier!r} (tiers: {', '.join(rank)})", (*at, "tier"))
    backend = backends.get(app.backend)
    if backend is None:
        known = ", ".join(backends) or "none defined"
        raise _error(f"unknown backend {app.backend!r} (backends: {known})", (*at, "backend"))
    for j, rule in enumerate(app.escalate):
        where: Loc = (*at, "escalate", j, "tier")
        if rule.tier not in rank:
            raise _error(f"unknown tier {rule.tier!r} (tiers: {', '.join(rank)})", where)
        if rank[rule.tier] >= rank[app.tier]:
            raise _error(
                f"tier {rule.tier!r} is not higher risk than the application's tier "
                f"{app.tier!r}; escalation can only raise the tier",
                where,
            )
    if backend.third_party and backend.send_fields:
        for j, sensitive in enumerate(app.sensitive_fields):
            if any(_overlaps(sensitive, sent) for sent in backend.send_fields):
                raise _error(
                    f"sensitive field {sensitive!r} would be sent to third-party backend "
                    f"{backend.name!r}",
                    (*at, "sensitive_fields", j),
                )


def _check_oip(index: int, app: ApplicationModel, backend: BackendModel) -> None:
    at: Loc = ("applications", index)
    if app.oip is None:
        if backend.kind == "oip":
            raise _error(
                f"backend {backend.name!r} speaks the Open Inference Protocol: the application "
                "needs an oip section mapping its fields to tensors",
                (*at, "backend"),
            )
        return
    if not backend.send_fields or backend.kind != "oip":
        return
    sent_any = False
    for j, tensor in enumerate(app.oip.inputs):
        paths: list[str | None] = list(tensor.fields) if tensor.fields else [tensor.field]
        inside = [_sent(path, backend.send_fields) for path in paths]
        if any(inside) and not all(inside):
            raise _error(
                f"tensor {tensor.name!r} mixes fields inside and outside send_fields of backend "
                f"{backend.name!r}; it could be built neither with nor without them",
                (*at, "oip", "inputs", j),
            )
        sent_any = sent_any or all(inside)
    if not sent_any:
        raise _error(
            f"no input tensor is made of send_fields of backend {backend.name!r}, so the model "
            "would receive nothing",
            (*at, "oip", "inputs"),
        )


def _check_chat(index: int, app: ApplicationModel, backend: BackendModel) -> None:
    at: Loc = ("applications", index)
    if backend.kind == "openai" and app.chat is None:
        raise _error(
            f"backend {backend.name!r} speaks the OpenAI chat API: the application needs a chat "
            "section naming the model its callers ask for",
            (*at, "backend"),
        )
    if app.chat is not None and app.oip is not None:
        raise _error("an application is either a chat model or a tensor model", (*at, "chat"))


def _sent(path: str | None, send_fields: list[str]) -> bool:
    """Whether the field at ``path`` lies inside one of ``send_fields``."""
    return path is not None and any(path == s or path.startswith(s + ".") for s in send_fields)


def _overlaps(a: str, b: str) -> bool:
    """True when one dotted path is the other or lies inside it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
