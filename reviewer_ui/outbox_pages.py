"""The outbox page: notifications still to deliver and the dead-lettered ones, with a re-send
(admins only). The rules, and the audit event of a re-send, are `gateway.notify.dead_letters`'."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.core.accounts import require_outbox_manager
from gateway.notify.dead_letters import OutboxAdmin
from gateway.types import Account
from reviewer_ui.protocol import Pages
from reviewer_ui.sessions import Session


def outbox_routes(pages: Pages, outbox: OutboxAdmin) -> list[Route]:
    """The outbox routes, to register inside the UI app (under its prefix)."""
    routes = _OutboxRoutes(pages, outbox)
    return [
        Route("/admin/outbox", routes.show, methods=["GET"]),
        Route("/admin/outbox/resend", routes.resend, methods=["POST"]),
    ]


class _OutboxRoutes:
    def __init__(self, pages: Pages, outbox: OutboxAdmin) -> None:
        self.pages = pages
        self.outbox = outbox

    async def show(self, request: Request) -> Response:
        async def page(r: Request, s: Session, a: Account) -> Response:
            require_outbox_manager(a)
            dead = await self.outbox.list(dead=True)
            pending = await self.outbox.list(dead=False)
            return self.pages.render(r, s, "outbox.html", account=a, dead=dead, pending=pending)

        return await self.pages.guard(request, page)

    async def resend(self, request: Request) -> Response:
        async def resend(r: Request, s: Session, a: Account) -> Response:
            require_outbox_manager(a)
            form = await r.form()
            message = await self.outbox.resend(str(form.get("id", "")), f"user:{a.name}")
            s.flash.append(("ok", f"{message.id} is due again."))
            return self.pages.redirect(r, s, "/admin/outbox")

        return await self.pages.guard(request, resend, post=True)
