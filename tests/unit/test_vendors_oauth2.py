"""The generic ``oauth2`` type on the wire (vendors/oauth2.py, auth/grants.py, auth/assertions.py): the
exact token request of every grant and client authentication style, discovery, rotating refresh
tokens, and its validation before any network call."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from airflow_vendorauth.auth.discovery import forget_discoveries, metadata_urls
from airflow_vendorauth.exceptions import ConnectionConfigError, TokenRequestError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.retry import RetryPolicy
from airflow_vendorauth.sandbox.state import sandbox_key

TOKEN_URL = "https://idp.example/oauth2/token"
SECRET = "s3cret +/&:é"
FAST = RetryPolicy(max_attempts=2, initial_wait_seconds=0.01, max_wait_seconds=0.02)


class Server:
    """Records token requests; answers each with a token (and a new refresh token when one was spent)."""

    def __init__(self, metadata: dict[str, dict[str, Any]] | None = None) -> None:
        self.token_requests: list[httpx.Request] = []
        self.metadata = metadata or {}
        self.refused: set[str] = set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if ".well-known" in url:
            if url in self.metadata:
                return httpx.Response(200, json=self.metadata[url])
            return httpx.Response(404, json={"error": "not_found"})
        if url.endswith("/token"):
            self.token_requests.append(request)
            body = form(request)
            if body.get("refresh_token") in self.refused:
                return httpx.Response(400, json={"error": "invalid_grant", "error_description": "refresh token spent"})
            answer = {"access_token": f"at-{len(self.token_requests)}", "token_type": "Bearer", "expires_in": 3600}
            if body.get("grant_type") in ("password", "refresh_token"):
                answer["refresh_token"] = f"rt-{len(self.token_requests)}"
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"items": [], "total": 0})


def form(request: httpx.Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        return json.loads(request.content)
    return dict(parse_qsl(request.content.decode()))


def connect(monkeypatch: pytest.MonkeyPatch, password: str | None = SECRET, **extra: Any) -> None:
    conn = {"conn_type": "oauth2", "host": "https://api.example/v1", "login": "my client", "password": password}
    conn["extra"] = {"auth_url": TOKEN_URL, **extra}
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DEFAULT", json.dumps(conn))


def hook(server: Server) -> OAuth2Hook:
    return OAuth2Hook(transport=httpx.MockTransport(server.handle), retry_policy=FAST)


# ---- client authentication styles ------------------------------------------------------------------------


def test_client_secret_basic_form_encodes_id_and_secret_before_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, scope="items.read")
    server = Server()
    hook(server).get_token()
    (sent,) = server.token_requests
    expected = base64.b64encode(b"my+client:s3cret+%2B%2F%26%3A%C3%A9").decode()  # RFC 6749 2.3.1
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert form(sent) == {"grant_type": "client_credentials", "scope": "items.read"}  # no secret in the body


def test_client_secret_post_sends_both_in_the_form(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, client_auth="client_secret_post", audience="https://api.example", resource="https://api.example/")
    server = Server()
    hook(server).get_token()
    (sent,) = server.token_requests
    assert "Authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(sent) == {
        "grant_type": "client_credentials",
        "audience": "https://api.example",
        "resource": "https://api.example/",
        "client_id": "my client",
        "client_secret": SECRET,
    }


def test_client_secret_json_sends_a_json_body(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, client_auth="client_secret_json", token_params={"tenant": "acme"})
    server = Server()
    hook(server).get_token()
    (sent,) = server.token_requests
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "grant_type": "client_credentials",
        "tenant": "acme",
        "client_id": "my client",
        "client_secret": SECRET,
    }


def test_none_sends_only_the_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, password=None, client_auth="none", grant_type="password", username="ana", user_password="pw-12345")
    server = Server()
    hook(server).get_token()
    assert form(server.token_requests[0]) == {
        "grant_type": "password",
        "username": "ana",
        "password": "pw-12345",
        "client_id": "my client",
    }


@pytest.mark.parametrize(("kind", "algorithm"), [("rsa", "RS256"), ("ec", "ES256")])
def test_private_key_jwt_signs_a_fresh_assertion_per_request(
    monkeypatch: pytest.MonkeyPatch, kind: str, algorithm: str
) -> None:
    key, certificate = sandbox_key(kind)
    connect(monkeypatch, password=None, client_auth="private_key_jwt", private_key=key, certificate=certificate, private_key_id="k-1")
    server = Server()
    h = hook(server)
    h.get_token()
    h.get_token(force_refresh=True)
    first, second = (form(r) for r in server.token_requests)
    assert first["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert first["client_id"] == "my client" and "client_secret" not in first
    assert "Authorization" not in server.token_requests[0].headers
    header = jwt.get_unverified_header(first["client_assertion"])
    cert = x509.load_pem_x509_certificate(certificate.encode())
    thumb = lambda h: base64.urlsafe_b64encode(cert.fingerprint(h)).decode().rstrip("=")  # noqa: E731
    assert header == {"alg": algorithm, "typ": "JWT", "kid": "k-1", "x5t": thumb(hashes.SHA1()), "x5t#S256": thumb(hashes.SHA256())}
    claims = jwt.decode(first["client_assertion"], cert.public_key(), algorithms=[algorithm], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "my client"
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 300
    again = jwt.decode(second["client_assertion"], cert.public_key(), algorithms=[algorithm], audience=TOKEN_URL)
    assert again["jti"] != claims["jti"]  # a new assertion for every request


# ---- grants ------------------------------------------------------------------------------------------------


def test_refresh_grant_spends_the_newest_refresh_token_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, grant_type="refresh_token", refresh_token="seed-refresh-token", cache="memory")
    server = Server()
    h = hook(server)
    h.get_token()
    h.get_token(force_refresh=True)
    h.get_token(force_refresh=True)
    spent = [form(r)["refresh_token"] for r in server.token_requests]
    assert spent == ["seed-refresh-token", "rt-1", "rt-2"]


def test_a_refused_refresh_token_is_reported_as_spent_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, grant_type="refresh_token", refresh_token="seed-refresh-token", cache="memory")
    server = Server()
    server.refused.add("seed-refresh-token")
    with pytest.raises(TokenRequestError) as refused:
        hook(server).get_token()
    message = str(refused.value)
    assert "invalid_grant" in message and "spent by another process or revoked" in message
    assert "Refresh token (refresh_token)" in message and "seed-refresh-token" not in message
    assert len(server.token_requests) == 1  # never retried


@pytest.mark.parametrize("cache", ["file", "redis://127.0.0.1:1/0"])
def test_a_rotating_chain_whose_cache_keeps_nothing_is_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, cache: str
) -> None:
    """Without a Fernet key a file or Redis cache stores nothing (tokens never rest in clear) and the
    connection falls back to memory: a refresh token would be spent and its successor die with the process,
    the next run presenting a spent one (issue 32, item 4, by another road). Refused, naming the key."""
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    monkeypatch.setenv("AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR", str(tmp_path))
    connect(monkeypatch, grant_type="refresh_token", refresh_token="seed-refresh-token", cache=cache)
    server = Server()
    with pytest.raises(ConnectionConfigError) as refused:
        hook(server).get_token()
    message = str(refused.value)
    assert "Token cache (cache)" in message and "fernet_key" in message and "write memory" in message, message
    ok, said = hook(server).test_connection()
    assert not ok and "fernet_key" in said
    assert server.token_requests == []  # the seed was never presented


def test_a_cache_that_keeps_nothing_still_serves_grants_that_spend_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The refusal is for rotating chains only: a client secret spent twice costs nothing."""
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    monkeypatch.setenv("AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR", str(tmp_path))
    connect(monkeypatch, cache="file")
    server = Server()
    assert hook(server).get_token().access_token == "at-1"


