"""RFC 3161 time-stamp tokens over checkpoints, from an authority the operator does not control.

A checkpoint is signed with the operator's own key: whoever holds it could rewrite the trail and
sign new heads with old dates. A time-stamp authority (TSA) signs "this digest existed at this
time" with its own key, so a stamped checkpoint's tree head provably existed when the TSA says,
and a later rewrite cannot be back-dated.

The digest stamped is SHA-256 of the checkpoint's signed bytes (which hold the chain head and the
Merkle root). Tokens are requested off the decision path, by `Stamper`, which retries every
checkpoint that has none yet: an authority that is down delays tokens, never decisions. The
whole response is stored (DER), since `rfc3161_client` parses and checks responses; parsing and
checking are that library's, never hand-written ASN.1.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import rfc3161_client
import structlog
from cryptography import x509

from gateway.audit.checkpoints import Checkpoint
from gateway.periodic import Periodic
from gateway.timefmt import format_ts

log = structlog.get_logger("gateway.audit")

CONTENT_TYPE_QUERY = "application/timestamp-query"
CONTENT_TYPE_REPLY = "application/timestamp-reply"


@dataclass(frozen=True, slots=True)
class TimeStamp:
    """The authority's response for one checkpoint."""

    seq: int
    """Seq of the checkpoint stamped."""
    token: bytes
    """DER of the whole TimeStampResp."""
    tsa_url: str
    stamped_at: str
    """`format_ts` of the time the authority put in the token."""


class TimeStampError(ValueError):
    """A token that does not check out, or an authority that would not give one."""


def imprint(cp: Checkpoint) -> bytes:
    """What is stamped: SHA-256 of the checkpoint's signed bytes."""
    return hashlib.sha256(cp.signed).digest()


def request_bytes(cp: Checkpoint) -> bytes:
    """DER of a TimeStampReq for ``cp`` asking for the authority's certificate, with a nonce."""
    req = (
        rfc3161_client.TimestampRequestBuilder()
        .data(cp.signed)
        .hash_algorithm(rfc3161_client.HashAlgorithm.SHA256)
        .cert_request(cert_request=True)
        .nonce(nonce=True)
        .build()
    )
    return req.as_bytes()


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; ValueError when there is none."""
    certs = x509.load_pem_x509_certificates(pem)
    if not certs:
        raise ValueError("no certificate in the PEM data")
    return certs


def check(stamp: TimeStamp, cp: Checkpoint, roots: Sequence[x509.Certificate]) -> datetime:
    """Check that ``stamp`` is a token over ``cp`` by an authority whose certificate chains to
    one of ``roots``; returns the time the authority stamped it.

    Raises:
        TimeStampError: Not a granted response, not over this checkpoint, or not signed by a
            certificate of ``roots`` (with the time-stamping key usage RFC 3161 requires).
    """
    if not roots:
        raise TimeStampError("no trusted authority certificate to check the token with")
    try:
        resp = rfc3161_client.decode_timestamp_response(stamp.token)
    except ValueError as exc:
        raise TimeStampError(f"not a time-stamp response: {exc}") from None
    builder = rfc3161_client.VerifierBuilder()
    for root in roots:
        builder = builder.add_root_certificate(root)
    try:
        builder.build().verify_message(resp, cp.signed)
    except rfc3161_client.VerificationError as exc:
        raise TimeStampError(f"token does not verify: {exc}") from None
    return resp.tst_info.gen_time


async def fetch(
    client: httpx.AsyncClient, url: str, cp: Checkpoint, roots: Sequence[x509.Certificate]
) -> TimeStamp:
    """Ask the authority at ``url`` for a token over ``cp``; checked with ``roots`` when given.

    Raises:
        TimeStampError: The authority refused, answered something else, or a bad token.
        httpx.HTTPError: The authority could not be reached.
    """
    resp = await client.post(
        url, content=request_bytes(cp), headers={"Content-Type": CONTENT_TYPE_QUERY}
    )
    if resp.status_code != 200:
        raise TimeStampError(f"{url} answered HTTP {resp.status_code}")
    try:
        parsed = rfc3161_client.decode_timestamp_response(resp.content)
    except ValueError as exc:
        raise TimeStampError(f"{url} answered something that is not a token: {exc}") from None
    if parsed.status != rfc3161_client.PKIStatus.GRANTED:
        raise TimeStampError(f"{url} refused: status {parsed.status} {parsed.status_string}")
    stamped_at = parsed.tst_info.gen_time
    if stamped_at.tzinfo is None:
        stamped_at = stamped_at.replace(tzinfo=UTC)
    stamp = TimeStamp(cp.seq, resp.content, url, format_ts(stamped_at))
    if roots:
        check(stamp, cp, roots)
    return stamp


class Stamper:
    """Fetches a token for every checkpoint that has none, in the background, retrying.

    Args:
        url: The authority's URL (``HITL_TSA_URL``).
        unstamped: The stored checkpoints that have no token yet, oldest first (at most n).
        save: Stores a token.
        roots: Certificates a token must chain to before it is stored (empty: stored unchecked,
            checked later by whoever verifies it).
        interval: Seconds between looks for unstamped checkpoints; an outage is retried then.
        warn_after: Seconds after which a checkpoint still without a token is logged as stale.
        timeout: Seconds one request to the authority may take.
    """

    def __init__(
        self,
        url: str,
        unstamped: Callable[[int], Awaitable[list[Checkpoint]]],
        save: Callable[[TimeStamp], Awaitable[None]],
        *,
        roots: Sequence[x509.Certificate] = (),
        interval: float = 5.0,
        warn_after: float = 3600.0,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._unstamped = unstamped
        self._save = save
        self._roots = tuple(roots)
        self._warn_after = warn_after
        self._client = httpx.AsyncClient(timeout=timeout)
        self._last_token = time.monotonic()
        """When a token last arrived (or the stamper started): the readiness warning's clock."""
        self._waiting = 0
        self.stamped = 0
        """Tokens stored by this stamper (for tests and metrics)."""
        self._loop = Periodic(
            "audit-timestamps", self.run_once, interval, failure_event="audit.timestamp_failed"
        )

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        await self._client.aclose()

    def warning(self) -> str | None:
        """Why readiness should warn (`stale`), or None."""
        if not self.stale():
            return None
        return (
            f"{self._waiting} checkpoints without a time-stamp token; none arrived for "
            f"{time.monotonic() - self._last_token:.0f} s"
        )

    def stale(self) -> bool:
        """True when checkpoints wait for a token and none arrived for ``warn_after`` seconds."""
        return self._waiting > 0 and time.monotonic() - self._last_token > self._warn_after

    async def run_once(self) -> int:
        """Fetch tokens for the checkpoints that lack one; how many were stored."""
        pending = await self._unstamped(20)
        self._waiting = len(pending)
        done = 0
        for cp in pending:
            try:
                stamp = await fetch(self._client, self._url, cp, self._roots)
            except (httpx.HTTPError, TimeStampError) as exc:
                # The authority is down or misbehaving: the next run tries again.
                log.info("audit.timestamp_retry", seq=cp.seq, url=self._url, error=str(exc))
                break
            await self._save(stamp)
            done += 1
            self.stamped += 1
            self._waiting -= 1
            self._last_token = time.monotonic()
        if self.stale():
            log.warning(
                "audit.timestamp_stale",
                waiting=self._waiting,
                seconds=round(time.monotonic() - self._last_token),
            )
        return done
