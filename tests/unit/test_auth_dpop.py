"""DPoP (auth/dpop.py and the few lines that use it): proofs as RFC 9449 writes them, nonce demands
answered once at the token endpoint and the API, the key kept with the token (and hidden), sync and async.
A fake server over httpx.MockTransport demands a nonce everywhere and records every proof."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from typing import Any

import httpx
import jwt
import pytest

from airflow_vendorauth.auth import dpop
from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.retry import RetryPolicy

NO_RETRY = RetryPolicy(max_attempts=1)  # a nonce demand must be answered without the retry policy's help
TOKEN_URL = "https://auth.example.com/token"
API = "https://api.example.com/v1"


def verified(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a proof, its signature checked with the key in its own header."""
    header = jwt.get_unverified_header(proof)
    key = jwt.PyJWK(header["jwk"], algorithm="ES256")
    return header, jwt.decode(proof, key, algorithms=["ES256"])


def jkt(jwk: dict[str, Any]) -> str:
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


def ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")


class NonceServer:
    """A token endpoint and an API that demand nonces (and rotate the API's after each answer)."""

    def __init__(self, *, bind: bool = True) -> None:
        self.bind = bind
        self.proofs: list[tuple[str, dict[str, Any]]] = []  # (where, claims)
        self.token_nonce, self.api_nonce = "tn-1", "an-1"
        self.tokens = 0
        self.assertions: list[str] = []
        self.keys: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        proof = request.headers.get("DPoP")
        assert proof, "every request carries a proof"
        header, claims = verified(proof)
        assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
        self.keys.add(jkt(header["jwk"]))
        if request.url.host == "auth.example.com":
            self.proofs.append(("token", claims))
            self.assertions += [v for k, v in httpx.QueryParams(request.content.decode()).items() if k == "client_assertion"]
            if claims.get("nonce") != self.token_nonce:
                return httpx.Response(400, json={"error": "use_dpop_nonce"}, headers={"DPoP-Nonce": self.token_nonce})
            self.tokens += 1
            return httpx.Response(200, json={"access_token": f"at-{self.tokens}", "token_type": "DPoP" if self.bind else "Bearer",
                                             "expires_in": 3600})
        self.proofs.append(("api", claims))
        scheme, _, token = request.headers["Authorization"].partition(" ")
        assert scheme == "DPoP" and claims["ath"] == ath(token)
        if claims.get("nonce") != self.api_nonce:
            return httpx.Response(401, headers={"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": self.api_nonce})
        self.api_nonce = f"an-{uuid.uuid4().hex[:6]}"  # rotated: the next call is challenged again
        return httpx.Response(200, json={"items": [1]}, headers={"DPoP-Nonce": self.api_nonce})