# ---- discovery ---------------------------------------------------------------------------------------------


def test_the_token_endpoint_is_discovered_once_from_the_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_discoveries()
    issuer = "https://idp.example/realms/acme"
    assert metadata_urls(issuer) == [
        f"{issuer}/.well-known/openid-configuration",
        "https://idp.example/.well-known/oauth-authorization-server/realms/acme",
    ]
    connect(monkeypatch, auth_url=None, issuer=issuer)
    rfc8414 = {"issuer": issuer, "token_endpoint": "https://idp.example/realms/acme/token"}
    server = Server({metadata_urls(issuer)[1]: rfc8414})  # only RFC 8414's document exists
    hook(server).get_token()
    hook(server).get_token(force_refresh=True)
    assert [str(r.url) for r in server.token_requests] == ["https://idp.example/realms/acme/token"] * 2
    forget_discoveries()


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (None, "HTTP 404"),
        ({"issuer": "https://evil.example", "token_endpoint": "https://evil.example/t"}, "names issuer"),
        ({"issuer": "https://idp.example/x", "token_endpoint": "http://idp.example/t"}, "not https"),
    ],
)
def test_a_failed_discovery_says_what_each_url_answered(
    monkeypatch: pytest.MonkeyPatch, document: dict | None, says: str
) -> None:
    forget_discoveries()
    issuer = "https://idp.example/x"
    connect(monkeypatch, auth_url=None, issuer=issuer)
    server = Server({metadata_urls(issuer)[0]: document} if document else {})
    with pytest.raises(TokenRequestError) as failed:
        hook(server).get_token()
    assert says in str(failed.value) and "Fix: check Issuer" in str(failed.value)
    assert server.token_requests == []


