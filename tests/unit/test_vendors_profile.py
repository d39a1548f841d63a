"""Every connection field, missing, empty, mistyped or invalid, fails before any network call with an
error that names the connection, the field and the fix."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.exceptions import ConnectionConfigError
from tests.unit.fakes import hook_for, set_connection


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a network call was made: {request.url}")


def error_for(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> ConnectionConfigError:
    set_connection(monkeypatch, name, **changes)
    hook = hook_for(name, transport=httpx.MockTransport(no_network))
    with pytest.raises(ConnectionConfigError) as caught:
        hook.request("GET", "/a")
    assert repr(name) in str(caught.value)
    assert "Fix:" in str(caught.value)
    return caught.value


@pytest.mark.parametrize(
    ("name", "changes", "field"),
    [
        ("kazi", {"host": None}, "host"),
        ("kazi", {"host": ""}, "host"),
        ("keyavi", {"host": None}, "host"),
        ("kazi", {"login": None}, "login"),
        ("kayzen", {"login": "  "}, "login"),
        ("smartrecruiters", {"password": None}, "password"),
        ("clazar", {"password": ""}, "password"),
        ("kazi", {"extra": {"resource": None}}, "resource"),
        ("kazi", {"extra": {"subscription_key": ""}}, "subscription_api_key"),
        ("kazi", {"extra": {"tenant_id": None}}, "tenant_id"),
        ("keyavi", {"extra": {"scope": None}}, "scope"),
        ("keyavi", {"extra": {"subscription_key": None}}, "subscription_api_key"),
        ("keyavi", {"extra": {"caller_id": None}}, "caller_id"),
        ("keyavi_user", {"extra": {"username": None}}, "username"),
        ("keyavi_user", {"extra": {"user_password": None}}, "user_password"),
        ("kayzen", {"extra": {"username": None}}, "username"),
        ("kayzen", {"extra": {"user_password": ""}}, "user_password"),
    ],
)
def test_missing_or_empty_required_fields(
    monkeypatch: pytest.MonkeyPatch, name: str, changes: dict, field: str
) -> None:
    assert error_for(monkeypatch, name, **changes).field == field


@pytest.mark.parametrize(
    ("name", "changes", "field", "says"),
    [
        ("keyavi", {"extra": {"scope": "api://x/access_as_user"}}, "scope", "/.default"),
        ("keyavi_user", {"extra": {"scope": "api://x/.default"}}, "scope", "/access_as_user"),
        ("keyavi", {"extra": {"grant_type": "implicit"}}, "grant_type", "client_credentials, password"),
        ("kazi", {"host": "api.kazi.be"}, "host", "no scheme"),
        ("kazi", {"host": "http://api.kazi.be"}, "host", "plain http"),
        ("keyavi", {"host": "http://localhost:1@evil.example/"}, "host", "plain http"),
        ("keyavi", {"host": "http://127.0.0.1.evil.example/"}, "host", "plain http"),
        ("kazi", {"host": "ftp://api.kazi.be"}, "host", "not an http"),
        ("kazi", {"extra": {"token_url": "http://idp.example/token"}}, "auth_url", "plain http"),
        ("kazi", {"host": "https://api.kazi.be:notaport"}, "host", "not a valid URL"),
        ("clazar", {"extra": {"timeout": "soon"}}, "timeout", "not a number"),
        ("clazar", {"extra": {"timeout": -1}}, "timeout", "out of range"),
        ("clazar", {"extra": {"timeout": True}}, "timeout", "not a number"),
        ("clazar", {"extra": {"max_retries": 2.5}}, "max_retries", "whole number"),
        ("clazar", {"extra": {"max_retries": -1}}, "max_retries", "out of range"),
        ("clazar", {"extra": {"verify": "maybe"}}, "verify", "neither true/false nor a CA bundle"),
        ("clazar", {"extra": {"token_cache": "memcached://x"}}, "cache", "Redis URL"),
        ("clazar", {"extra": {"token_cache": "redis://"}}, "cache", "Redis URL"),
        ("kazi", {"extra": {"resource": 42}}, "resource", "not text"),
        ("smartrecruiters", {"conn_type": "clazar"}, "conn_type", "this hook is for"),
    ],
)
def test_invalid_values(monkeypatch: pytest.MonkeyPatch, name: str, changes: dict, field: str, says: str) -> None:
    error = error_for(monkeypatch, name, **changes)
    assert error.field == field
    assert says in str(error)


def test_caller_id_is_not_needed_with_the_password_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "keyavi_user", extra={"caller_id": None})
    assert hook_for("keyavi_user").settings.extra("grant_type") == "password"


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "http://127.5.6.7", "http://localhost:9", "http://[::1]:9"])
def test_plain_http_is_allowed_on_loopback_only(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_connection(monkeypatch, "kazi", host=host)
    assert hook_for("kazi").settings.base_url == host


def test_ui_strings_are_coerced_and_old_prefixed_extras_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        "kazi",
        extra={
            "timeout": "12.5",
            "max_retries": "2",
            "verify": "false",
            "resource": None,
            "extra__kazi__resource": "r-1",
        },
    )
    settings = hook_for("kazi").settings
    assert (settings.timeout, settings.max_retries, settings.verify, settings.extra("resource")) == (
        12.5,
        2,
        False,
        "r-1",
    )


def test_defaults_point_at_the_real_vendors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, host in [
        ("kayzen", "https://api.kayzen.io"),
        ("smartrecruiters", "https://api.smartrecruiters.com"),
        ("clazar", "https://api.clazar.io"),
    ]:
        set_connection(monkeypatch, name)
        assert hook_for(name).settings.base_url == host
