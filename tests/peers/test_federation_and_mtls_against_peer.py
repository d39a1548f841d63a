"""Workload identity federation and mutual TLS against the independent authorization server
(oidc-provider, tests/peers), not only against our own sandbox: the wire formats are someone else's.

Federation: the server knows client assertions as RFC 7523 ``private_key_jwt``, so the test plays the
platform by writing a signed assertion (iss = sub = the client) to a file, rewriting it with a new one
between token requests; the connection says ``client_auth: federated`` and reads it. oidc-provider refuses
an assertion whose ``jti`` it has seen: a connection that did not re-read the file would be refused.
Mutual TLS: ``tls_client_auth`` and ``self_signed_tls_client_auth`` at the server's TLS issuer, its
certificate-bound tokens used over the connection's certificate, and refused over another.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.process_state import forget_process_state
from tests.peers.harness import SCOPE, PeerServer

PAGING = {"style": "page_number", "page_param": "page", "size_param": "per_page", "page_size": 50,
          "records_path": "items"}


@pytest.fixture(autouse=True)
def _fresh_process() -> None:
    forget_process_state()


def use(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, login: str, **extra: object) -> OAuth2Hook:
    conn = {"conn_type": "oauth2", "host": host, "login": login,
            "extra": {"scope": SCOPE, "pagination": PAGING, "max_retries": 0, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return OAuth2Hook(conn_id)


def write_assertion(path: Path, peer: PeerServer, *, lifetime: int = 120) -> str:
    """What the platform would write: an assertion the client's registered key signed, for the token endpoint."""
    now = int(time.time())
    claims = {"iss": "jwt-client", "sub": "jwt-client", "aud": f"{peer.issuer}/token", "iat": now,
              "exp": now + lifetime, "jti": str(uuid.uuid4())}
    assertion = jwt.encode(claims, peer.material.jwt_key_pem, algorithm="ES256")
    fresh = path.with_suffix(".new")
    fresh.write_text(assertion)
    os.replace(fresh, path)
    return assertion


def test_a_federated_connection_sends_the_file_anew_for_every_token_request(
    peer: PeerServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    hook = use(monkeypatch, "peer_federated", f"{peer.issuer}/api", "jwt-client",
               issuer=peer.issuer, client_auth="federated", assertion_file=str(path))
    before = peer.stats()["client_auth_methods"].get("private_key_jwt", 0)
    for _ in range(3):
        write_assertion(path, peer)  # the platform rotates the file
        hook.get_token(force_refresh=True)
    assert len(list(hook.paginate("/items"))) == 250
    assert peer.stats()["client_auth_methods"]["private_key_jwt"] == before + 3


def test_the_server_refuses_an_assertion_sent_twice_so_a_stale_file_shows(
    peer: PeerServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    hook = use(monkeypatch, "peer_federated", f"{peer.issuer}/api", "jwt-client",
               issuer=peer.issuer, client_auth="federated", assertion_file=str(path))
    assertion = write_assertion(path, peer)
    hook.get_token(force_refresh=True)
    with pytest.raises(TokenRequestError) as error:  # the platform did not rotate the file: same jti
        hook.get_token(force_refresh=True)
    assert error.value.error == "invalid_client" and not error.value.retryable
    assert assertion not in str(error.value)


@pytest.mark.parametrize(
    ("client_id", "client_auth", "certificate"),
    [("pki-client", "tls_client_auth", "pki_client"), ("self-signed-client", "self_signed_tls_client_auth", "self_signed_client")],
)
def test_an_mtls_connection_gets_a_bound_token_that_works_over_its_certificate_only(
    peer: PeerServer, monkeypatch: pytest.MonkeyPatch, client_id: str, client_auth: str, certificate: str
) -> None:
    m = peer.material
    pair = getattr(m, certificate)
    hook = use(monkeypatch, "peer_mtls", f"{peer.mtls_issuer}/api", client_id, issuer=peer.mtls_issuer,
               client_auth=client_auth, client_certificate=pair.certificate_pem,
               client_private_key=pair.private_key_pem, verify=m.ca_file)
    before = peer.stats(mtls=True)
    assert len(list(hook.paginate("/items"))) == 250
    after = peer.stats(mtls=True)
    assert after["client_auth_methods"][client_auth] == before["client_auth_methods"].get(client_auth, 0) + 1
    assert after["api_ok"] == before["api_ok"] + 6  # five full pages and the short one, no refusal
    token = hook.get_token().access_token
    assert m.stranger is not None
    with httpx.Client(verify=m.stranger.ssl_context()) as other:
        refused = other.get(f"{peer.mtls_issuer}/api/items", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and "another certificate" in refused.headers["WWW-Authenticate"]


def test_an_unregistered_certificate_is_refused_by_the_peer(peer: PeerServer, monkeypatch: pytest.MonkeyPatch) -> None:
    m = peer.material
    assert m.stranger is not None
    hook = use(monkeypatch, "peer_stranger", f"{peer.mtls_issuer}/api", "pki-client", issuer=peer.mtls_issuer,
               client_auth="tls_client_auth", client_certificate=m.stranger.certificate_pem,
               client_private_key=m.stranger.private_key_pem, verify=m.ca_file)
    with pytest.raises(TokenRequestError) as error:
        hook.get_token()
    assert error.value.error == "invalid_client" and "PRIVATE KEY" not in str(error.value)
