"""Trusted-header SSO rules: which peers are believed and how groups become a role."""

from __future__ import annotations

import pytest

from gateway.core.sso import SsoConfig, TrustedHeaderSso
from gateway.errors import InvalidInput, PermissionDenied
from gateway.types import Role

MAP = "hitl-admins=admin, senior=senior, reviewers=reviewer"


def _sso(proxies: str = "10.0.0.0/8, ::1") -> TrustedHeaderSso:
    return TrustedHeaderSso(SsoConfig.parse("X-Forwarded-User", "X-Forwarded-Groups", MAP, proxies))


def test_first_mapped_group_gives_the_role_and_groups_pass_through() -> None:
    """Role from the role map's order, not the header's; unusable group names are dropped."""
    account = _sso().account_for("10.1.2.3", " ann ", "reviewers, senior,cn=x;y, senior")
    assert account is not None
    assert (account.name, account.role) == ("ann", Role.SENIOR)
    assert account.groups == ("reviewers", "senior")


def test_ipv6_proxy_is_trusted() -> None:
    """Proxy addresses may be IPv6."""
    assert _sso().account_for("::1", "ann", "reviewers") is not None


@pytest.mark.parametrize("peer", ["192.168.0.1", "", "not-an-ip", "11.0.0.1"])
def test_headers_from_other_peers_are_refused(peer: str) -> None:
    """A user or groups header from outside the trusted proxies is refused, never believed."""
    with pytest.raises(PermissionDenied, match="trusted proxy"):
        _sso().account_for(peer, "ann", "hitl-admins")
    with pytest.raises(PermissionDenied):
        _sso().account_for(peer, None, "hitl-admins")


def test_without_headers_there_is_no_sso_account() -> None:
    """No identity headers: password sign-in applies, from any peer."""
    assert _sso().account_for("192.168.0.1", None, None) is None
    assert _sso().account_for("10.0.0.1", None, "reviewers") is None


def test_sso_off_ignores_everything() -> None:
    """With no user header configured, the headers mean nothing, from anywhere."""
    off = TrustedHeaderSso(SsoConfig.parse("", "X-Forwarded-Groups", "", ""))
    assert off.account_for("192.168.0.1", "ann", "hitl-admins") is None


def test_bad_name_and_unmapped_groups_are_refused() -> None:
    """A user header that is no account name names the header; no mapped group: refused."""
    with pytest.raises(InvalidInput) as err:
        _sso().account_for("10.0.0.1", "a b", "reviewers")
    assert err.value.field == "x-forwarded-user"
    with pytest.raises(PermissionDenied, match="no group"):
        _sso().account_for("10.0.0.1", "ann", "")


@pytest.mark.parametrize(
    ("role_map", "proxies", "message"),
    [
        ("reviewers=reviewer", "", "sso_trusted_proxies: SSO needs"),
        ("reviewers=reviewer", "10.0.0.300", "sso_trusted_proxies: '10.0.0.300'"),
        ("", "10.0.0.1", "sso_role_map: SSO needs"),
        ("reviewers", "10.0.0.1", "sso_role_map: 'reviewers': expected group=role"),
        ("reviewers=boss", "10.0.0.1", "sso_role_map: 'reviewers=boss': role must be"),
        ("a'b=admin", "10.0.0.1", "sso_role_map"),
    ],
)
def test_bad_settings_name_the_setting(role_map: str, proxies: str, message: str) -> None:
    """Each unusable SSO setting is refused with the setting named."""
    with pytest.raises(ValueError, match=message):
        SsoConfig.parse("X-User", "X-Groups", role_map, proxies)
