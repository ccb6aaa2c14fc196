"""The reviewer UI: a Starlette app mounted on the gateway's HTTP server.

Routes only convert: they read the form, check the session and CSRF token, await one core call
(`ReviewQueue`, `AccountService`, `KillSwitches`) and render. Every form works without
JavaScript; the small script only refreshes the queue when the server sends an event.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.audit.service import AuditTrail
from gateway.core.accounts import AccountService
from gateway.core.notifier import Notifier
from gateway.core.queue import ReviewQueue
from gateway.core.sso import TrustedHeaderSso
from gateway.core.switches import KillSwitches
from gateway.errors import (
    Conflict,
    GatewayError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    StoreUnavailable,
    Unauthenticated,
)
from gateway.policy import PolicySet
from gateway.types import Account, Role, TaskKind, Verdict
from reviewer_ui.audit_pages import audit_routes
from reviewer_ui.charts import explanation_chart
from reviewer_ui.crosssite import cross_site_guard
from reviewer_ui.sessions import Session, Sessions, csrf_ok

HERE = Path(__file__).parent
PREFIX = "/ui"
HTTP_STATUS: dict[type[GatewayError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    RateLimited: 429,
    # Nothing was recorded; a retry may succeed once the store is back.
    StoreUnavailable: 503,
}
"""Domain errors to HTTP status, walked along the exception's MRO; anything else is 500."""
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


@dataclass(frozen=True, slots=True)
class UiServices:
    queue: ReviewQueue
    accounts: AccountService
    switches: KillSwitches
    notifier: Notifier
    policies: PolicySet
    sso: TrustedHeaderSso | None = None
    """Trusted-header single sign-on; None (or not configured) means password sign-in only."""
    audit: AuditTrail | None = None
    """Serves the read-only auditor pages; without it they are not mounted."""


