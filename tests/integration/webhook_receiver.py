"""A real HTTP endpoint on loopback that receives webhooks and checks their signatures with the
``standardwebhooks`` verifier, as an application's receiver would.

It runs in a thread of its own so that it serves an in-process gateway and a gateway subprocess
alike, and it can be stopped and started again on the same port (a receiver that is down).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.integration.serverproc import free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""A Standard Webhooks test secret (the specification's example)."""


@dataclass(frozen=True)
class Delivery:
    """One verified POST."""

    id: str
    payload: dict[str, Any]
    body: bytes


class WebhookReceiver:
    """Receives webhooks at ``url``; ``status`` is what it answers to a verified POST."""

    def __init__(self, secret: str = SECRET, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.status = 204
        self.deliveries: list[Delivery] = []
        self.rejected: list[str] = []
        """Why POSTs were refused (a bad signature, for instance)."""
        self._verifier = Webhook(secret)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    receiver._verifier.verify(body, headers)
                except WebhookVerificationError as exc:
                    with receiver._lock:
                        receiver.rejected.append(str(exc))
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    delivery = Delivery(headers["webhook-id"], json.loads(body), body)
                    receiver.deliveries.append(delivery)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on what was received."""

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def received(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Delivery]:
        """The deliveries once at least ``n`` arrived (blocking; call it through a thread from
        async code)."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(got)} of {n} webhooks received in {timeout} s; rejected: {self.rejected}"
                )
            time.sleep(0.05)


SECRET_ENV = "HITL_TEST_WEBHOOK_SECRET"


def write_hook_policy(
    policies: Path, url: str, *, sla: str = "1h", callback_hosts: tuple[str, ...] = ()
) -> None:
    """Add application ``t-hook`` (echo model: held for 0.2 <= score < 0.8) with its webhook at
    ``url``, in a tier of its own (last: the lowest risk) whose review expires with a rejection
    after ``sla``."""
    tiers = policies / "tiers.yaml"
    tiers.write_text(
        tiers.read_text().rstrip("\n")
        + f"""
  - name: t-hook-tier
    review: {{approvals: 1, groups: [reviewers], sla: {sla}, on_timeout: reject}}
"""
    )
    (policies / "t-hook.yaml").write_text(
        f"""
applications:
  - id: t-hook
    tier: t-hook-tier
    backend: echo
    sensitive_fields: [customer.name]
    route:
      - {{when: "output.score >= 0.8", action: approve}}
      - {{when: "output.score < 0.2", action: reject}}
    webhook: {{url: "{url}", secret_env: {SECRET_ENV}, callback_hosts: {list(callback_hosts)}}}
"""
    )
