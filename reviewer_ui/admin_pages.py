"""The kill switch page: pause and resume applications and models (admins only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.core.accounts import require_switch_manager
from gateway.core.switches import KillSwitches
from gateway.types import Account
from reviewer_ui.protocol import Pages
from reviewer_ui.sessions import Session


def admin_routes(pages: Pages, switches: KillSwitches) -> list[Route]:
    """The admin routes, to register inside the UI app (under its prefix)."""
    routes = _AdminRoutes(pages, switches)
    return [
        Route("/admin/switches", routes.show, methods=["GET"]),
        Route("/admin/switches", routes.change, methods=["POST"]),
    ]


class _AdminRoutes:
    def __init__(self, pages: Pages, switches: KillSwitches) -> None:
        self.pages = pages
        self.switches = switches

    async def show(self, request: Request) -> Response:
        async def page(r: Request, s: Session, a: Account) -> Response:
            require_switch_manager(a)
            states = self.switches.states()
            return self.pages.render(r, s, "switches.html", account=a, states=states)

        return await self.pages.guard(request, page)

    async def change(self, request: Request) -> Response:
        async def set_switch(r: Request, s: Session, a: Account) -> Response:
            require_switch_manager(a)
            form = await r.form()
            kind, name = str(form.get("kind", "")), str(form.get("name", ""))
            paused = form.get("action") == "pause"
            await self.switches.set(
                kind, name, paused, f"user:{a.name}", str(form.get("reason", ""))
            )
            s.flash.append(("ok", f"{kind} {name} {'paused' if paused else 'resumed'}."))
            return self.pages.redirect(r, s, "/admin/switches")

        return await self.pages.guard(request, set_switch, post=True)
