"""The sandbox refuses what each vendor would refuse, and answers in each vendor's exact shape.

Raw httpx here, not our hooks: these tests prove the oracle, independently of the client."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration


@pytest.fixture
def sb(vendor_sandbox: Sandbox) -> Sandbox:
    vendor_sandbox.reset()
    return vendor_sandbox


def claims_of(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def kazi_token(sb: Sandbox, **changes: str) -> httpx.Response:
    c = sb.credentials
    form = {
        "grant_type": "client_credentials",
        "client_id": c.kazi_client_id,
        "client_secret": c.kazi_client_secret,
        "resource": c.kazi_resource,
    }
    form.update(changes)
    tenant = form.pop("tenant", c.kazi_tenant)
    return httpx.post(f"{sb.url}/login/{tenant}/oauth2/token", data={k: v for k, v in form.items() if v})


def keyavi_token(sb: Sandbox, **changes: str) -> httpx.Response:
    c = sb.credentials
    form = {
        "grant_type": "client_credentials",
        "client_id": c.keyavi_client_id,
        "client_secret": c.keyavi_client_secret,
        "scope": f"{c.keyavi_app_id_uri}/.default",
    }
    form.update(changes)
    return httpx.post(f"{sb.url}/login/{c.keyavi_tenant}/oauth2/v2.0/token", data=form)


def test_kazi_answers_azure_v1_shape_with_string_lifetimes_and_a_jwt(sb: Sandbox) -> None:
    body = kazi_token(sb).json()
    assert set(body) == {
        "token_type",
        "expires_in",
        "ext_expires_in",
        "expires_on",
        "not_before",
        "resource",
        "access_token",
    }
    for name in ("expires_in", "ext_expires_in", "expires_on", "not_before"):
        assert isinstance(body[name], str)
    claims = claims_of(body["access_token"])
    assert abs(claims["exp"] - int(body["expires_on"])) <= 1
    assert "read:expectations" in claims["roles"]


@pytest.mark.parametrize(
    ("changes", "status", "error", "code"),
    [
        ({"client_secret": "wrong-secret"}, 401, "invalid_client", 7000215),
        ({"client_id": "unknown-app"}, 400, "unauthorized_client", 700016),
        ({"tenant": "no-such-tenant"}, 400, "invalid_request", 90002),
        ({"resource": ""}, 400, "invalid_request", 900144),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_kazi_refuses_like_azure_ad(sb: Sandbox, changes: dict, status: int, error: str, code: int) -> None:
    response = kazi_token(sb, **changes)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}")


def test_kazi_token_request_must_be_a_form(sb: Sandbox) -> None:
    c = sb.credentials
    response = httpx.post(f"{sb.url}/login/{c.kazi_tenant}/oauth2/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400


def test_keyavi_scope_rules_per_grant(sb: Sandbox) -> None:
    c = sb.credentials
    assert keyavi_token(sb).status_code == 200
    assert isinstance(keyavi_token(sb).json()["expires_in"], int)
    wrong = keyavi_token(sb, scope=f"{c.keyavi_app_id_uri}/access_as_user")
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_scope")
    user = {"grant_type": "password", "username": c.keyavi_username, "password": c.keyavi_password}
    assert keyavi_token(sb, **user, scope=f"{c.keyavi_app_id_uri}/access_as_user").status_code == 200
    assert keyavi_token(sb, **user, scope=f"{c.keyavi_app_id_uri}/.default").json()["error"] == "invalid_scope"
    bad_password = keyavi_token(sb, **{**user, "password": "nope"}, scope=f"{c.keyavi_app_id_uri}/access_as_user")
    assert bad_password.json()["error_codes"] == [50126]


def test_keyavi_accepts_the_seeds_own_scope_without_api_prefix(sb: Sandbox) -> None:
    """The seed's example scope is ``550e8400-.../access_as_user`` (no ``api://``), and Entra accepts an
    API's application ID in place of its application ID URI."""
    c = sb.credentials
    user = {"grant_type": "password", "username": c.keyavi_username, "password": c.keyavi_password}
    guid = c.keyavi_app_id_uri.removeprefix("api://")
    assert guid == "550e8400-e29b-41d4-a716-446655440000"
    assert keyavi_token(sb, **user, scope=f"{guid}/access_as_user").status_code == 200
    assert keyavi_token(sb, scope=f"{guid}/.default").status_code == 200
    other = keyavi_token(sb, **user, scope="00000000-e29b-41d4-a716-446655440000/access_as_user")
    assert (other.status_code, other.json()["error"]) == (400, "invalid_scope")


