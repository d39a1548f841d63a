"""Security properties: TLS verification, timeouts on every request, redacted errors and reprs."""

from __future__ import annotations

import ssl

import httpx
import pytest

from airflow_vendorauth.exceptions import VendorApiError
from airflow_vendorauth.redact import redact
from tests.unit.fakes import SECRET, FakeVendor, hook_for, set_connection


def ssl_context_of(client: httpx.Client) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


def test_tls_verification_is_on_unless_the_connection_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "clazar")
    assert ssl_context_of(hook_for("clazar").get_client()).verify_mode == ssl.CERT_REQUIRED
    set_connection(monkeypatch, "clazar", extra={"verify": False})
    assert ssl_context_of(hook_for("clazar").get_client()).verify_mode == ssl.CERT_NONE


def test_every_request_has_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kazi", extra={"timeout": 7})
    seen: list[dict] = []
    fake = FakeVendor("kazi")

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return fake(request)

    hook_for("kazi", transport=httpx.MockTransport(record)).request("GET", "/a")
    assert len(seen) == 2  # the token request and the API call
    assert all(t == {"connect": 7.0, "read": 7.0, "write": 7.0, "pool": 7.0} for t in seen)


def test_an_api_error_that_echoes_the_token_or_secret_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "smartrecruiters")
    fake = FakeVendor("smartrecruiters")
    fake.api = lambda r: httpx.Response(
        400, json={"message": f"bad token {r.headers['Authorization'][7:]} for secret {SECRET}"}
    )
    with pytest.raises(VendorApiError) as caught:
        hook_for("smartrecruiters", transport=fake.transport()).request("GET", "/a")
    shown = str(caught.value) + repr(caught.value) + caught.value.body
    assert fake.issued[0] not in shown and SECRET not in shown
    assert "HTTP 400" in shown


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-123",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl in a message",
        "client_secret=hunter22&grant_type=client_credentials",
        '{"password": "hunter22"}',
        "Basic YWJjOmRlZmdoaWpr",
    ],
)
def test_token_shaped_strings_are_redacted_even_when_unknown(text: str) -> None:
    assert "hunter22" not in redact(text)
    assert "abc.def-123" not in redact(text)
    assert "eyJzdWIiOiIxIn0" not in redact(text)
    assert "YWJjOmRlZmdoaWpr" not in redact(text)


def test_an_html_page_where_json_was_expected_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kazi")
    fake = FakeVendor("kazi")
    fake.api = lambda r: httpx.Response(
        200, text="<html>Gateway maintenance</html>", headers={"content-type": "text/html"}
    )
    hook = hook_for("kazi", transport=fake.transport())
    response = hook.request("GET", "/tagging/v2/job-scans/1")
    with pytest.raises(VendorApiError, match="text/html that is not JSON"):
        hook.json_body(response, "status")
    fake.api = lambda r: httpx.Response(200, json={"other": 1})
    with pytest.raises(VendorApiError, match="without 'status'"):
        hook.json_body(hook.request("GET", "/tagging/v2/job-scans/1"), "status")