# ---- validation before any network call ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "extra", "field", "says"),
    [
        (SECRET, {"auth_url": None}, "auth_url", "Token URL, or Issuer"),
        (None, {}, "password", "is empty"),
        (SECRET, {"grant_type": "refresh_token"}, "refresh_token", "starts from it"),
        (SECRET, {"grant_type": "password", "username": "ana"}, "user_password", "password grant"),
        (SECRET, {"grant_type": "implicit"}, "grant_type", "client_credentials, password, refresh_token"),
        (SECRET, {"client_auth": "client_secret_jwt"}, "client_auth", "client_secret_basic"),
        (None, {"client_auth": "tls_client_auth"}, "client_certificate", "is missing"),
        (None, {"client_auth": "federated"}, "assertion_file", "is missing"),
        (None, {"client_auth": "self_signed_tls_client_auth", "client_certificate": sandbox_key("ec")[1],
                "client_private_key": sandbox_key("rsa")[0]}, "client_private_key", "does not belong"),
        (None, {"client_auth": "private_key_jwt"}, "private_key", "is missing"),
        (None, {"client_auth": "private_key_jwt", "private_key": "not a key"}, "private_key", "not a PEM private key"),
        (None, {"client_auth": "private_key_jwt", "private_key": sandbox_key("rsa")[0], "certificate": sandbox_key("ec")[1]},
         "private_key", "does not belong to the certificate"),
        (SECRET, {"token_params": "{not json"}, "auth_params", "not valid JSON"),
        (SECRET, {"api_headers": ["x"]}, "secret_headers", "not an object"),
        (SECRET, {"pagination": {"style": "pages"}}, "pagination", "page_number, offset, cursor, next_link"),
        (SECRET, {"pagination": {"style": "cursor", "page_param": "p"}}, "pagination", "gives page_param"),
        (SECRET, {"max_concurrency": 0}, "max_concurrency", "give 1 to 64"),
        (SECRET, {"max_concurrency": "lots"}, "max_concurrency", "not a number"),
    ],
)
def test_bad_settings_fail_before_any_request(
    monkeypatch: pytest.MonkeyPatch, password: str | None, extra: dict, field: str, says: str
) -> None:
    connect(monkeypatch, password=password, **extra)
    server = Server()
    with pytest.raises(ConnectionConfigError) as caught:
        hook(server).get_token()
    assert caught.value.field == field
    assert says in str(caught.value) and "'oauth2_default'" in str(caught.value)
    assert server.token_requests == []


def test_api_headers_go_on_every_call_and_their_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_vendorauth.hooks.masking.mask_secret", lambda value, name=None: masked.append(value))
    connect(monkeypatch, api_headers={"X-Api-Key": "header-secret-123"})
    server = Server()
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return server.handle(request)

    OAuth2Hook(transport=httpx.MockTransport(handle)).request("GET", "/items")
    assert seen[-1].headers["X-Api-Key"] == "header-secret-123"
    assert "header-secret-123" in masked


@pytest.mark.parametrize(("extra", "ceiling"), [({}, 16), ({"max_concurrency": "3"}, 3), ({"max_concurrency": 40}, 40)])
def test_max_concurrency_sets_the_ceiling_of_auto_paging(monkeypatch: pytest.MonkeyPatch, extra: dict, ceiling: int) -> None:
    """The connection's ``max_concurrency`` (a form field, so the unknown-extras check knows it) bounds
    concurrency="auto"; without it, the generic type's measured default."""
    from airflow_vendorauth.pagination.adaptive import AdaptiveConcurrency
    from airflow_vendorauth.pagination.drivers import window_for
    from airflow_vendorauth.pagination.walk import PagingOptions
    from airflow_vendorauth.vendors.oauth2 import OAUTH2

    connect(monkeypatch, **extra)
    client = hook(Server()).client
    assert client.max_concurrency == ceiling
    window, _ = window_for(PagingOptions(), client.max_concurrency)
    assert isinstance(window, AdaptiveConcurrency) and window.ceiling == ceiling
    assert "max_concurrency" in {f.name for f in OAUTH2.all_fields}