def test_keyavi_app_token_call_without_caller_id_is_refused(sb: Sandbox) -> None:
    c = sb.credentials
    token = keyavi_token(sb).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": c.keyavi_subscription_key}
    assert httpx.get(f"{sb.url}/keyavi/api/payloads", headers=headers).status_code == 400
    ok = httpx.get(f"{sb.url}/keyavi/api/payloads", headers={**headers, "x-api-caller-id": c.keyavi_caller_id})
    assert ok.status_code == 200
    assert (
        httpx.get(
            f"{sb.url}/keyavi/api/payloads", headers={"Authorization": f"Bearer {token}", "x-api-caller-id": "x"}
        ).status_code
        == 401
    )


def test_keyavi_filters_sorts_and_pages(sb: Sandbox) -> None:
    c = sb.credentials
    token = keyavi_token(sb).json()["access_token"]
    headers = {
        "Authorization": f"Bearer {token}",
        "Ocp-Apim-Subscription-Key": c.keyavi_subscription_key,
        "x-api-caller-id": "a@b.c",
    }
    body = httpx.get(
        f"{sb.url}/keyavi/api/payloads",
        params={"status": "shared", "sort": "-createdAt", "pageSize": 5},
        headers=headers,
    ).json()
    assert all(p["status"] == "shared" for p in body["data"])
    created = [p["createdAt"] for p in body["data"]]
    assert created == sorted(created, reverse=True)
    assert body["pagination"] == {"totalRecords": 100, "pageSize": 5, "itemsInPage": 5, "page": 1}


def test_kayzen_requires_the_basic_header_and_a_form(sb: Sandbox) -> None:
    c = sb.credentials
    url = f"{sb.url}/kayzen/v1/authentication/token"
    form = {"grant_type": "password", "username": c.kayzen_username, "password": c.kayzen_password}
    no_basic = httpx.post(url, data=form)
    assert (no_basic.status_code, no_basic.json()["message"]) == (401, "Invalid API Key")
    auth = (c.kayzen_api_key, c.kayzen_api_secret)
    wrong_user = httpx.post(url, data={**form, "password": "nope"}, auth=auth)
    assert (wrong_user.status_code, wrong_user.json()["message"]) == (401, "Invalid login credentials")
    good = httpx.post(url, data=form, auth=auth).json()
    assert isinstance(good["expires_in"], str) and good["expires_in"] == "1799" and good["scope"] == ""


def test_smartrecruiters_answers_lower_case_bearer(sb: Sandbox) -> None:
    c = sb.credentials
    body = httpx.post(
        f"{sb.url}/smartrecruiters/identity/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": c.smartrecruiters_client_id,
            "client_secret": c.smartrecruiters_client_secret,
        },
    ).json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 1799


def test_clazar_refuses_a_form_and_accepts_json(sb: Sandbox) -> None:
    c = sb.credentials
    url = f"{sb.url}/clazar/authenticate/"
    creds = {"client_id": c.clazar_client_id, "client_secret": c.clazar_client_secret}
    assert httpx.post(url, data=creds).status_code == 415
    body = httpx.post(url, json=creds).json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86400


def test_tokens_expire_by_their_configured_lifetime(sb: Sandbox) -> None:
    sb.configure(lifetimes={"clazar": 1})
    c = sb.credentials
    token = httpx.post(
        f"{sb.url}/clazar/authenticate/",
        json={"client_id": c.clazar_client_id, "client_secret": c.clazar_client_secret},
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{sb.url}/clazar/listings/", headers=headers).status_code == 200
    time.sleep(1.2)
    assert httpx.get(f"{sb.url}/clazar/listings/", headers=headers).status_code == 401


def test_faults_and_counters(sb: Sandbox) -> None:
    sb.add_fault(vendor="clazar", route="/listings/", rate_429=1.0, retry_after=7)
    response = httpx.get(f"{sb.url}/clazar/listings/")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    sb.clear_faults()
    sb.add_fault(vendor="clazar", rate_drop=1.0)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{sb.url}/clazar/listings/")
    stats = sb.stats()["clazar"]
    assert stats["api_requests"] == 2 and stats["status_429"] == 1 and stats["fault_drop"] == 1


def test_large_data_sets_are_generated_on_demand(sb: Sandbox) -> None:
    sb.configure(sizes={"kazi.expectations": 1_000_000})
    c = sb.credentials
    token = kazi_token(sb).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": c.kazi_subscription_key}
    started = time.monotonic()
    last = httpx.get(
        f"{sb.url}/kazi/tagging/v2/expectations", params={"page": 10_000, "pageSize": 100}, headers=headers
    ).json()
    assert time.monotonic() - started < 5
    assert last["data"][-1]["id"] == "exp-00999999"
    assert last["pagination"]["totalAmount"] == 1_000_000
    again = httpx.get(
        f"{sb.url}/kazi/tagging/v2/expectations", params={"page": 10_000, "pageSize": 100}, headers=headers
    ).json()
    assert again == last
