"""The policy file format as pydantic models.

``PolicyFile`` is the shape of one YAML file (any of ``tiers``, ``backends``, ``applications``);
``Policies`` is all files merged, and its validator checks the references between sections. Unknown
keys are errors everywhere. Cross-reference failures carry the path of the offending value in the
error context (``ctx["loc"]``) so the loader can name the file and line.

CEL conditions are plain strings here; the loader compiles them (see ``gateway.policy.cel``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.types import Action, Validation

__all__ = [
    "ApplicationModel",
    "BackendModel",
    "CircuitModel",
    "EscalateModel",
    "Loc",
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

Loc = tuple[str | int, ...]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _error(message: str, loc: Loc = ()) -> PydanticCustomError:
    """A validation error with a plain message; ``loc`` points below the validated model."""
    return PydanticCustomError("policy", "{detail}", {"detail": message, "loc": loc})


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``4h``, ``2d`` (also ``500ms``, ``1.5h``) to a positive timedelta."""
    match = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _error(f"invalid duration {value!r}: use a number and a unit, e.g. 30s, 5m, 4h, 2d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise _error(f"duration {value!r} must be positive")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FieldPath = Annotated[str, StringConstraints(pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReviewModel(_Model):
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


class TierModel(_Model):
    name: Name
    action: Literal["reject"] | None = None
    require_approved_model: bool = False
    require_requester: bool = False
    """A Decide must name ``requested_by`` (maker-checker needs to know the maker)."""
    review: ReviewModel | None = None
    description: str = ""

    @model_validator(mode="after")
    def _reject_has_no_review(self) -> TierModel:
        if self.action == "reject" and self.review is not None:
            raise _error("a reject tier never holds decisions, so it takes no review", ("review",))
        return self


class CircuitModel(_Model):
    """When a remote backend's circuit opens, and how long it stays open before a probe."""

    failures: int = Field(default=5, ge=1, le=1000)
    cooldown: Duration = timedelta(seconds=10)


class BackendModel(_Model):
    name: Name
    kind: Literal["builtin", "oip"]
    model: Text
    version: str
    validation: Validation
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

    @model_validator(mode="after")
    def _kind_fields(self) -> BackendModel:
        if self.tls_ca is not None and not self.tls:
            raise _error("tls_ca needs tls: true", ("tls_ca",))
        if self.kind == "oip" and self.target is None:
            raise _error("an oip backend needs a target (host:port)", ("target",))
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


class EscalateModel(_Model):
    when: Text
    tier: Name
    reason: str = ""


class RouteModel(_Model):
    when: Text
    action: Action
    reason: str = ""


DataType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP32",
    "FP64",
    "BYTES",
]
"""Open Inference Protocol tensor datatypes the gateway maps (FP16 has no JSON counterpart)."""


class TensorModel(_Model):
    """One named tensor and the field (or fields, in order) of the JSON object it carries."""

    name: Name
    datatype: DataType
    shape: list[Annotated[int, Field(ge=-1)]] = Field(default_factory=lambda: [-1], min_length=1)
    field: FieldPath | None = None
    fields: list[FieldPath] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> TensorModel:
        if (self.field is None) == (self.fields is None):
            raise _error("give exactly one of field or fields", ("field",))
        if 0 in self.shape:
            raise _error("a dimension is -1 (variable) or positive", ("shape",))
        if self.shape.count(-1) > 1:
            raise _error("at most one dimension may be -1 (variable)", ("shape",))
        size = 1
        for dim in self.shape:
            size *= abs(dim)
        if self.fields is not None and -1 not in self.shape and size != len(self.fields):
            raise _error(
                f"shape {self.shape} holds {size} elements but {len(self.fields)} fields are "
                "listed",
                ("shape",),
            )
        return self


class OipModel(_Model):
    """How an application speaks the Open Inference Protocol (to its backend and its callers)."""

    model_name: Name
    """The model name callers of the gateway's inference service use for this application."""
    inputs: list[TensorModel] = Field(min_length=1)
    outputs: list[TensorModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> OipModel:
        for section in ("inputs", "outputs"):
            tensors: list[TensorModel] = getattr(self, section)
            seen: set[str] = set()
            for i, tensor in enumerate(tensors):
                if tensor.name in seen:
                    raise _error(f"tensor {tensor.name!r} is listed twice", (section, i, "name"))
                seen.add(tensor.name)
        return self


class ApplicationModel(_Model):
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
    oip: OipModel | None = None
    input_schema: dict[str, Any] | str | None = None
    """A JSON Schema for the input, inline or the path of a JSON/YAML file (relative to the
    policy directory)."""


class PolicyFile(_Model):
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
        tiers = {t.name: t for t in self.tiers}
        backends = {b.name: b for b in self.backends}
        for i, app in enumerate(self.applications):
            _check_application(i, app, rank, tiers, backends)
            _check_oip(i, app, backends[app.backend])
        model_names = [a.oip.model_name for a in self.applications if a.oip is not None]
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
    tiers: dict[str, TierModel],
    backends: dict[str, BackendModel],
) -> None:
    at: Loc = ("applications", index)
    if app.tier not in rank:
        raise _error(f"unknown tier {app.tier!r} (tiers: {', '.join(rank)})", (*at, "tier"))
    backend = backends.get(app.backend)
    if backend is None:
        known = ", ".join(backends) or "none defined"
        raise _error(f"unknown backend {app.backend!r} (backends: {known})", (*at, "backend"))
    if backend.validation is Validation.RETIRED:
        raise _error(f"backend {backend.name!r} uses a retired model", (*at, "backend"))
    reachable: list[tuple[str, Loc]] = [(app.tier, (*at, "tier"))]
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
        reachable.append((rule.tier, where))
    for tier_name, where in reachable:
        tier = tiers[tier_name]
        if tier.require_approved_model and backend.validation is not Validation.APPROVED:
            raise _error(
                f"tier {tier_name!r} requires an approved model, but backend {backend.name!r} "
                f"({backend.model} v{backend.version}) is {backend.validation.value}",
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


def _sent(path: str | None, send_fields: list[str]) -> bool:
    """Whether the field at ``path`` lies inside one of ``send_fields``."""
    return path is not None and any(path == s or path.startswith(s + ".") for s in send_fields)


def _overlaps(a: str, b: str) -> bool:
    """True when one dotted path is the other or lies inside it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def error_loc(error: dict[str, Any]) -> Loc:
    """The path of a pydantic error, including the extra path a custom error carries."""
    ctx = error.get("ctx") or {}
    extra = ctx.get("loc", ())
    return (*error["loc"], *extra)
