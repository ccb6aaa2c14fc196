"""One settings object, loaded once at the edge: defaults < YAML file < ``HITL_*`` < flags.

Every subcommand resolves the data directory by the same rules, so ``keys``, ``audit`` and
``policy`` act on the same store that ``serve`` uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from gateway.core.sso import SsoConfig


@dataclass(frozen=True, slots=True)
class Settings:
    grpc_host: str = "127.0.0.1"
    """Address the gRPC server binds to."""
    grpc_port: int = 50051
    """gRPC port; 0 picks a free port (tests)."""
    http_host: str = "127.0.0.1"
    """Address of the HTTP server (health, metrics, reviewer UI)."""
    http_port: int = 8080
    """HTTP port; 0 picks a free port (tests)."""
    http_idle_timeout: float = 15.0
    """Seconds an HTTP connection may stay open with no request in progress (before its first
    request and between requests); then it is closed."""
    http_header_timeout: float = 10.0
    """Seconds an HTTP request may take, from its first byte, to send its complete headers."""
    http_max_connections_per_client: int = 256
    """Most HTTP connections open at once from one client address; the excess is answered 503
    and closed. Behind a reverse proxy every user shares the proxy's address: size it for the
    proxy there (0: no limit per address)."""
    http_max_connections: int = 0
    """Most HTTP connections open at once in all; 0 means half the process's open-file limit,
    so HTTP clients can never take the file handles the store and the audit checkpoints need."""
    data_dir: Path = Path("var")
    """Where the embedded store and keys live."""
    policies: Path = Path("policies")
    """Directory of policy YAML files."""
    store: str = ""
    """Store URL; empty means SQLite at ``<data_dir>/gateway.db``."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest gRPC message accepted; larger ones get RESOURCE_EXHAUSTED."""
    max_concurrent_rpcs: int = 2048
    """Bound on calls in progress for all keys together, waiting ones included; beyond it:
    RESOURCE_EXHAUSTED. Health checks are not counted, so they answer at the bound."""
    workers: int = 1
    """Processes serving the same ports (``SO_REUSEPORT``) and data (``serve --workers``);
    0: one per CPU this process may use (affinity and cgroup quota)."""
    max_deciding: int = 64
    """Decisions being made at once in this process (from admission until recorded; a call
    waiting for a verdict no longer counts); beyond it a Decide is shed at once with
    RESOURCE_EXHAUSTED and ``grpc-retry-pushback-ms``, so admitted calls keep their latency.
    0: no bound. The default is well past saturation on two cores (see ``bench.overload_bench``)."""
    max_calls_per_key: int = 256
    """Calls one key or client certificate may have in progress, watch streams and calls
    waiting for a verdict included; beyond it: RESOURCE_EXHAUSTED naming this setting. Keeps one
    application from taking ``max_concurrent_rpcs`` from the others."""
    max_public_streams: int = 256
    """Streams open at once without a key (health ``Watch``, reflection); beyond it:
    RESOURCE_EXHAUSTED."""
    watch_max_seconds: float = 300.0
    """Longest a ``WatchDecision`` stream stays open: it then ends with OK, the decision still
    open, and the client watches again (``gateway.client`` does so by itself)."""
    log_level: str = "info"
    """debug, info, warning or error."""
    shutdown_grace: float = 10.0
    """Seconds SIGTERM gives in-flight calls before they are cancelled."""
    review_lease: float = 300.0
    """Seconds an opened review item stays leased to its reviewer."""
    sla_sweep_interval: float = 5.0
    """Seconds between SLA sweeps of overdue review items."""
    outbox_interval: float = 1.0
    """Seconds between looks for due outbox messages (webhooks) on each replica."""
    outbox_timeout: float = 10.0
    """Seconds one webhook delivery attempt may take."""
    outbox_backoff_base: float = 2.0
    """Seconds before the first retry of a failed delivery; doubled each time, with jitter."""
    outbox_backoff_max: float = 900.0
    """Longest wait between two delivery attempts, in seconds."""
    outbox_max_age: float = 86400.0
    """Seconds a message is retried before it is dead-lettered (``hitl-gateway outbox``)."""
    outbox_warn_after: float = 300.0
    """Log a warning when the oldest undelivered message is older than this, in seconds."""
    outbox_keep: float = 604800.0
    """Seconds a delivered message (and a spent reviewer notice mark) is kept before it is
    deleted; dead-lettered messages are never deleted (``HITL_OUTBOX_KEEP``, default 7 days)."""
    public_url: str = ""
    """The reviewer UI's base URL as reviewers reach it (``https://hitl.example.com``): the
    links in email and chat notifications."""
    notify_interval: float = 60.0
    """Seconds between scans for new review items and SLA warnings; each reviewer group hears
    of new items at most once per interval."""
    notify_sla_share: float = 0.8
    """Share of an item's SLA after which its reviewers are warned."""
    notify_breach_groups: str = "model-risk"
    """Groups (comma-separated) told by email when model monitoring opens a breach; chat hears
    of every breach."""
    notify_email_groups: str = ""
    """Addresses per reviewer group: ``group=a@x;b@x,other=c@x`` (a team mailbox per group is
    typical); a group with no entry gets no email."""
    chat_webhook_url: str = field(default="", repr=False)
    """Incoming-webhook URL of a chat channel (Slack, Teams, or any JSON receiver) for reviewer
    notifications; empty: none. Such URLs are credentials."""
    smtp_host: str = ""
    """SMTP server for reviewer email; empty: no email."""
    smtp_port: int = 587
    """Port of ``smtp_host`` (submission)."""
    smtp_starttls: bool = True
    """Upgrade the SMTP connection with STARTTLS (certificate verified) before sending."""
    smtp_tls_ca: Path | None = None
    """CA bundle (PEM) for the SMTP server's certificate; unset: the system's trust store."""
    smtp_username: str = ""
    """SMTP login; empty: send without authenticating."""
    smtp_password: str = field(default="", repr=False)
    """Password of ``smtp_username`` (``HITL_SMTP_PASSWORD``)."""
    smtp_from: str = "hitl-gateway@localhost"
    """Sender address of reviewer email."""
    session_idle: float = 1800.0
    """Seconds of inactivity after which a reviewer UI session ends."""
    admin_password: str = field(default="", repr=False)
    """Password of the first admin (``HITL_ADMIN_PASSWORD``); random and printed once if empty."""
    audit_checkpoint_events: int = 1000
    """Sign the audit chain head once it is this many events past the last checkpoint."""
    audit_checkpoint_seconds: float = 10.0
    """Sign a chain head that moved at all after this many seconds."""
    tsa_url: str = ""
    """RFC 3161 time-stamp authority (``HITL_TSA_URL``): when set, each audit checkpoint is
    stamped there in the background; empty: checkpoints are not time-stamped."""
    tsa_ca_file: Path | None = None
    """PEM CA certificate(s) a time-stamp token must chain to before it is stored (empty: stored
    unchecked, checked by ``audit check-evidence --tsa-ca``)."""
    tsa_interval: float = 5.0
    """Seconds between looks for checkpoints still without a token (an outage retries then)."""
    tsa_warn_after: float = 3600.0
    """Warn (log ``audit.timestamp_stale``) when checkpoints have waited this many seconds
    without any token arriving."""

    tls_cert: Path | None = None
    """PEM certificate chain for gRPC and HTTP; with ``tls_key`` turns TLS on."""
    tls_key: Path | None = None
    """PEM private key of ``tls_cert``."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, gRPC clients must present a certificate it signed (mTLS)."""
    allow_insecure: bool = False
    """Serve plaintext on a non-loopback address (only behind a proxy that terminates TLS)."""
    rate_limit: float = 1000.0
    """Calls per second one API key or client certificate may make on one replica."""
    rate_burst: float = 2000.0
    """Calls a key may make at once after being idle."""
    data_key: str = field(default="", repr=False)
    """Data keys sealing ``sensitive_fields`` at rest (``HITL_DATA_KEY``): base64 AES-256 keys,
    comma-separated, newest last; empty means ``<data_dir>/data.keys``, created at first start."""
    audit_signing_key: str = field(default="", repr=False)
    """Ed25519 key signing audit checkpoints (``HITL_AUDIT_SIGNING_KEY``): base64 of the raw
    32-byte private key; empty means ``<data_dir>/audit-signing-key.pem``, made at first start."""
    session_key: str = field(default="", repr=False)
    """Key signing reviewer UI cookies (``HITL_SESSION_KEY``): base64 of at least 32 random
    bytes; empty means ``<data_dir>/ui-session.key``, created at first start. On a PostgreSQL
    store ``data_key``, ``audit_signing_key`` and ``session_key`` must all be set, the same on
    every replica (``hitl-gateway keys generate-secrets`` makes them)."""
    sso_user_header: str = ""
    """Header a trusted proxy sets to the signed-in user (e.g. ``X-Forwarded-User``); empty
    turns trusted-header SSO off."""
    sso_groups_header: str = "X-Forwarded-Groups"
    """Header with the user's groups, comma-separated; they become the reviewer's groups."""
    sso_role_map: str = ""
    """``group=role`` pairs, comma-separated; the first pair whose group the user has wins."""
    sso_trusted_proxies: str = ""
    """Addresses or CIDRs, comma-separated, of the proxies allowed to send the SSO headers."""

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir / 'gateway.db'}"


