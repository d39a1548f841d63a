"""Every hook against the running sandbox over real sockets: token flows, headers, reuse, refresh on
revocation, retries through injected faults, fail-fast on wrong credentials."""

from __future__ import annotations

import json

import pytest

from airflow_vendorauth.exceptions import InvalidTokenResponseError, TokenRequestError, VendorApiError
from airflow_vendorauth.hooks.clazar import ClazarHook
from airflow_vendorauth.hooks.kayzen import KayzenHook
from airflow_vendorauth.hooks.kazi import KaziHook
from airflow_vendorauth.hooks.keyavi import KeyaviHook
from airflow_vendorauth.hooks.smartrecruiters import SmartRecruitersHook
from airflow_vendorauth.retry import RetryPolicy
from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=10, initial_wait_seconds=0.02, max_wait_seconds=0.2, retry_after_cap_seconds=0.2)

#: conn_id -> (hook class, vendor, list endpoint, sandbox dataset)
CASES = {
    "kazi_default": (KaziHook, "kazi", "/tagging/v2/expectations", "kazi.expectations"),
    "keyavi_default": (KeyaviHook, "keyavi", "/payloads", "keyavi.payloads"),
    "keyavi_user": (KeyaviHook, "keyavi", "/payloads", "keyavi.payloads"),
    "kayzen_default": (KayzenHook, "kayzen", "/v1/meta/campaigns", "kayzen.campaigns"),
    "smartrecruiters_default": (SmartRecruitersHook, "smartrecruiters", "/jobs", "smartrecruiters.jobs"),
    "clazar_default": (ClazarHook, "clazar", "/listings/", "clazar.listings"),
}


def hook(conn_id: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return CASES[conn_id][0](conn_id, retry_policy=FAST, **kwargs)


@pytest.mark.parametrize("conn_id", CASES)
def test_each_vendor_pages_its_list_with_one_token(
    conn_id: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    _, vendor, endpoint, dataset = CASES[conn_id]
    vendor_sandbox.configure(sizes={dataset: 437})
    records = list(hook(conn_id).paginate(endpoint))
    assert len(records) == 437
    assert len({json.dumps(r, sort_keys=True) for r in records}) == 437
    assert vendor_sandbox.token_requests(vendor) == 1


@pytest.mark.parametrize("conn_id", CASES)
async def test_async_paginate_yields_the_same_records(
    conn_id: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    _, _, endpoint, dataset = CASES[conn_id]
    vendor_sandbox.configure(sizes={dataset: 250})
    h = hook(conn_id)
    sync_records = list(h.paginate(endpoint))
    async_records = [r async for r in h.apaginate(endpoint)]
    await h.aclose()
    assert async_records == sync_records


@pytest.mark.parametrize("conn_id", CASES)
def test_hooks_share_the_token_and_refresh_once_after_revocation(
    conn_id: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    _, vendor, endpoint, _ = CASES[conn_id]
    first, second = hook(conn_id), hook(conn_id)
    first.request("GET", endpoint)
    second.request("GET", endpoint)
    assert vendor_sandbox.token_requests(vendor) == 1
    vendor_sandbox.revoke(vendor)
    first.request("GET", endpoint)
    second.request("GET", endpoint)
    assert vendor_sandbox.token_requests(vendor) == 2
    assert vendor_sandbox.stats()[vendor]["status_401"] == 1


@pytest.mark.parametrize("conn_id", CASES)
def test_paging_survives_injected_faults(
    conn_id: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, vendor, endpoint, dataset = CASES[conn_id]
    env = json.loads(sandbox_connections[f"AIRFLOW_CONN_{conn_id.upper()}"])
    env["extra"]["timeout"] = 1
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(env))
    vendor_sandbox.configure(sizes={dataset: 3000})  # 30+ pages: some faults are certain, not just likely
    vendor_sandbox.add_fault(vendor=vendor, route="token", rate_5xx=0.3)
    vendor_sandbox.add_fault(
        vendor=vendor,
        route="/*",
        rate_429=0.1,
        rate_5xx=0.1,
        rate_drop=0.05,
        rate_slow=0.03,
        slow_seconds=1.5,
        retry_after=0,
    )
    h = hook(conn_id)
    records = list(h.paginate(endpoint))
    assert len(records) == 3000
    assert len({json.dumps(r, sort_keys=True) for r in records}) == 3000
    assert h.api_retries > 0


@pytest.mark.parametrize(
    ("conn_id", "field", "value", "says"),
    [
        ("kazi_default", "password", "wrong-secret-value", "AADSTS7000215"),
        ("keyavi_default", "password", "wrong-secret-value", "AADSTS7000215"),
        ("keyavi_user", "user_password", "wrong-user-password", "AADSTS50126"),
        ("kayzen_default", "password", "wrong-secret-value", "Invalid API Key"),
        ("kayzen_default", "user_password", "wrong-user-password", "Invalid login credentials"),
        ("smartrecruiters_default", "password", "wrong-secret-value", "Bad client credentials"),
        ("clazar_default", "password", "wrong-secret-value", "Invalid client credentials"),
    ],
)
def test_wrong_credentials_fail_fast_with_the_vendors_reason(
    conn_id: str,
    field: str,
    value: str,
    says: str,
    vendor_sandbox: Sandbox,
    sandbox_connections: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, vendor, endpoint, _ = CASES[conn_id]
    env = json.loads(sandbox_connections[f"AIRFLOW_CONN_{conn_id.upper()}"])
    if field == "password":
        env["password"] = value
    else:
        env["extra"][field] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(env))
    with pytest.raises(TokenRequestError) as caught:
        hook(conn_id).request("GET", endpoint)
    assert says in str(caught.value)
    assert value not in str(caught.value)
    assert vendor_sandbox.token_requests(vendor) == 1


def test_kazi_token_without_the_role_gets_401_and_does_not_loop(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.sandbox.identity import KAZI_NO_ROLE_CLIENT

    env = json.loads(sandbox_connections["AIRFLOW_CONN_KAZI_DEFAULT"])
    env["login"] = KAZI_NO_ROLE_CLIENT
    monkeypatch.setenv("AIRFLOW_CONN_KAZI_DEFAULT", json.dumps(env))
    with pytest.raises(VendorApiError, match="lacks the permission") as caught:
        hook("kazi_default").request("GET", "/tagging/v2/expectations")
    assert caught.value.status == 401
    assert vendor_sandbox.token_requests("kazi") == 2
    assert vendor_sandbox.api_requests("kazi") == 2


@pytest.mark.parametrize(
    "mode", ["html", "empty", "no_access_token", "negative_lifetime", "huge_lifetime", "string_lifetime", "bad_jwt"]
)
def test_malformed_token_answers_give_a_clear_error(
    mode: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    vendor_sandbox.malformed("kazi", mode, count=10)
    with pytest.raises(InvalidTokenResponseError) as caught:
        hook("kazi_default").get_token()
    assert "Kazi token endpoint" in str(caught.value)


def test_short_lived_tokens_are_renewed_before_they_expire(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    import time

    vendor_sandbox.configure(lifetimes={"kayzen": 2})
    h = hook("kayzen_default")
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        h.request("GET", "/v1/meta/campaigns")
        time.sleep(0.1)
    stats = vendor_sandbox.stats()["kayzen"]
    assert stats["token_requests"] >= 3
    assert stats.get("status_401", 0) == 0  # renewed proactively, never refused


@pytest.mark.parametrize("conn_id", CASES)
def test_test_connection_against_the_sandbox(conn_id: str, sandbox_connections: dict) -> None:
    ok, message = hook(conn_id).test_connection()
    assert ok, message
