"""A misspelt field that decides how credentials are sent or kept is refused before any request, naming
the connection, the key and the field meant; other unknown extras keep their warning (issue 31, item 9;
issue 32, item 11: ``tennant_id``)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.fields import ExtraField
from airflow_vendorauth.vendors.profile import RawConnection
from tests.keys import unregistered_key
from tests.unit.fakes import CONNECTIONS

OAUTH2: dict[str, Any] = {
    "conn_type": "oauth2",
    "host": "https://api.example/v1",
    "login": "client",
    "password": "secret",
    "extra": {"auth_url": "https://idp.example/oauth2/token"},
}


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a network call was made: {request.url}")


def connection(base: dict[str, Any], drop: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    conn = json.loads(json.dumps(base))
    conn["extra"] = {k: v for k, v in conn.get("extra", {}).items() if k not in drop} | extra
    return conn


def resolve(conn: dict[str, Any]) -> Any:
    raw = RawConnection("misspelt", conn["conn_type"], conn.get("host"), conn["login"], conn["password"], None, conn["extra"])
    return VENDORS[conn["conn_type"]].resolve(raw)


KEY, CERTIFICATE = unregistered_key()
ROTATING = connection(OAUTH2, grant_type="refresh_token", refresh_token="rt-0")

CASES = [
    # (base connection, keys to drop from it, misspelt key, value, the field meant)
    (OAUTH2, (), "DPoP", True, "dpop"),
    (ROTATING, (), "token_cahce", "redis://redis:6379/0", "cache"),
    (OAUTH2, (), "Token-Cache", "file", "cache"),
    (OAUTH2, (), "clientAuth", "client_secret_post", "client_auth"),
    (OAUTH2, (), "grant-type", "password", "grant_type"),
    (OAUTH2, (), "scopes", "items.read", "scope"),
    (OAUTH2, (), "resources", "https://api.example/", "resource"),
    (OAUTH2, (), "audiance", "https://api.example", "audience"),
    (OAUTH2, (), "privatekey", KEY, "private_key"),
    (OAUTH2, (), "certficate", CERTIFICATE, "certificate"),
    (OAUTH2, (), "client_certifcate", CERTIFICATE, "client_certificate"),
    (OAUTH2, (), "client_privat_key", KEY, "client_private_key"),
    (connection(OAUTH2, grant_type="refresh_token"), (), "refresh-token", "rt-0", "refresh_token"),
    (OAUTH2, ("auth_url",), "isuer", "https://idp.example", "issuer"),
    (OAUTH2, ("auth_url",), "auth_uri", "https://idp.example/token", "auth_url"),
    (OAUTH2, (), "secretheaders", {"X-Api-Key": "header-secret-777"}, "secret_headers"),
    (CONNECTIONS["kazi"], ("tenant_id",), "tennant_id", "tenant-1", "tenant_id"),
    (CONNECTIONS["kazi"], ("resource",), "Resource", "api://x", "resource"),
    (CONNECTIONS["kazi"], (), "client-auth", "private_key_jwt", "client_auth"),
    (CONNECTIONS["keyavi"], ("tenant_id",), "tennant_id", "tenant-2", "tenant_id"),
    (CONNECTIONS["keyavi"], (), "grantType", "password", "grant_type"),
    (CONNECTIONS["keyavi"], ("caller_id",), "callerid", "etl@example.com", "caller_id"),
    (CONNECTIONS["kayzen"], (), "user_name", "ana@example.com", "username"),
    (CONNECTIONS["clazar"], (), "tokencahce", "file", "cache"),
]


@pytest.mark.parametrize(("base", "drop", "key", "value", "meant"), CASES, ids=[c[2] + "-" + c[0]["conn_type"] for c in CASES])
def test_a_misspelt_credential_field_is_refused_naming_the_key_and_the_field(
    base: dict[str, Any], drop: tuple[str, ...], key: str, value: Any, meant: str
) -> None:
    with pytest.raises(ConnectionConfigError) as refused:
        resolve(connection(base, drop, **{key: value}))
    said = str(refused.value)
    assert refused.value.field == key and "'misspelt'" in said
    assert f"did you mean {meant} (" in said
    assert f"rename the extra {key} to {meant}" in said or f"remove the extra {key}, keeping {meant}" in said
    spec = next(f for f in VENDORS[base["conn_type"]].all_fields if f.name == meant)
    if spec.secret:  # a secret's value is never shown
        secret = next(iter(value.values())) if isinstance(value, dict) else value[40:80] if len(value) > 80 else value
        assert secret not in said


@pytest.mark.parametrize("base", [CONNECTIONS["kazi"], CONNECTIONS["keyavi"]], ids=["kazi", "keyavi"])
def test_tennant_id_names_the_key_found_and_says_the_tenant_is_missing(base: dict[str, Any]) -> None:
    with pytest.raises(ConnectionConfigError) as refused:
        resolve(connection(base, ("tenant_id",), tennant_id="tenant-1"))
    assert refused.value.summary == (
        f"Field 'tennant_id' is not an extra of {VENDORS[base['conn_type']].display_name} connections; did you mean "
        "tenant_id (Tenant ID)? Without it, tenant_id, which this connection needs, is missing. Fix: rename the extra "
        "tennant_id to tenant_id"
    )


def test_without_a_near_miss_a_missing_tenant_says_so() -> None:
    with pytest.raises(ConnectionConfigError, match=r"Tenant ID \(tenant_id\) is missing \(it builds the token URL"):
        resolve(connection(CONNECTIONS["kazi"], ("tenant_id",)))
    assert resolve(connection(CONNECTIONS["kazi"], ("tenant_id",), auth_url="https://login.example/t/oauth2/token"))


def test_a_second_spelling_beside_the_field_is_refused_too() -> None:
    with pytest.raises(ConnectionConfigError, match="It and scope are both set") as refused:
        resolve(connection(OAUTH2, scope="items.read", scopes="items.write"))
    assert "remove the extra scopes, keeping scope" in str(refused.value)


def test_a_secret_value_is_never_shown() -> None:
    with pytest.raises(ConnectionConfigError) as refused:
        resolve(connection(ROTATING, **{"Refresh_Token": "rt-secret-value-123"}))
    assert "rt-secret-value-123" not in str(refused.value) and "rt-0" not in str(refused.value)


@pytest.mark.parametrize("key", ["timout", "max_retry", "paginaton", "description", "source", "cached_at", "zzz"])
def test_other_unknown_extras_keep_warning(key: str) -> None:
    settings = resolve(connection(OAUTH2, **{key: "x"}))
    assert settings.unknown_extras is not None and key in settings.unknown_extras


@pytest.mark.parametrize("conn_type", list(VENDORS))
def test_no_field_of_another_type_is_refused_as_a_misspelling(conn_type: str) -> None:
    base = OAUTH2 if conn_type == "oauth2" else CONNECTIONS[conn_type]
    own = {n for spec in VENDORS[conn_type].all_fields for n in (spec.name, *spec.aliases)}
    others = sorted({n for p in VENDORS.values() for spec in p.all_fields for n in (spec.name, *spec.aliases)} - own)
    for name in others:
        settings = resolve(connection(base, **{name: "x"}))
        assert settings.unknown_extras is not None and name in settings.unknown_extras


def test_a_field_of_another_type_is_not_taken_for_a_misspelling_even_when_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a vendor to declare ``scopes``, an oauth2 connection carrying it would be warned, not refused."""
    import dataclasses

    clazar = VENDORS["clazar"]
    monkeypatch.setitem(VENDORS, "clazar", dataclasses.replace(clazar, fields=(ExtraField("scopes", "Scopes", "x"),)))
    settings = resolve(connection(OAUTH2, scopes="items.read"))
    assert settings.unknown_extras is not None and "scopes" in settings.unknown_extras


def test_the_test_button_refuses_a_misspelt_field_through_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

    monkeypatch.setenv("AIRFLOW_CONN_MISSPELT", json.dumps(connection(ROTATING, token_cahce="redis://redis:6379/0")))
    ok, message = OAuth2Hook("misspelt", transport=httpx.MockTransport(no_network)).test_connection()
    assert not ok
    assert message.startswith("Field 'token_cahce' is not an extra of OAuth 2.0 connections; did you mean cache")
    assert "rename the extra token_cahce to cache" in message
