"""Settings: defaults < YAML file < HITL_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, Settings, load_settings


def test_defaults_need_no_configuration() -> None:
    """With nothing set, the gateway listens on loopback and keeps data under ./var."""
    s = load_settings(environ={})
    assert s == Settings()
    assert s.grpc_host == "127.0.0.1" and s.grpc_port == 50051 and s.http_port == 8080
    assert s.store_url == "sqlite:///var/gateway.db"


def test_precedence(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("grpc_port: 1000\nhttp_port: 2000\ndata_dir: /srv/a\n")
    s = load_settings(
        config_file=cfg,
        environ={"HITL_HTTP_PORT": "3000", "HITL_DATA_DIR": "/srv/b"},
        overrides={"data_dir": Path("/srv/c"), "grpc_port": None},
    )
    assert (s.grpc_port, s.http_port, s.data_dir) == (1000, 3000, Path("/srv/c"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("grpc_prot: 1\n", "unknown setting 'grpc_prot'"), ("grpc_port: many\n", "grpc_port")],
)
def test_bad_config_file_is_named(tmp_path: Path, text: str, fragment: str) -> None:
    """A bad settings file is refused naming the file and the setting."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as err:
        load_settings(config_file=cfg, environ={})
    assert str(cfg) in str(err.value)


def test_bad_environment_value_is_named() -> None:
    """A non-numeric port in the environment names the variable."""
    with pytest.raises(ConfigError, match="HITL_GRPC_PORT"):
        load_settings(environ={"HITL_GRPC_PORT": "x"})


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"HITL_TLS_CERT": "/a.crt"}, "tls_cert and tls_key"),
        ({"HITL_TLS_CLIENT_CA": "/ca.pem"}, "tls_client_ca"),
        ({"HITL_ALLOW_INSECURE": "perhaps"}, "HITL_ALLOW_INSECURE"),
        ({"HITL_RATE_LIMIT": "0"}, "rate_limit"),
    ],
)
def test_inconsistent_security_settings_are_refused(environ: dict[str, str], fragment: str) -> None:
    """Half a TLS configuration, an unreadable boolean or a zero rate limit stop start-up."""
    with pytest.raises(ConfigError, match=fragment):
        load_settings(environ=environ)


def test_tls_and_boolean_settings_from_environment() -> None:
    """TLS paths and yes/no switches are read from HITL_* variables."""
    s = load_settings(
        environ={"HITL_TLS_CERT": "/c.pem", "HITL_TLS_KEY": "/k.pem", "HITL_ALLOW_INSECURE": "yes"}
    )
    assert (s.tls_cert, s.tls_key, s.allow_insecure) == (Path("/c.pem"), Path("/k.pem"), True)


def test_http_connection_limits_come_from_the_environment_and_are_checked() -> None:
    """HTTP timeouts and connection caps are read from HITL_*; a zero timeout is refused."""
    s = load_settings(
        environ={"HITL_HTTP_IDLE_TIMEOUT": "2.5", "HITL_HTTP_MAX_CONNECTIONS_PER_CLIENT": "8"}
    )
    assert (s.http_idle_timeout, s.http_max_connections_per_client) == (2.5, 8)
    with pytest.raises(ConfigError, match="http_header_timeout"):
        load_settings(environ={"HITL_HTTP_HEADER_TIMEOUT": "0"})
