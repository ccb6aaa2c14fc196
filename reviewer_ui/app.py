"""The reviewer UI: a Starlette app mounted on the gateway's HTTP server.

Built from rooms, each one concept: the guard every page passes (`guard`: session, single
sign-on, CSRF), the renderer (`rendering`), the error table (`errors`), and pages by concern
(`signin_pages`, `queue_pages`, `item_pages`, `admin_pages`, `audit_pages`, `model_pages`),
which reach the guard and renderer only through the small `protocol.Pages`. Routes only
convert: they read the form, await one core call (`ReviewQueue`, `SignIn`, `KillSwitches`,
`AuditTrail`, `ModelInventory`) and render.
Every form works without JavaScript; the small script only refreshes the queue when the server
sends an event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gateway.audit.service import AuditTrail
from gateway.core.accounts import AccountService
from gateway.core.notifier import Notifier
from gateway.core.queue import ReviewQueue
from gateway.core.signin import SignIn
from gateway.core.sso import TrustedHeaderSso
from gateway.core.switches import KillSwitches
from gateway.errors import GatewayError
from gateway.modelrisk.early_warning import EarlyWarning
from gateway.modelrisk.inventory import ModelInventory
from gateway.notify.dead_letters import OutboxAdmin
from gateway.policy import PolicySet
from reviewer_ui.admin_pages import admin_routes
from reviewer_ui.audit_pages import audit_routes
from reviewer_ui.crosssite import cross_site_guard
from reviewer_ui.errors import domain_error
from reviewer_ui.guard import Guard
from reviewer_ui.item_pages import item_routes
from reviewer_ui.model_pages import model_routes
from reviewer_ui.outbox_pages import outbox_routes
from reviewer_ui.queue_pages import queue_routes
from reviewer_ui.rendering import HERE, PREFIX, SECURITY_HEADERS, Renderer, template_env
from reviewer_ui.sessions import Sessions
from reviewer_ui.signin_pages import signin_routes

__all__ = ["PREFIX", "UiServices", "build_app"]


@dataclass(frozen=True, slots=True)
class UiServices:
    queue: ReviewQueue
    accounts: AccountService
    switches: KillSwitches
    notifier: Notifier
    policies: Callable[[], PolicySet]
    sso: TrustedHeaderSso | None = None
    """Trusted-header single sign-on; None (or not configured) means password sign-in only."""
    audit: AuditTrail | None = None
    """Serves the read-only auditor pages; without it they are not mounted."""
    inventory: ModelInventory | None = None
    """Serves the model inventory pages; without it they are not mounted."""
    monitoring: EarlyWarning | None = None
    """Draws each model page's monitoring charts; without it they are left out."""
    outbox: OutboxAdmin | None = None
    """Serves the outbox page (dead letters, re-send); without it it is not mounted."""


def build_app(services: UiServices, sessions: Sessions) -> Starlette:
    """The UI as an ASGI app, to mount at `PREFIX`."""
    s = services
    signin = SignIn(s.accounts, s.sso)
    pages = Guard(Renderer(sessions, template_env()), sessions, signin)
    return Starlette(
        routes=[
            *queue_routes(pages, s.queue, s.policies, s.notifier),
            *signin_routes(pages, sessions, signin),
            *item_routes(pages, s.queue, s.policies),
            *admin_routes(pages, s.switches),
            *(outbox_routes(pages, s.outbox) if s.outbox is not None else ()),
            *(audit_routes(pages, s.audit) if s.audit is not None else []),
            *(
                model_routes(pages, s.inventory, s.policies, monitoring=s.monitoring)
                if s.inventory is not None
                else []
            ),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[cross_site_guard(SECURITY_HEADERS)],
        # A domain error outside a guarded page (sign-in writing its session to a full disk)
        # is shown with its status too, not as an anonymous 500.
        exception_handlers={GatewayError: domain_error},
    )
