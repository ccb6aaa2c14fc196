"""Load a directory of policy files into a PolicySet, or refuse with the first error located.

Every ``*.yaml`` / ``*.yml`` file directly in the directory is read (the ``tests/`` subdirectory
holds policy test cases, not policies). Each file may carry any of ``tiers``, ``backends`` and
``applications``; the sections are merged in file-name order. Tiers must all be in one file, because
their order is the risk ranking.

Errors are ``PolicyError(location="file.yaml:LINE", field="applications[0].route[1].when", ...)``
where the index is the item's position in that file. Of several problems the one earliest in the
files (by name, then line) is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from pydantic import BaseModel, ValidationError

from gateway.errors import PolicyError
from gateway.policy.cel import CelCompileError, compile_condition
from gateway.policy.chat_schema import ChatModel
from gateway.policy.input_schema import InputSchema, InputSchemaError
from gateway.policy.model import (
    ApplicationPolicy,
    BackendSpec,
    ChatMapping,
    EscalationRule,
    MonitorRule,
    OipMapping,
    PolicySet,
    RouteResult,
    RouteRule,
    TensorSpec,
    TierSpec,
    WebhookSpec,
)
from gateway.policy.schema import (
    ApplicationModel,
    BackendModel,
    MonitorModel,
    OipModel,
    Policies,
    PolicyFile,
    TensorModel,
    TierModel,
    error_loc,
)
from gateway.policy.source import Loc, SourceDoc, parse_yaml
from gateway.policy.versions import digest_of
from gateway.policy.webhook_schema import WebhookModel, webhook_spec
from gateway.types import Action

__all__ = ["load_policies", "policy_files", "validation_error"]

_SECTIONS = ("tiers", "backends", "applications")


def policy_files(directory: Path) -> list[Path]:
    """The policy files of ``directory``, in load order."""
    if not directory.is_dir():
        raise PolicyError(str(directory), "", "policy directory does not exist")
    return sorted(
        (p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")),
        key=lambda p: p.name,
    )


def load_policies(directory: Path) -> PolicySet:
    """Read, validate and compile every policy file in ``directory``; raises PolicyError."""
    files = policy_files(directory)
    if not files:
        raise PolicyError(str(directory), "", "no policy files (*.yaml) found")
    texts: list[tuple[str, str]] = []  # what the version is computed from, kept for the store
    docs: list[tuple[SourceDoc, PolicyFile]] = []
    for path in files:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PolicyError(path.name, "", f"cannot read: {exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(path.name, "", f"not UTF-8: {exc}") from None
        texts.append((path.name, text))
        doc = parse_yaml(text, path.name)
        docs.append((doc, _validate_file(doc)))
    merged = _Merged(docs, directory)
    built = merged.build()
    for name, raw in merged.schema_files:  # a schema file is part of the policy's version too
        texts.append((name, raw.decode("utf-8", "surrogateescape")))
    return PolicySet(version=digest_of(texts), files=tuple(texts), **built)


def _validate_file(doc: SourceDoc) -> PolicyFile:
    if not isinstance(doc.data, dict):
        raise doc.error((), "expected a mapping with tiers, backends and/or applications")
    try:
        return PolicyFile.model_validate(doc.data)
    except ValidationError as exc:
        raise validation_error(doc, exc.errors(), lambda loc: (doc, loc)) from None


def validation_error(
    doc: SourceDoc,
    errors: Iterable[Any],
    place: Any,
) -> PolicyError:
    """The located PolicyError for the earliest of pydantic's ``errors``.

    ``place(loc)`` maps an error path to the (document, path in that document) it refers to.
    """
    located: list[tuple[int, bool, int, SourceDoc, Loc, str]] = []
    for order, error in enumerate(errors):
        where, loc = place(error_loc(error))
        line = where.line(loc)
        if error["type"] == "missing":  # sorts as if at the end of the mapping that lacks it
            parent = loc[:-1]
            line = max(
                (n for key, n in where.lines.items() if key[: len(parent)] == parent), default=line
            )
        located.append((line, error["type"] == "missing", order, where, loc, _message(error)))
    if not located:  # pragma: no cover - pydantic never raises without errors
        return doc.error((), "invalid policy")
    _, _, _, where, loc, message = min(located, key=lambda item: item[:3])
    return where.error(loc, message)


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        return f"unknown key {loc[-1]!r}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "policy":
        return message
    value = error.get("input")
    if isinstance(value, str | int | float | bool) or value is None:
        message += f", got {value!r}"
    return message


class _Merged:
    """All files' sections merged, remembering which file and index each item came from."""

    def __init__(self, docs: Sequence[tuple[SourceDoc, PolicyFile]], directory: Path) -> None:
        self.directory = directory
        self.schema_files: list[tuple[str, bytes]] = []
        self.items: dict[str, list[Any]] = {s: [] for s in _SECTIONS}
        self.origin: dict[str, list[tuple[SourceDoc, int]]] = {s: [] for s in _SECTIONS}
        tiers_file: SourceDoc | None = None
        for doc, parsed in docs:
            for section in _SECTIONS:
                values: list[BaseModel] = getattr(parsed, section)
                if section == "tiers" and values:
                    if tiers_file is not None:
                        raise doc.error(
                            ("tiers",),
                            f"tiers are already defined in {tiers_file.name}; keep all tiers in "
                            "one file, their order is the risk ranking",
                        )
                    tiers_file = doc
                self.items[section].extend(values)
                self.origin[section].extend((doc, i) for i in range(len(values)))
        self.first_doc = docs[0][0]

    def place(self, loc: Loc) -> tuple[SourceDoc, Loc]:
        """Map a path in the merged policies to the file and path it came from."""
        if len(loc) >= 2 and loc[0] in self.origin and isinstance(loc[1], int):
            origins = self.origin[str(loc[0])]
            if loc[1] < len(origins):
                doc, index = origins[loc[1]]
                return doc, (loc[0], index, *loc[2:])
        if len(loc) >= 1 and loc[0] in self.origin and self.origin[str(loc[0])]:
            return self.origin[str(loc[0])][-1][0], loc[:1]
        return self.first_doc, loc[:1]

    def error(self, loc: Loc, message: str) -> PolicyError:
        doc, local = self.place(loc)
        return doc.error(local, message)

    def build(self) -> dict[str, Any]:
        try:
            policies = Policies(
                tiers=self.items["tiers"],
                backends=self.items["backends"],
                applications=self.items["applications"],
            )
        except ValidationError as exc:
            raise validation_error(self.first_doc, exc.errors(), self.place) from None
        tiers = tuple(_tier(rank, t) for rank, t in enumerate(policies.tiers))
        by_name = {t.name: t for t in tiers}
        backends = {
            b.name: _backend(b, self._tls_ca(i, b.tls_ca)) for i, b in enumerate(policies.backends)
        }
        applications = {
            app.id: self._application(i, app, by_name, backends)
            for i, app in enumerate(policies.applications)
        }
        return {"tiers": tiers, "backends": backends, "applications": applications}

    def _application(
        self,
        index: int,
        app: ApplicationModel,
        tiers: dict[str, TierSpec],
        backends: dict[str, BackendSpec],
    ) -> ApplicationPolicy:
        escalations: list[EscalationRule] = []
        for j, esc in enumerate(app.escalate):
            rule = f"escalate[{j}]"
            condition = self._compile(("applications", index, "escalate", j), rule, esc.when, False)
            reason = esc.reason or f"{esc.when} (escalated to {esc.tier})"
            escalations.append(EscalationRule(condition, tiers[esc.tier], reason))
        routes: list[RouteRule] = []
        if app.chat is not None and app.chat.approve_tools:
            routes.append(self._tool_approval(index, app.chat.approve_tools))
        for j, route in enumerate(app.route):
            rule = f"route[{j}]"
            condition = self._compile(("applications", index, "route", j), rule, route.when, True)
            result = RouteResult(route.action, route.reason or route.when, rule)
            routes.append(RouteRule(condition, result))
        return ApplicationPolicy(
            id=app.id,
            base_tier=tiers[app.tier],
            backend=backends[app.backend],
            sensitive_fields=tuple(app.sensitive_fields),
            sample_for_review=app.sample_for_review,
            on_model_error=Action(app.on_model_error),
            on_pause=Action(app.on_pause),
            escalations=tuple(escalations),
            routes=tuple(routes),
            description=app.description,
            oip=_oip(app.oip) if app.oip is not None else None,
            input_schema=self._input_schema(index, app.input_schema),
            monitor=_monitor(app.monitor),
            chat=_chat(app.chat) if app.chat is not None else None,
            webhook=self._webhook(index, app.webhook),
        )

    def _webhook(self, index: int, spec: WebhookModel | None) -> WebhookSpec | None:
        """The endpoint with its secret read from the environment (`webhook_spec`)."""
        if spec is None:
            return None
        try:
            return webhook_spec(spec)
        except ValueError as exc:
            raise self.error(("applications", index, "webhook", "secret_env"), str(exc)) from None

    def _tool_approval(self, index: int, tools: list[str]) -> RouteRule:
        """``approve_tools`` as the first route rule: an answer calling one of them is held
        for review before any rule of the application's own can approve it."""
        names = ", ".join(f"'{t}'" for t in tools)
        source = (
            f"has(output.tool_calls) && output.tool_calls.exists(t, t.function.name in [{names}])"
        )
        at: Loc = ("applications", index, "chat", "approve_tools")
        rule = "route:approve_tools"
        condition = self._compile(at, rule, source, True)
        reason = f"calls a tool that needs approval ({', '.join(tools)})"
        return RouteRule(condition, RouteResult(Action.REVIEW, reason, rule))

    def _input_schema(self, index: int, spec: dict[str, Any] | str | None) -> InputSchema | None:
        """Compile an application's input schema; errors name the file, line and field."""
        if spec is None:
            return None
        at: Loc = ("applications", index, "input_schema")
        if isinstance(spec, str):
            path = self.directory / spec
            try:
                raw = path.read_bytes()
                schema = yaml.safe_load(raw)
            except (OSError, yaml.YAMLError) as exc:
                raise self.error(at, f"cannot read schema file {spec!r}: {exc}") from None
            if not isinstance(schema, dict):
                raise self.error(at, f"schema file {spec!r} does not hold a mapping")
            self.schema_files.append((spec, raw))
        else:
            schema = spec
        try:
            return InputSchema(schema)
        except InputSchemaError as exc:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
            inside = f" (in {spec}{where})" if isinstance(spec, str) else ""
            loc = at if isinstance(spec, str) else (*at, *exc.path)
            raise self.error(loc, f"invalid JSON Schema{inside}: {exc}") from None

    def _tls_ca(self, index: int, spec: str | None) -> str | None:
        """The CA file's path (a relative one is in the policy directory), checked to hold PEM.

        Checked here so that ``policy check`` finds a missing CA file, not the first model call.
        """
        if spec is None:
            return None
        path = self.directory / spec
        at: Loc = ("backends", index, "tls_ca")
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise self.error(at, f"cannot read CA file {spec!r}: {exc.strerror or exc}") from None
        try:
            x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise self.error(at, f"CA file {spec!r} holds no PEM certificate") from None
        return str(path)

    def _compile(self, at: Loc, rule: str, source: str, with_output: bool) -> Any:
        try:
            return compile_condition(rule, source, with_output=with_output)
        except CelCompileError as exc:
            raise self.error((*at, "when"), f"invalid condition {source!r}: {exc}") from None


