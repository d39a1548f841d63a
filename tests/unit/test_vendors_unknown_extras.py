"""Extras a connection type does not know are named with the closest known name, never ignored in
silence; a near-miss of a field that changes who the connection acts as is refused before any request."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.connections import sandbox_connections
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.fields import ExtraField
from airflow_vendorauth.vendors.profile import RawConnection
from airflow_vendorauth.vendors.unknown_extras import find_unknown
from tests.unit.fakes import hook_for, set_connection

TOKEN_URL = "https://idp.example/oauth2/token"


def no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a network call was made: {request.url}")


def tokens(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})


def oauth2(monkeypatch: pytest.MonkeyPatch, conn_id: str = "oauth2_default", **extra: Any) -> None:
    conn = {"conn_type": "oauth2", "host": "https://api.example/v1", "login": "client", "password": "secret"}
    conn["extra"] = {"auth_url": TOKEN_URL, **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_oauth2_grant_password_is_refused_naming_grant_type_instead_of_running_as_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    oauth2(monkeypatch, grant="password", username="ana", user_password="pw")
    with pytest.raises(ConnectionConfigError) as caught:
        OAuth2Hook(transport=httpx.MockTransport(no_network)).get_token()
    message = str(caught.value)
    assert caught.value.field == "grant"
    assert "did you mean grant_type" in message
    assert "grant_type='client_credentials'" in message
    assert "rename the extra grant to grant_type" in message


def test_keyavi_user_connection_with_grant_names_grant_type_not_caller_id(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "keyavi_user", extra={"grant_type": None, "grant": "password"})
    with pytest.raises(ConnectionConfigError) as caught:
        hook_for("keyavi_user", transport=httpx.MockTransport(no_network)).request("GET", "/a")
    assert "did you mean grant_type" in str(caught.value)
    assert "caller_id" not in str(caught.value)


def test_near_miss_of_a_missing_required_field_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "kazi", extra={"resource": None, "resourse": "api://x"})
    with pytest.raises(ConnectionConfigError) as caught:
        hook_for("kazi", transport=httpx.MockTransport(no_network)).request("GET", "/a")
    assert "did you mean resource" in str(caught.value)
    assert "which this connection needs, is missing" in str(caught.value)


def test_other_unknown_extras_are_logged_once_per_process_and_connection_with_the_closest_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    oauth2(monkeypatch, max_retry=2, timout=5, zzz_unrelated="x")
    oauth2(monkeypatch, "oauth2_other", max_retry=2)
    for conn_id in ("oauth2_default", "oauth2_default", "oauth2_other"):
        OAuth2Hook(conn_id, transport=httpx.MockTransport(tokens)).get_token()
    # the hooks' logger is Airflow's (structlog), which writes to the task log, here stdout
    output = capsys.readouterr()
    said = [line for line in (output.out + output.err).splitlines() if "do not know" in line]
    assert len(said) == 2, said
    assert "max_retry (did you mean max_retries?)" in said[0]
    assert "timout (did you mean timeout?)" in said[0]
    assert "zzz_unrelated" in said[0] and "zzz_unrelated (did" not in said[0]
    assert "'oauth2_other'" in said[1]


def test_the_test_button_names_unknown_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    oauth2(monkeypatch, max_retry=2)
    ok, message = OAuth2Hook(transport=httpx.MockTransport(tokens)).test_connection()
    assert ok
    assert "max_retry (did you mean max_retries?)" in message


def test_the_test_button_names_a_refused_near_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    oauth2(monkeypatch, grant="password", username="ana", user_password="pw")
    ok, message = OAuth2Hook(transport=httpx.MockTransport(no_network)).test_connection()
    assert not ok
    assert "did you mean grant_type" in message


def test_known_names_come_from_the_declared_fields_so_a_new_field_is_known_at_once() -> None:
    profile = VENDORS["oauth2"]
    extended = dataclasses.replace(profile, fields=(*profile.fields, ExtraField("frobnicate", "Frobnicate", "a field added later")))
    extra = {"frobnicate": "true", "token_url": TOKEN_URL, "extra__oauth2__scope": "x"}
    assert [u.key for u in find_unknown(profile.all_fields, "oauth2", extra)] == ["frobnicate"]
    assert find_unknown(extended.all_fields, "oauth2", extra) == ()


@pytest.mark.parametrize("conn_id", list(sandbox_connections("http://127.0.0.1:1")))
def test_every_sandbox_connection_has_only_known_extras(conn_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the workload-identity connection takes its assertion file from the variable AKS injects
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token")
    conn = sandbox_connections("http://127.0.0.1:1")[conn_id]
    raw = RawConnection(conn_id, conn["conn_type"], conn["host"], conn["login"], conn["password"], None, conn["extra"])
    assert VENDORS[conn["conn_type"]].resolve(raw).unknown_extras is None


@pytest.mark.parametrize(
    ("host", "suggested"),
    [
        ("127.0.0.1:42641/clazar", "http://127.0.0.1:42641/clazar"),
        ("localhost:8765/clazar", "http://localhost:8765/clazar"),
        ("api.clazar.io", "https://api.clazar.io"),
    ],
)
def test_a_host_without_a_scheme_gets_a_fix_that_works(host: str, suggested: str) -> None:
    raw = RawConnection("c", "clazar", host, "id", "secret")
    with pytest.raises(ConnectionConfigError) as caught:
        VENDORS["clazar"].resolve(raw)
    assert f"e.g. {suggested}" in str(caught.value)
    fixed = dataclasses.replace(raw, host=suggested)
    assert VENDORS["clazar"].resolve(fixed).base_url == suggested
