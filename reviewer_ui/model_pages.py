"""The model inventory pages: every model version, one version with its record and history,
and the forms that move it through its lifecycle.

Model-risk accounts change the inventory; admins and auditors read it; every other role is
refused (403). Who may do what is decided in `gateway.modelrisk.inventory`; the routes only
read the form, await one `ModelInventory` call and render. An approval made here names the
signed-in person as the approver, so the owner's own approval is refused by the core's
four-eyes rule, not by anything the form says.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import InvalidInput
from gateway.modelrisk.early_warning import EarlyWarning
from gateway.modelrisk.fields import check_key
from gateway.modelrisk.inventory import (
    KEEPER_ROLES,
    VERBS,
    ModelInventory,
    require_inventory_keeper,
    require_inventory_reader,
)
from gateway.modelrisk.record import ModelKey, ModelRecord, ModelStatus
from gateway.policy import PolicySet
from gateway.types import Account
from reviewer_ui.model_charts import monitoring_panel
from reviewer_ui.protocol import Pages
from reviewer_ui.sessions import Session

_MOVES = {
    ModelStatus.REGISTERED: ("validate", "retire"),
    ModelStatus.VALIDATED: ("approve", "retire"),
    ModelStatus.APPROVED: ("suspend", "retire"),
    ModelStatus.SUSPENDED: ("resume", "retire"),
    ModelStatus.RETIRED: (),
}
"""The forms a model page offers in each status: one per move of `TRANSITIONS`."""


def model_path(key: ModelKey) -> str:
    """The page of ``key``, under the UI's prefix."""
    parts = (quote(p, safe="") for p in (key.backend, key.name, key.version))
    return "/models/" + "/".join(parts)


def model_routes(
    pages: Pages,
    inventory: ModelInventory,
    policies: Callable[[], PolicySet],
    *,
    monitoring: EarlyWarning | None = None,
) -> list[Route]:
    """The inventory routes, to register inside the UI app (under its prefix); with
    ``monitoring``, each model page shows its monitoring charts (`reviewer_ui.model_charts`)."""
    routes = _ModelRoutes(pages, inventory, policies)
    routes.monitoring = monitoring
    one = "/models/{backend}/{name}/{version}"
    return [
        Route("/models", routes.index, methods=["GET"]),
        Route("/models", routes.register, methods=["POST"]),
        Route(one, routes.show, methods=["GET"]),
        Route(one + "/transition", routes.transition, methods=["POST"]),
    ]


def _key(request: Request) -> ModelKey:
    p = request.path_params
    return check_key(ModelKey(str(p["backend"]), str(p["name"]), str(p["version"])))


def _expiry(text: str) -> datetime | None:
    """A date from the form (``YYYY-MM-DD``) as its first instant in UTC; None when empty."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("validation_expires_at", "a date, YYYY-MM-DD") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class _ModelRoutes:
    monitoring: EarlyWarning | None = None

    def __init__(
        self, pages: Pages, inventory: ModelInventory, policies: Callable[[], PolicySet]
    ) -> None:
        self.pages = pages
        self.inventory = inventory
        self.policies = policies

    async def index(self, request: Request) -> Response:
        async def page(r: Request, s: Session, a: Account) -> Response:
            require_inventory_reader(a)
            models = await self.inventory.models()
            return self.pages.render(
                r,
                s,
                "models.html",
                account=a,
                models=models,
                can_change=a.role in KEEPER_ROLES,
                tiers=[t.name for t in self.policies().tiers],
                path=model_path,
                now=datetime.now(UTC),
            )

        return await self.pages.guard(request, page)

    async def show(self, request: Request) -> Response:
        async def page(r: Request, s: Session, a: Account) -> Response:
            require_inventory_reader(a)
            key = _key(r)
            record: ModelRecord = await self.inventory.get(key)
            history = await self.inventory.history(key)
            return self.pages.render(
                r,
                s,
                "model.html",
                account=a,
                m=record,
                history=history,
                moves=_MOVES[record.status] if a.role in KEEPER_ROLES else (),
                monitoring=(
                    None
                    if self.monitoring is None
                    else await monitoring_panel(self.monitoring, key)
                ),
                path=model_path,
                now=datetime.now(UTC),
            )

        return await self.pages.guard(request, page)

    async def register(self, request: Request) -> Response:
        async def add(r: Request, s: Session, a: Account) -> Response:
            require_inventory_keeper(a)
            form = await r.form()
            key = ModelKey(
                str(form.get("backend", "")).strip(),
                str(form.get("name", "")).strip(),
                str(form.get("version", "")).strip(),
            )
            record = await self.inventory.register(
                key,
                owner=str(form.get("owner", "")),
                intended_use=str(form.get("intended_use", "")),
                max_tier=str(form.get("max_tier", "")),
                documentation_url=str(form.get("documentation_url", "")),
                limitations=str(form.get("limitations", "")),
                justification=str(form.get("justification", "")),
                actor=f"user:{a.name}",
            )
            s.flash.append(("ok", f"{record.key} registered."))
            return self.pages.redirect(r, s, model_path(record.key))

        return await self.pages.guard(request, add, post=True)

    async def transition(self, request: Request) -> Response:
        async def move(r: Request, s: Session, a: Account) -> Response:
            require_inventory_keeper(a)
            key = _key(r)
            form = await r.form()
            verb = str(form.get("action", ""))
            if verb not in VERBS:
                raise InvalidInput("action", f"expected one of {', '.join(VERBS)}")
            record = await self.inventory.transition(
                key,
                verb,
                actor=f"user:{a.name}",
                justification=str(form.get("justification", "")),
                validator=str(form.get("validator", "")),
                expires_at=_expiry(str(form.get("validation_expires_at", ""))),
                approver=a.name,
            )
            s.flash.append(("ok", f"{record.key} is {record.status.value} now."))
            return self.pages.redirect(r, s, model_path(key))

        return await self.pages.guard(request, move, post=True)
