"""Read-only auditor pages of the reviewer UI: search decisions, a decision's trail, chain status.

Routes only convert: they read the query string, await one `AuditTrail` call and render. They
reuse the UI's sessions, templates and security headers through the `Pages` the UI passes in.
Only the auditor and admin roles get in (`gateway.core.accounts.require_trail_reader`), the same
roles an API key needs for the gRPC AuditService.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.audit.events import EventType
from gateway.audit.query import EventFilter
from gateway.audit.service import AuditTrail
from gateway.core.accounts import require_trail_reader
from gateway.errors import InvalidInput
from gateway.types import Account, Status
from reviewer_ui.protocol import Handler, Pages
from reviewer_ui.sessions import Session

_FIELDS = ("decision_id", "application", "subject_ref", "since", "until", "outcome")


def parse_time(name: str, text: str) -> datetime | None:
    """A form's time (``2025-01-31T08:15`` as a date-time input sends, or RFC 3339); UTC when
    no zone is given, since the pages show every time in UTC."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            name, f"{text[:40]!r} is not a date and time like 2025-01-31T08:15"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def audit_routes(pages: Pages, trail: AuditTrail) -> list[Route]:
    """The auditor routes, to register inside the UI app (under its prefix)."""
    routes = _AuditRoutes(pages, trail)
    return [
        Route("/audit", routes.search, methods=["GET"]),
        Route("/audit/decisions/{decision_id}", routes.decision, methods=["GET"]),
        Route("/audit/chain", routes.chain, methods=["GET"]),
    ]


class _AuditRoutes:
    def __init__(self, pages: Pages, trail: AuditTrail) -> None:
        self.pages = pages
        self.trail = trail

    async def _auditor(self, request: Request, handler: Handler) -> Response:
        async def checked(r: Request, s: Session, a: Account) -> Response:
            require_trail_reader(a)
            return await handler(r, s, a)

        return await self.pages.guard(request, checked)

    async def search(self, request: Request) -> Response:
        async def show(r: Request, s: Session, a: Account) -> Response:
            q = r.query_params
            form = {name: q.get(name, "").strip() for name in _FIELDS}
            searched = any(form.values())
            page = None
            next_url = None
            if searched:
                flt = EventFilter(
                    since=parse_time("since", form["since"]),
                    until=parse_time("until", form["until"]),
                    application=form["application"],
                    decision_id=form["decision_id"],
                    subject_ref=form["subject_ref"],
                    outcome=form["outcome"],
                    # Searching decisions means searching their first event: one row each.
                    type=EventType.DECISION_CREATED.value,
                )
                page = await self.trail.query(flt, 50, q.get("page", ""))
                if page.next_token:
                    kept = {k: v for k, v in form.items() if v}
                    next_url = "?" + urlencode({**kept, "page": page.next_token})
            return self.pages.render(
                r,
                s,
                "audit_search.html",
                account=a,
                form=form,
                searched=searched,
                page=page,
                next_url=next_url,
                outcomes=list(Status.__members__),
            )

        return await self._auditor(request, show)

    async def decision(self, request: Request) -> Response:
        async def show(r: Request, s: Session, a: Account) -> Response:
            decision_id = r.path_params["decision_id"]
            entries = await self.trail.checked_trail(decision_id)
            return self.pages.render(
                r,
                s,
                "audit_trail.html",
                account=a,
                decision_id=decision_id,
                entries=entries,
                broken=sum(1 for e in entries if e.problem),
            )

        return await self._auditor(request, show)

    async def chain(self, request: Request) -> Response:
        async def show(r: Request, s: Session, a: Account) -> Response:
            status = await self.trail.chain_status()
            return self.pages.render(r, s, "audit_chain.html", account=a, chain=status)

        return await self._auditor(request, show)
