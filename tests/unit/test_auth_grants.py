"""Each vendor's token request and API headers, exactly as its seed document shows them."""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.fakes import (
    CALLER_ID,
    SECRET,
    SUBSCRIPTION_KEY,
    USER_PASSWORD,
    FakeVendor,
    form_of,
    hook_for,
    set_connection,
)


def call(monkeypatch: pytest.MonkeyPatch, name: str) -> FakeVendor:
    set_connection(monkeypatch, name)
    fake = FakeVendor(vendor=name.split("_")[0])
    hook = hook_for(name, transport=fake.transport())
    hook.request("GET", "/things")
    return fake


def test_kazi_azure_v1_client_credentials_with_resource_and_subscription_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "kazi")
    (token_request,) = fake.token_requests
    assert str(token_request.url) == "https://login.microsoftonline.com/tenant-1/oauth2/token"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(token_request) == {
        "grant_type": "client_credentials",
        "client_id": "kazi-client",
        "client_secret": SECRET,
        "resource": "d00b610c-389f-4a05-97cc-f9a934488c8b",
    }
    (api,) = fake.api_requests
    assert api.headers["Ocp-Apim-Subscription-Key"] == SUBSCRIPTION_KEY
    assert api.headers["Authorization"] == f"Bearer {fake.issued[0]}"
    assert str(api.url) == "https://api.kazi.example/things"


def test_keyavi_client_app_mode_sends_default_scope_and_caller_id(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "keyavi")
    (token_request,) = fake.token_requests
    assert str(token_request.url) == "https://login.microsoftonline.com/tenant-2/oauth2/v2.0/token"
    assert form_of(token_request) == {
        "grant_type": "client_credentials",
        "client_id": "keyavi-client",
        "client_secret": SECRET,
        "scope": "api://550e8400-e29b-41d4-a716-446655440000/.default",
    }
    (api,) = fake.api_requests
    assert api.headers["x-api-caller-id"] == CALLER_ID
    assert api.headers["Ocp-Apim-Subscription-Key"] == SUBSCRIPTION_KEY
    assert str(api.url) == "https://keyavi.example/api/things"


def test_keyavi_user_mode_sends_password_grant_and_no_caller_id(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "keyavi_user")
    assert form_of(fake.token_requests[0]) == {
        "grant_type": "password",
        "client_id": "keyavi-client",
        "client_secret": SECRET,
        "username": "ana@example.com",
        "password": USER_PASSWORD,
        "scope": "api://550e8400-e29b-41d4-a716-446655440000/access_as_user",
    }
    (api,) = fake.api_requests
    assert "x-api-caller-id" not in api.headers
    assert api.headers["Ocp-Apim-Subscription-Key"] == SUBSCRIPTION_KEY


def test_kayzen_password_grant_behind_basic_api_key_header(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "kayzen")
    (token_request,) = fake.token_requests
    assert str(token_request.url) == "https://api.kayzen.io/v1/authentication/token"
    expected = base64.b64encode(f"kayzen-api-key:{SECRET}".encode()).decode()
    assert token_request.headers["Authorization"] == f"Basic {expected}"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form_of(token_request) == {
        "grant_type": "password",
        "username": "ana@example.com",
        "password": USER_PASSWORD,
    }
    assert "Ocp-Apim-Subscription-Key" not in fake.api_requests[0].headers


def test_smartrecruiters_form_client_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "smartrecruiters")
    (token_request,) = fake.token_requests
    assert str(token_request.url) == "https://api.smartrecruiters.com/identity/oauth/token"
    assert form_of(token_request) == {
        "grant_type": "client_credentials",
        "client_id": "sr-client",
        "client_secret": SECRET,
    }
    assert fake.api_requests[0].headers["Authorization"] == f"Bearer {fake.issued[0]}"


def test_clazar_sends_a_json_body_not_a_form(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = call(monkeypatch, "clazar")
    (token_request,) = fake.token_requests
    assert str(token_request.url) == "https://api.clazar.io/authenticate/"
    assert token_request.headers["content-type"] == "application/json"
    assert json.loads(token_request.content) == {"client_id": "clazar-client", "client_secret": SECRET}


def test_endpoint_is_appended_to_the_host_path(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "smartrecruiters", host="https://x.example/api/")
    fake = FakeVendor("smartrecruiters")
    hook = hook_for("smartrecruiters", transport=fake.transport())
    hook.request("GET", "/payloads", params={"a": 1})
    hook.request("GET", "payloads/2")
    assert [str(r.url) for r in fake.api_requests] == [
        "https://x.example/api/payloads?a=1",
        "https://x.example/api/payloads/2",
    ]
    assert str(fake.token_requests[0].url) == "https://x.example/api/identity/oauth/token"


def test_token_url_extra_overrides_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kazi", extra={"token_url": "https://idp.example/t/token", "tenant_id": None})
    fake = FakeVendor("kazi")
    hook_for("kazi", transport=fake.transport()).get_token()
    assert str(fake.token_requests[0].url) == "https://idp.example/t/token"