def sso_config(settings: Settings) -> SsoConfig:
    """The trusted-header SSO part of the settings; raises ValueError naming a bad setting."""
    s = settings
    return SsoConfig.parse(
        s.sso_user_header, s.sso_groups_header, s.sso_role_map, s.sso_trusted_proxies
    )


_TYPES: dict[str, type] = {"grpc_port": int, "http_port": int, "max_message_bytes": int}
_TYPES |= {"max_concurrent_rpcs": int, "shutdown_grace": float, "max_deciding": int}
_TYPES |= {"workers": int}
_TYPES |= {"review_lease": float, "sla_sweep_interval": float, "session_idle": float}
_TYPES |= {"audit_checkpoint_events": int, "audit_checkpoint_seconds": float}
_TYPES |= {"tsa_interval": float, "tsa_warn_after": float}
_TYPES |= {"rate_limit": float, "rate_burst": float}
_TYPES |= {"http_idle_timeout": float, "http_header_timeout": float}
_TYPES |= {"http_max_connections_per_client": int, "http_max_connections": int}
_TYPES |= {"max_calls_per_key": int, "max_public_streams": int, "watch_max_seconds": float}
_TYPES |= {f"outbox_{n}": float for n in ("interval", "timeout", "backoff_base", "backoff_max")}
_TYPES |= {"outbox_max_age": float, "outbox_warn_after": float, "outbox_keep": float}
_TYPES |= {"notify_interval": float, "notify_sla_share": float, "smtp_port": int}
_PATHS = {"data_dir", "policies", "tls_cert", "tls_key", "tls_client_ca", "smtp_tls_ca"}
_PATHS |= {"tsa_ca_file"}
_BOOLS = {"allow_insecure", "smtp_starttls"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    pass


def _coerce(name: str, value: Any, source: str) -> Any:
    try:
        if name in _PATHS:
            return Path(str(value)) if str(value) else None
        if name in _BOOLS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _TRUE | _FALSE:
                raise ValueError(text)
            return text in _TRUE
        kind = _TYPES.get(name, str)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name}: cannot use {value!r}") from None


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; ``overrides`` are command-line flags (None values are ignored)."""
    env = os.environ if environ is None else environ
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or (Path(env["HITL_CONFIG"]) if env.get("HITL_CONFIG") else None)
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        for key, value in raw.items():
            if key not in names:
                raise ConfigError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, value, str(path))
    for name in names:
        env_value = env.get(f"HITL_{name.upper()}")
        if env_value is not None:
            values[name] = _coerce(name, env_value, f"HITL_{name.upper()}")
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value, f"--{key.replace('_', '-')}")
    settings = replace(Settings(), **values)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("tls_cert and tls_key: set both to turn TLS on, or neither")
    if settings.tls_client_ca is not None and settings.tls_cert is None:
        raise ConfigError("tls_client_ca: mutual TLS needs tls_cert and tls_key as well")
    if settings.rate_limit <= 0 or settings.rate_burst < 1:
        raise ConfigError("rate_limit must be positive and rate_burst at least 1")
    if min(settings.http_idle_timeout, settings.http_header_timeout) <= 0:
        raise ConfigError("http_idle_timeout and http_header_timeout must be positive")
    if min(settings.http_max_connections_per_client, settings.http_max_connections) < 0:
        raise ConfigError("http_max_connections(_per_client) must not be negative")
    s = settings
    if min(s.max_concurrent_rpcs, s.max_calls_per_key, s.max_public_streams) < 1:
        raise ConfigError(
            "max_concurrent_rpcs, max_calls_per_key and max_public_streams must be at least 1"
        )
    if s.workers < 0:
        raise ConfigError("workers must not be negative (0: one per CPU)")
    if s.max_deciding < 0:
        raise ConfigError("max_deciding must not be negative (0: no bound)")
    if s.watch_max_seconds <= 0:
        raise ConfigError("watch_max_seconds must be positive")
    for name in ("interval", "timeout", "backoff_base", "backoff_max", "max_age", "keep"):
        if getattr(s, f"outbox_{name}") <= 0:
            raise ConfigError(f"outbox_{name} must be positive")
    _check_notify(s)
    try:
        sso_config(settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from gateway.keys import check_key_settings  # gateway.keys builds on this module

    check_key_settings(settings)
    return settings


def _check_notify(s: Settings) -> None:
    """Raise ConfigError naming the reviewer-notification setting that cannot work."""
    from gateway.notify.reviewers import parse_email_groups
    from gateway.policy.webhook_schema import check_url

    if s.notify_interval <= 0 or not 0 < s.notify_sla_share < 1:
        raise ConfigError("notify_interval must be positive and notify_sla_share between 0 and 1")
    try:
        parse_email_groups(s.notify_email_groups)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        if s.chat_webhook_url:
            check_url(s.chat_webhook_url)
    except ValueError:  # the URL is a credential: not repeated in the message
        raise ConfigError(
            "chat_webhook_url: not an absolute https URL without credentials "
            "(plain http only to a loopback address)"
        ) from None
    if s.public_url and not s.public_url.startswith(("https://", "http://")):
        raise ConfigError(f"public_url: {s.public_url!r} is not an http(s) URL")
    if not 0 < s.smtp_port < 65536:
        raise ConfigError(f"smtp_port: {s.smtp_port} is not a port")
