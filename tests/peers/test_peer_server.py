"""The peer server itself behaves as the RFCs say, so tests against it mean something.

These requests are built by hand here (PyJWT, httpx), independent of the provider's code: they pin
what the independent server demands (DPoP nonces at the token endpoint and the API, ath, bound keys,
jti replay, mTLS certificate binding, private_key_jwt).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.peers.harness import SCOPE, SECRET, PeerServer


def _proof(key: ec.EllipticCurvePrivateKey, method: str, url: str, *, nonce: str | None = None,
           token: str | None = None, jti: str | None = None) -> str:
    claims: dict[str, Any] = {"htm": method, "htu": url, "iat": int(time.time()), "jti": jti or str(uuid.uuid4())}
    if nonce:
        claims["nonce"] = nonce
    if token:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).decode().rstrip("=")
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})


def _dpop_token(peer: PeerServer, key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    url = f"{peer.issuer}/token"
    data = {"grant_type": "client_credentials", "scope": SCOPE}
    first = httpx.post(url, data=data, auth=("dpop-client", SECRET), headers={"DPoP": _proof(key, "POST", url)})
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce", first.text
    nonce = first.headers["DPoP-Nonce"]
    second = httpx.post(url, data=data, auth=("dpop-client", SECRET), headers={"DPoP": _proof(key, "POST", url, nonce=nonce)})
    assert second.status_code == 200, second.text
    assert second.json()["token_type"] == "DPoP"
    return second.json()["access_token"], nonce


def test_dpop_nonce_challenges_at_token_endpoint_and_api(peer: PeerServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token, _ = _dpop_token(peer, key)
    api = f"{peer.issuer}/api/items"
    headers = {"Authorization": f"DPoP {token}", "DPoP": _proof(key, "GET", api, token=token)}
    challenged = httpx.get(api, params={"page": 1}, headers=headers)
    assert challenged.status_code == 401
    assert 'error="use_dpop_nonce"' in challenged.headers["WWW-Authenticate"]
    nonce = challenged.headers["DPoP-Nonce"]
    ok = httpx.get(api, params={"page": 1}, headers={"Authorization": f"DPoP {token}",
                                                      "DPoP": _proof(key, "GET", api, token=token, nonce=nonce)})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["items"]) == 50


def test_dpop_api_refuses_a_proof_by_another_key_or_without_ath_or_as_bearer(peer: PeerServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token, _ = _dpop_token(peer, key)
    api = f"{peer.issuer}/api/items"
    nonce = httpx.get(api, headers={"Authorization": f"DPoP {token}", "DPoP": _proof(key, "GET", api, token=token)}).headers["DPoP-Nonce"]
    other = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "key is not the one": {"Authorization": f"DPoP {token}", "DPoP": _proof(other, "GET", api, token=token, nonce=nonce)},
        "ath mismatch": {"Authorization": f"DPoP {token}", "DPoP": _proof(key, "GET", api, nonce=nonce)},
        "needs the DPoP scheme": {"Authorization": f"Bearer {token}"},
        "htu": {"Authorization": f"DPoP {token}", "DPoP": _proof(key, "GET", api + "?page=1", token=token, nonce=nonce)},
    }
    for expected, headers in cases.items():
        refused = httpx.get(api, headers=headers)
        assert refused.status_code == 401, expected
        assert expected in refused.headers["WWW-Authenticate"], (expected, refused.headers["WWW-Authenticate"])


def test_token_endpoint_refuses_a_replayed_proof_and_counts_reuse(peer: PeerServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _, nonce = _dpop_token(peer, key)
    url = f"{peer.issuer}/token"
    before = peer.stats()["proofs_reused"]
    proof = _proof(key, "POST", url, nonce=nonce)
    data = {"grant_type": "client_credentials", "scope": SCOPE}
    assert httpx.post(url, data=data, auth=("dpop-client", SECRET), headers={"DPoP": proof}).status_code == 200
    replay = httpx.post(url, data=data, auth=("dpop-client", SECRET), headers={"DPoP": proof})
    # oidc-provider says "DPoP proof JWT Replay detected" only in its debug output: invalid_grant on the wire
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
    assert peer.stats()["proofs_reused"] == before + 1


def test_private_key_jwt_client_assertion(peer: PeerServer) -> None:
    url = f"{peer.issuer}/token"
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": "jwt-client", "sub": "jwt-client", "aud": url, "iat": now, "exp": now + 60, "jti": str(uuid.uuid4())},
        peer.material.jwt_key_pem,
        algorithm="ES256",
    )
    response = httpx.post(url, data={
        "grant_type": "client_credentials", "scope": SCOPE, "client_id": "jwt-client",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion,
    })
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_mtls_bound_token_works_over_its_certificate_only(peer: PeerServer) -> None:
    m = peer.material
    assert m.pki_client and m.self_signed_client and m.stranger
    for client_id, cert in (("pki-client", m.pki_client), ("self-signed-client", m.self_signed_client)):
        with httpx.Client(verify=cert.ssl_context()) as client:
            token = client.post(f"{peer.mtls_issuer}/token",
                                data={"grant_type": "client_credentials", "scope": SCOPE, "client_id": client_id})
            assert token.status_code == 200, token.text
            access = token.json()["access_token"]
            assert client.get(f"{peer.mtls_issuer}/api/items", headers={"Authorization": f"Bearer {access}"}).status_code == 200
        with httpx.Client(verify=m.stranger.ssl_context()) as other:
            refused = other.get(f"{peer.mtls_issuer}/api/items", headers={"Authorization": f"Bearer {access}"})
            assert refused.status_code == 401
            assert "another certificate" in refused.headers["WWW-Authenticate"]


def test_mtls_token_endpoint_refuses_an_unregistered_certificate(peer: PeerServer) -> None:
    m = peer.material
    assert m.stranger
    with httpx.Client(verify=m.stranger.ssl_context()) as client:
        refused = client.post(f"{peer.mtls_issuer}/token",
                              data={"grant_type": "client_credentials", "scope": SCOPE, "client_id": "pki-client"})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client", refused.text


def test_discovery_publishes_the_token_endpoint_and_dpop_algorithms(peer: PeerServer) -> None:
    metadata = httpx.get(f"{peer.issuer}/.well-known/openid-configuration").json()
    assert metadata["token_endpoint"] == f"{peer.issuer}/token"
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]


def test_counters_of_the_tls_issuer_are_its_own(peer: PeerServer) -> None:
    assert peer.stats(mtls=True)["tokens_issued"]["DPoP"] == 0
    assert peer.stats()["tokens_issued"]["DPoP"] >= 1
