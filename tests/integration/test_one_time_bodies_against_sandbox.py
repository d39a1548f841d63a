"""A body that can be read only once, refused with a 401 by the sandbox's real API (its token revoked),
through hooks from an Airflow Connection: no StreamConsumed, no second token request, no refresh token
spent on a rotating connection, and an error that names the connection and why (issue 31, item 6)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_vendorauth.exceptions import VendorApiError
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection

pytestmark = pytest.mark.integration


def upload() -> Iterator[bytes]:
    yield b'{"name": "report",'
    yield b' "payload": "a stream"}'


def test_a_generator_body_refused_with_401_is_not_resent_and_no_token_is_fetched(
    vendor_sandbox: Sandbox, sandbox_connections: dict  # type: ignore[type-arg]
) -> None:
    from airflow_vendorauth.hooks.base import hook_for_connection

    hook = hook_for_connection("keyavi_default")
    hook.request("POST", "/payloads/protect-remote/", json={"name": "first"})
    assert vendor_sandbox.token_requests("keyavi") == 1
    vendor_sandbox.revoke("keyavi")  # the token the hook holds is now refused: 401 once
    with pytest.raises(VendorApiError) as refused:
        hook.request("POST", "/payloads/protect-remote/", content=upload())
    said = str(refused.value)
    assert refused.value.status == 401 and "'keyavi_default'" in said
    assert "not sent again with a new token" in said and "read only once" in said
    assert vendor_sandbox.token_requests("keyavi") == 1  # no token fetched for a request that cannot use it
    assert vendor_sandbox.stats()["keyavi"]["status_401"] == 1  # and nothing sent twice
    hook.request("POST", "/payloads/protect-remote/", content=b'{"name": "again"}')  # the next call: a new token
    assert vendor_sandbox.token_requests("keyavi") == 2


def test_a_rotating_connection_spends_no_refresh_token_on_it(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch  # type: ignore[type-arg]
) -> None:
    from airflow_vendorauth.hooks.base import hook_for_connection

    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token", token_cache="memory")
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_ROTATING", json.dumps(conn))
    hook = hook_for_connection("oauth2_rotating")
    hook.request("GET", "/items", params={"per_page": 1})  # the seed is spent once: a token and the next refresh token
    assert vendor_sandbox.token_requests("oauth2") == 1
    vendor_sandbox.revoke("oauth2")
    with pytest.raises(VendorApiError, match="not sent again with a new token"):
        hook.request("GET", "/items", params={"per_page": 1}, content=upload())
    assert vendor_sandbox.token_requests("oauth2") == 1  # no rotation spent
    assert hook.request("GET", "/items", params={"per_page": 1}).status_code == 200  # the chain still holds
    stats = vendor_sandbox.stats()["oauth2"]
    assert stats["token_requests"] == 2 and stats.get("refresh_reuse", 0) == 0 and stats.get("status_400", 0) == 0
