"""The generic ``oauth2`` type and certificate credentials against the sandbox's authorization servers:
every grant with every client authentication style, refusals reported by Test with the server's own
reason and never retried, and Kazi and Keyavi with a certificate instead of a secret."""

from __future__ import annotations

import json

import pytest

from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.hooks.keyavi import KeyaviHook
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection, sandbox_connections
from airflow_vendorauth.sandbox.state import sandbox_key
from tests.keys import unregistered_key

pytestmark = pytest.mark.integration

GRANTS = ["client_credentials", "password", "refresh_token"]
STYLES = ["client_secret_basic", "client_secret_post", "client_secret_json", "private_key_jwt", "none"]


def use(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def oauth2(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, grant: str, style: str, **extra: object) -> OAuth2Hook:
    conn = oauth2_connection(sandbox.url, grant_type=grant, client_auth=style, **extra)
    if grant == "refresh_token" and "refresh_token" not in extra:
        conn["extra"]["refresh_token"] = sandbox.seed_refresh_token(conn["login"])
    use(monkeypatch, "oauth2_default", conn)
    return OAuth2Hook()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("grant", GRANTS)
def test_every_grant_with_every_client_authentication_calls_the_api(
    grant: str, style: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = oauth2(vendor_sandbox, monkeypatch, grant, style)
    records = list(hook.paginate("/items"))  # the paging comes from the connection's pagination extra
    assert len(records) == 230 and len({r["id"] for r in records}) == 230
    assert hook.get_token().scopes == ("items.read",)
    assert vendor_sandbox.token_requests("oauth2") == 1
    stats = vendor_sandbox.stats()["oauth2"]
    assert stats.get("status_401", 0) == 0 and stats["api_requests"] == 5


def test_the_token_endpoint_is_discovered_from_the_issuer(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.auth.discovery import forget_discoveries

    forget_discoveries()
    hook = OAuth2Hook("oauth2_default")  # the sandbox's oauth2_default names an issuer, not a token URL
    assert hook.settings.token_url is None and hook.settings.issuer == f"{vendor_sandbox.url}/oauth2"
    hook.request("GET", "/items")
    assert hook.client.provider.endpoint.url() == f"{vendor_sandbox.url}/oauth2/token"


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("wrong secret", "invalid_client: Client authentication failed: wrong client secret"),
        ("wrong key", "invalid_client: Client assertion refused (unknown_key)"),
        ("wrong audience", "invalid_client: Client assertion refused (audience)"),
        ("spent refresh token", "invalid_grant: The refresh token was already used (rotated): reuse detected"),
    ],
)
def test_refusals_fail_test_with_the_servers_reason_before_any_retry(
    case: str, says: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case == "wrong secret":
        conn = oauth2_connection(vendor_sandbox.url, client_auth="client_secret_basic")
        use(monkeypatch, "oauth2_default", {**conn, "password": "not-the-secret"})
    elif case == "wrong key":
        conn = oauth2_connection(vendor_sandbox.url, client_auth="private_key_jwt")
        key, certificate = unregistered_key()
        conn["extra"] |= {"private_key": key, "certificate": certificate, "key_id": None}
        use(monkeypatch, "oauth2_default", conn)
    elif case == "wrong audience":  # the server believes its token endpoint is another URL (a proxy)
        vendor_sandbox.configure(assertion_audience="https://idp.example/oauth2/token")
        use(monkeypatch, "oauth2_default", oauth2_connection(vendor_sandbox.url, client_auth="private_key_jwt"))
    else:
        conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token")
        seed = vendor_sandbox.seed_refresh_token(conn["login"])
        conn["extra"]["refresh_token"] = seed
        use(monkeypatch, "oauth2_default", conn)
        OAuth2Hook().get_token()  # spends the seed (a process elsewhere did this)
        from airflow_vendorauth.sandbox.process_state import forget_process_state

        forget_process_state()  # a fresh process, which only knows the seed
        ok, message = OAuth2Hook().test_connection()  # cache: memory: Test checks without spending
        assert ok and "not spent" in message, message
        assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0
        with pytest.raises(TokenRequestError) as refused:  # a task would spend it: refused, re-seed
            OAuth2Hook().get_token()
        message = str(refused.value)
        assert says in message and "spent by another process or revoked" in message and "Fix:" in message
        assert vendor_sandbox.stats()["oauth2"]["refresh_reuse"] == 1
        return
    before = vendor_sandbox.token_requests("oauth2")
    ok, message = OAuth2Hook().test_connection()
    assert ok is False
    assert says in message, message
    assert "Fix:" in message and "oauth2_default" not in message
    assert vendor_sandbox.token_requests("oauth2") == before + 1  # refused once, never retried


def test_insufficient_scope_is_reported_with_the_scope_needed(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.exceptions import VendorApiError

    hook = oauth2(vendor_sandbox, monkeypatch, "client_credentials", "client_secret_basic")
    with pytest.raises(VendorApiError) as refused:
        hook.request("GET", "/admin")
    assert refused.value.status == 403 and "insufficient_scope" in str(refused.value)
    assert "items.write" in str(refused.value)


@pytest.mark.parametrize("hook_class", [KaziHook, KeyaviHook])
def test_kazi_and_keyavi_work_with_a_certificate_and_no_secret(
    hook_class: type, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor = hook_class.conn_type
    conn = sandbox_connections_for(vendor_sandbox)[f"{vendor}_default"]
    conn = {**conn, "password": None}
    key, certificate = sandbox_key("rsa")
    conn["extra"] = {**conn["extra"], "client_auth": "private_key_jwt", "private_key": key, "certificate": certificate}
    use(monkeypatch, f"{vendor}_default", conn)
    hook = hook_class(f"{vendor}_default")
    endpoint = "/tagging/v2/expectations" if vendor == "kazi" else "/payloads"
    assert len(list(hook.paginate(endpoint))) > 0
    ok, message = hook.test_connection()
    assert ok, message
    assert vendor_sandbox.token_requests(vendor) == 2


def test_an_unregistered_certificate_is_refused_with_entras_code(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = sandbox_connections_for(vendor_sandbox)["kazi_certificate"]
    key, certificate = unregistered_key()
    conn["extra"] |= {"private_key": key, "certificate": certificate}
    use(monkeypatch, "kazi_certificate", conn)
    ok, message = KaziHook("kazi_certificate").test_connection()
    assert ok is False and "AADSTS700027" in message and "Trace ID" not in message
    assert vendor_sandbox.token_requests("kazi") == 1


def sandbox_connections_for(sandbox: Sandbox) -> dict:
    return sandbox_connections(sandbox.url)