def status_for(exc: GatewayError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def _cursor(text: str) -> tuple[str, int, int] | None:
    if not text:
        return None
    parts = text.split("|")
    try:
        if len(parts) != 3:
            raise ValueError
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        raise InvalidInput("after", "not a queue position from this page") from None


def template_env() -> Environment:
    """The page templates, every value HTML-escaped unless marked safe."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        enable_async=False,
    )
    env.globals["prefix"] = PREFIX
    return env


def build_app(services: UiServices, sessions: Sessions) -> Starlette:
    """The UI as an ASGI app, to mount at `PREFIX`."""
    env = template_env()
    ui = _Routes(services, sessions, env)
    return Starlette(
        routes=[
            Route("/", ui.queue, methods=["GET"]),
            Route("/qa", ui.qa_queue, methods=["GET"]),
            Route("/login", ui.login_form, methods=["GET"]),
            Route("/login", ui.login, methods=["POST"]),
            Route("/logout", ui.logout, methods=["POST"]),
            Route("/items/{decision_id}", ui.item, methods=["GET"]),
            Route("/items/{decision_id}/verdict", ui.verdict, methods=["POST"]),
            Route("/items/{decision_id}/qa", ui.qa, methods=["POST"]),
            Route("/items/{decision_id}/unmask", ui.unmask, methods=["POST"]),
            Route("/items/{decision_id}/release", ui.release, methods=["POST"]),
            Route("/events", ui.events, methods=["GET"]),
            Route("/admin/switches", ui.switches, methods=["GET"]),
            Route("/admin/switches", ui.set_switch, methods=["POST"]),
            *(audit_routes(ui, services.audit) if services.audit is not None else []),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[cross_site_guard(SECURITY_HEADERS)],
        # A domain error outside a guarded page (sign-in writing its session to a full disk)
        # is shown with its status too, not as an anonymous 500.
        exception_handlers={GatewayError: _domain_error},
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _Routes.refusal(exc)


Handler = Callable[[Request, Session, Account], Awaitable[Response]]


class _Routes:
    def __init__(self, services: UiServices, sessions: Sessions, env: Environment) -> None:
        self.s = services
        self.sessions = sessions
        self.env = env

    # -- rendering and guards ----------------------------------------------------------------

    def render(
        self,
        request: Request,
        session: Session,
        name: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        flash, session.flash = session.flash, []
        html = self.env.get_template(name).render(
            csrf=session.csrf, flash=flash, request=request, **context
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        self.sessions.set_cookie(response, session, secure=request.url.scheme == "https")
        return response

    def redirect(self, request: Request, session: Session, path: str) -> Response:
        response = RedirectResponse(PREFIX + path, status_code=303, headers=SECURITY_HEADERS)
        self.sessions.set_cookie(response, session, secure=request.url.scheme == "https")
        return response

    def _sso_account(self, request: Request) -> Account | None:
        """The account a trusted proxy asserts; raises for headers that may not be believed."""
        sso = self.s.sso
        if sso is None:
            return None
        headers = request.headers
        return sso.account_for(
            request.client.host if request.client else "",
            headers.get(sso.config.user_header),
            headers.get(sso.config.groups_header),
        )

    async def _signed_in(self, request: Request) -> tuple[Session | None, Account | None]:
        """The request's session and account: from a trusted proxy's headers, else the cookie."""
        session = await self.sessions.get(request)
        asserted = self._sso_account(request)
        if asserted is not None:
            stored = await self.s.accounts.get(asserted.name)
            if stored is not None and stored.disabled:
                raise PermissionDenied(f"account {asserted.name} is disabled")
            if session is None or not session.sso or session.user != asserted.name:
                # A new session id and CSRF token whenever the asserted person changes, so a
                # POST is still only accepted with a token from a page this person was shown.
                session = await self.sessions.sign_in(session, asserted.name, sso=True)
            return session, asserted
        if session is None or session.user is None:
            return session, None
        if session.sso:  # the proxy stopped vouching for this person
            await self.sessions.end(session)
            return None, None
        account = await self.s.accounts.get(session.user)
        if account is None or account.disabled:
            await self.sessions.end(session)
            return None, None
        return session, account

    @staticmethod
    def refusal(exc: GatewayError) -> Response:
        return HTMLResponse(
            html.escape(exc.message), status_code=status_for(exc), headers=SECURITY_HEADERS
        )

    async def guard(self, request: Request, handler: Handler, *, post: bool = False) -> Response:
        """Signed-in account, CSRF on POST, and domain errors shown as a page."""
        try:
            session, account = await self._signed_in(request)
        except GatewayError as exc:
            return self.refusal(exc)
        if session is None or account is None:
            if post:
                return HTMLResponse("Sign in first.", status_code=401, headers=SECURITY_HEADERS)
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        if post:
            form = await request.form()
            if not csrf_ok(session, form.get("csrf")):
                return self.render(
                    request,
                    session,
                    "error.html",
                    status=403,
                    account=account,
                    message="The form's security token is missing or wrong; nothing was changed. "
                    "Reload the page and try again.",
                )
        try:
            return await handler(request, session, account)
        except GatewayError as exc:
            return self.render(
                request,
                session,
                "error.html",
                status=status_for(exc),
                account=account,
                message=exc.message,
            )

    # -- sign in / out -----------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        try:
            if self._sso_account(request) is not None:
                return RedirectResponse(f"{PREFIX}/", status_code=303)
        except GatewayError as exc:
            return self.refusal(exc)
        session, _ = await self.sessions.get_or_create(request)
        if session.user is not None:
            return self.redirect(request, session, "/")
        return self.render(request, session, "login.html", account=None)

    async def login(self, request: Request) -> Response:
        try:
            self._sso_account(request)  # identity headers from an untrusted peer are refused
        except GatewayError as exc:
            return self.refusal(exc)
        session, _ = await self.sessions.get_or_create(request)
        form = await request.form()
        if not csrf_ok(session, form.get("csrf")):
            session.flash.append(("error", "The sign-in form expired; please try again."))
            return self.redirect(request, session, "/login")
        name, password = str(form.get("name", "")), str(form.get("password", ""))
        client = request.client.host if request.client else "?"
        try:
            account = await self.s.accounts.authenticate(name, password, client)
        except (Unauthenticated, RateLimited) as exc:
            session.flash.append(("error", exc.message))
            status = 429 if isinstance(exc, RateLimited) else 401
            return self.render(request, session, "login.html", status=status, account=None)
        session = await self.sessions.sign_in(session, account.name)
        return self.redirect(request, session, "/")

    async def logout(self, request: Request) -> Response:
        session = await self.sessions.get(request)
        if session is None or not csrf_ok(session, (await request.form()).get("csrf")):
            # Only the form of a page this session was shown signs out; anything else (a form
            # on another site, or no live session) changes no cookie and goes to the queue.
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        await self.sessions.end(session)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        self.sessions.clear_cookie(response)
        return response

    # -- queues ------------------------------------------------------------------------------

    async def queue(self, request: Request) -> Response:
        return await self.guard(request, lambda r, s, a: self._queue(r, s, a, TaskKind.DECISION))

    async def qa_queue(self, request: Request) -> Response:
        return await self.guard(request, lambda r, s, a: self._queue(r, s, a, TaskKind.QA))

    async def _queue(
        self, request: Request, session: Session, account: Account, kind: TaskKind
    ) -> Response:
        q = request.query_params
        app_filter, tier_filter = q.get("app", ""), q.get("tier", "")
        page = await self.s.queue.page(
            account,
            kind,
            application=app_filter,
            tier=tier_filter,
            after=_cursor(q.get("after", "")),
        )
        params = {k: v for k, v in (("app", app_filter), ("tier", tier_filter)) if v}
        next_url = None
        if page.next is not None:
            after = "|".join(str(p) for p in page.next)
            next_url = f"?{urlencode({**params, 'after': after})}"
        template = "_rows.html" if q.get("partial") == "1" else "queue.html"
        return self.render(
            request,
            session,
            template,
            account=account,
            kind=kind.value,
            page=page,
            total=sum(page.counts.values()),
            next_url=next_url,
            app_filter=app_filter,
            tier_filter=tier_filter,
            applications=sorted(self.s.policies.applications),
            tiers=[t.name for t in self.s.policies.tiers if not t.reject],
        )

    # -- items -------------------------------------------------------------------------------

    @staticmethod
    def _kind(request: Request) -> TaskKind:
        return TaskKind.QA if request.query_params.get("kind") == "qa" else TaskKind.DECISION

    async def item(self, request: Request) -> Response:
        return await self.guard(request, lambda r, s, a: self._item(r, s, a, unmask=False))

    async def _item(
        self,
        request: Request,
        session: Session,
        account: Account,
        *,
        unmask: bool,
    ) -> Response:
        decision_id = request.path_params["decision_id"]
        kind = self._kind(request)
        view = await self.s.queue.open(account, decision_id, kind, unmask=unmask)
        d = view.decision
        tier = next((t for t in self.s.policies.tiers if t.name == d.tier), None)
        editable = {
            k: v
            for k, v in (d.model_output or {}).items()
            if isinstance(v, int | float | str | bool)
        }
        return self.render(
            request,
            session,
            "item.html",
            account=account,
            kind=kind.value,
            view=view,
            d=d,
            tier=tier,
            input=view.input,
            unmasked=unmask,
            chart=explanation_chart(d.model_output),
            editable=editable,
            approvals=sum(1 for r in d.reviews if r.verdict is Verdict.APPROVE),
        )

    async def verdict(self, request: Request) -> Response:
        async def decide(r: Request, s: Session, a: Account) -> Response:
            form = await r.form()
            decision_id = r.path_params["decision_id"]
            raw = str(form.get("verdict", ""))
            try:
                verdict = Verdict(raw)
            except ValueError:
                raise InvalidInput("verdict", "choose approve, reject or override") from None
            fields = {
                str(k)[4:]: str(v)
                for k, v in form.multi_items()
                if str(k).startswith("out.") and isinstance(v, str)
            }
            try:
                result = await self.s.queue.decide(
                    a, decision_id, verdict, str(form.get("reason", "")), fields
                )
            except (InvalidInput, Conflict, PermissionDenied) as exc:
                s.flash.append(("error", exc.message))
                return self.redirect(r, s, f"/items/{decision_id}")
            if result.status.is_final:
                msg = f"Decision {decision_id} is now {result.status.value}."
            else:
                msg = f"Approval recorded for {decision_id}; a second reviewer must approve too."
            s.flash.append(("ok", msg))
            return self.redirect(r, s, "/")

        return await self.guard(request, decide, post=True)

    async def qa(self, request: Request) -> Response:
        async def opinion(r: Request, s: Session, a: Account) -> Response:
            form = await r.form()
            decision_id = r.path_params["decision_id"]
            agree = form.get("opinion") == "agree"
            try:
                await self.s.queue.qa(a, decision_id, agree, str(form.get("reason", "")))
            except (InvalidInput, Conflict, PermissionDenied) as exc:
                s.flash.append(("error", exc.message))
                return self.redirect(r, s, f"/items/{decision_id}?kind=qa")
            s.flash.append(("ok", f"QA opinion on {decision_id} recorded."))
            return self.redirect(r, s, "/qa")

        return await self.guard(request, opinion, post=True)

    async def unmask(self, request: Request) -> Response:
        return await self.guard(
            request, lambda r, s, a: self._item(r, s, a, unmask=True), post=True
        )

    async def release(self, request: Request) -> Response:
        async def release(r: Request, s: Session, a: Account) -> Response:
            await self.s.queue.release(a, r.path_params["decision_id"], self._kind(r))
            return self.redirect(r, s, "/qa" if self._kind(r) is TaskKind.QA else "/")

        return await self.guard(request, release, post=True)

    # -- live updates ------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        async def stream(r: Request, s: Session, a: Account) -> Response:
            return StreamingResponse(
                self._event_stream(),
                media_type="text/event-stream",
                headers={"cache-control": "no-store", "x-accel-buffering": "no"},
            )

        return await self.guard(request, stream)

    async def _event_stream(self) -> AsyncIterator[str]:
        # Only "something changed" goes out: the page fetches what this reviewer may see.
        yield "retry: 3000\n\n"
        with self.s.notifier.subscribe_all() as changes:
            while True:
                try:
                    async with asyncio.timeout(15):
                        change = await changes.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if change is None:
                    return
                while not changes.empty():  # coalesce a burst into one refresh
                    if changes.get_nowait() is None:
                        return
                yield "event: queue\ndata: changed\n\n"

    # -- kill switch -------------------------------------------------------------------------

    async def switches(self, request: Request) -> Response:
        async def show(r: Request, s: Session, a: Account) -> Response:
            if a.role is not Role.ADMIN:
                raise PermissionDenied("only admins manage the kill switch")
            return self.render(r, s, "switches.html", account=a, states=self.s.switches.states())

        return await self.guard(request, show)

    async def set_switch(self, request: Request) -> Response:
        async def change(r: Request, s: Session, a: Account) -> Response:
            if a.role is not Role.ADMIN:
                raise PermissionDenied("only admins manage the kill switch")
            form = await r.form()
            kind, name = str(form.get("kind", "")), str(form.get("name", ""))
            paused = form.get("action") == "pause"
            await self.s.switches.set(
                kind, name, paused, f"user:{a.name}", str(form.get("reason", ""))
            )
            s.flash.append(("ok", f"{kind} {name} {'paused' if paused else 'resumed'}."))
            return self.redirect(r, s, "/admin/switches")

        return await self.guard(request, change, post=True)