def _tier(rank: int, model: TierModel) -> TierSpec:
    review = model.review
    return TierSpec(
        name=model.name,
        rank=rank,
        reject=model.action == "reject",
        approvals=review.approvals if review else 1,
        reject_approvals=(review.reject_approvals or review.approvals) if review else 1,
        blind=review.blind if review else False,
        groups=tuple(review.groups) if review else ("reviewers",),
        sla=review.sla if review else None,
        on_timeout=review.on_timeout if review else None,
        require_approved_model=model.require_approved_model,
        require_explanation=model.require_explanation,
        require_requester=model.require_requester,
    )


def _monitor(model: MonitorModel | None) -> tuple[MonitorRule, ...]:
    """The thresholds of a ``monitor:`` section, in the order it declares them."""
    if model is None:
        return ()
    return tuple(
        MonitorRule(name, r.above, r.min_reviews, r.window.total_seconds(), r.action)
        for name in type(model).model_fields
        if (r := getattr(model, name)) is not None
    )


def _backend(model: BackendModel, tls_ca: str | None) -> BackendSpec:
    return BackendSpec(
        name=model.name,
        kind=model.kind,
        model=model.model,
        version=model.version,
        timeout=model.timeout.total_seconds(),
        target=model.target,
        third_party=model.third_party,
        send_fields=tuple(model.send_fields or ()),
        tls=model.tls,
        tls_ca=tls_ca,
        circuit_failures=model.circuit.failures,
        circuit_cooldown=model.circuit.cooldown.total_seconds(),
        monitor=_monitor(model.monitor),
        api_key_env=model.api_key_env,
    )


def _tensor(model: TensorModel) -> TensorSpec:
    return TensorSpec(
        name=model.name,
        datatype=model.datatype,
        shape=tuple(model.shape),
        field=model.field,
        fields=tuple(model.fields) if model.fields is not None else None,
    )


def _chat(model: ChatModel) -> ChatMapping:
    return ChatMapping(
        model_name=model.model_name,
        approve_tools=tuple(model.approve_tools),
        max_wait=model.max_wait.total_seconds() if model.max_wait is not None else None,
    )


def _oip(model: OipModel) -> OipMapping:
    return OipMapping(
        model_name=model.model_name,
        inputs=tuple(_tensor(t) for t in model.inputs),
        outputs=tuple(_tensor(t) for t in model.outputs),
    )