def connection(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = {"conn_type": "oauth2", "host": API, "login": "client", "password": "s3cret-value",
            "extra": {"auth_url": TOKEN_URL, "dpop": True, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_DPOP_TEST", json.dumps(conn))


def hook(server: NonceServer) -> OAuth2Hook:
    return OAuth2Hook("dpop_test", transport=httpx.MockTransport(server), async_transport=httpx.MockTransport(server),
                      retry_policy=NO_RETRY)


def test_a_proof_has_the_claims_rfc_9449_names_and_a_new_jti_each_time() -> None:
    key = dpop.ProofKey.generate()
    first = key.proof("get", "https://api.example.com/v1/items?page=2#frag", nonce="n", access_token="tok")
    header, claims = verified(first)
    assert header["alg"] == "ES256" and header["jwk"]["kty"] == "EC" and set(header["jwk"]) >= {"crv", "x", "y"}
    assert claims["htm"] == "GET" and claims["htu"] == "https://api.example.com/v1/items"
    assert claims["nonce"] == "n" and claims["ath"] == ath("tok")
    assert isinstance(claims["iat"], int) and claims["jti"]
    jtis = {verified(key.proof("GET", "https://x.example/"))[1]["jti"] for _ in range(50)}
    assert len(jtis) == 50
    assert "ath" not in verified(key.proof("POST", TOKEN_URL))[1]


def test_the_thumbprint_is_rfc_7638s() -> None:
    # RFC 7638 section 3.1's procedure, done by hand for one key
    key = dpop.ProofKey.generate()
    jwk = key.public_jwk
    canonical = '{"crv":"%s","kty":"EC","x":"%s","y":"%s"}' % (jwk["crv"], jwk["x"], jwk["y"])  # noqa: UP031
    assert key.thumbprint == base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
    assert key.thumbprint == jkt(jwk)
    assert key.thumbprint in repr(key) and jwk["x"] not in repr(key)


def test_nonces_are_kept_per_origin() -> None:
    book = dpop.NonceBook()
    request = httpx.Request("GET", "https://a.example/x")
    book.learn(httpx.Response(200, headers={"DPoP-Nonce": "A"}, request=request))
    assert book.get(httpx.URL("https://a.example/other?q=1")) == "A"
    assert book.get(httpx.URL("https://b.example/x")) is None
    assert book.get(httpx.URL("https://a.example:8443/x")) is None


def test_token_and_api_nonce_demands_are_answered_once_each_without_a_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch)
    server = NonceServer()
    h = hook(server)
    for _ in range(3):
        assert h.request("GET", "/items").json() == {"items": [1]}
    token_proofs = [c for w, c in server.proofs if w == "token"]
    assert [c.get("nonce") for c in token_proofs] == [None, "tn-1"] and server.tokens == 1
    api_proofs = [c for w, c in server.proofs if w == "api"]
    assert len(api_proofs) == 4  # challenged once, then the rotated nonce comes with each answer
    assert len({c["jti"] for _, c in server.proofs}) == len(server.proofs)  # no proof reused
    assert all(c["htu"] == f"{API}/items" and c["htm"] == "GET" for c in api_proofs)
    token = h.get_token()
    assert token.token_type == "DPoP" and token.proof_key is not None
    assert server.keys == {dpop.ProofKey.from_jwk(token.proof_key).thumbprint}  # one key: the token's


def test_async_calls_answer_the_same_demands(monkeypatch: pytest.MonkeyPatch) -> None:
    connection(monkeypatch)
    server = NonceServer()
    h = hook(server)

    async def calls() -> list[Any]:
        try:
            return [(await h.arequest("GET", "/items")).json() for _ in range(3)]
        finally:
            await h.aclose()

    assert asyncio.run(calls()) == [{"items": [1]}] * 3
    assert server.tokens == 1
    assert len({c["jti"] for _, c in server.proofs}) == len(server.proofs)


def test_a_challenged_token_request_is_built_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client assertion, like a proof, is for one request: the nonce retry signs a new one."""
    from tests.keys import unregistered_key

    key, certificate = unregistered_key()
    connection(monkeypatch, client_auth="private_key_jwt", private_key=key, certificate=certificate)
    server = NonceServer()
    hook(server).get_token()
    assert len(server.assertions) == 2 and len(set(server.assertions)) == 2


def test_the_key_travels_inside_the_encrypted_cache_entry_and_is_never_shown() -> None:
    import pendulum

    key = dpop.ProofKey.generate()
    now = pendulum.now("UTC")
    token = AccessToken("at", now.add(hours=1), now, token_type="DPoP", proof_key=key.to_jwk())
    cipher = TokenCipher(["mJdvQ0nT2S4rtq7xh0N2tJwZxR3rMGQfHhhUl5a3oWY="])
    sealed = cipher.seal_token(token)
    private = json.loads(key.to_jwk())["d"]
    assert private.encode() not in sealed
    back = cipher.open_token(sealed, "redis")
    assert back.proof_key == token.proof_key and back.token_type == "DPoP"
    assert dpop.ProofKey.from_jwk(back.proof_key or "").thumbprint == key.thumbprint
    assert private not in repr(token) and private not in str(token) and "proof_key" not in repr(token)


def test_a_server_that_does_not_bind_gets_bearer_calls_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    connection(monkeypatch)
    server = NonceServer(bind=False)
    h = hook(server)
    token = h.get_token()
    assert token.token_type == "Bearer" and token.proof_key is None
    said = caplog.text + "".join(capfd.readouterr())
    assert "does not support DPoP" in said


def test_dpop_is_part_of_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.hooks.base import credential_key

    connection(monkeypatch)
    with_dpop = OAuth2Hook("dpop_test")
    key = credential_key(with_dpop.profile, with_dpop.settings)
    connection(monkeypatch, dpop=False)
    without = OAuth2Hook("dpop_test")
    assert key != credential_key(without.profile, without.settings)


def test_dpop_must_be_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_vendorauth.exceptions import ConnectionConfigError

    connection(monkeypatch, dpop="maybe")
    with pytest.raises(ConnectionConfigError, match="dpop") as caught:
        _ = OAuth2Hook("dpop_test").settings
    assert "true or false" in str(caught.value)


def test_the_oauth2_form_has_the_dpop_field_with_help() -> None:
    from airflow_vendorauth.get_provider_info import get_provider_info

    fields = {c["connection-type"]: c["conn-fields"] for c in get_provider_info()["connection-types"]}
    dpop_field = fields["oauth2"]["dpop"]
    assert "boolean" in json.dumps(dpop_field["schema"])
    assert "RFC 9449" in dpop_field["description"] and "e.g. true" in dpop_field["description"]
    assert all("dpop" not in f for t, f in fields.items() if t != "oauth2")  # declared by the generic type only
