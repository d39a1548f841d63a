"""Mutual TLS (RFC 8705) through real Airflow against the sandbox in its mutual TLS mode: token requests
and API calls present the connection's certificate, the bound token works over it and is refused over
another, two certificates of one client never share a token, and the key never reaches a log."""

from __future__ import annotations

import json
import os
import ssl
import sys
from collections.abc import Iterator

import httpx
import pendulum
import pytest

from airflow_vendorauth.exceptions import TokenRequestError
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import mtls_connection
from airflow_vendorauth.sandbox.process_state import forget_process_state
from tests.integration.test_example_dags import DAGS_FOLDER
from tests.integration.triggers import run_trigger

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("mtls-pki"))


@pytest.fixture(scope="module")
def mtls_sandbox(pki_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    log = tmp_path_factory.mktemp("mtls-sandbox") / "sandbox.log"
    with Sandbox("--mtls-dir", pki_dir, log_path=log) as sandbox:
        yield sandbox


@pytest.fixture
def connect(mtls_sandbox: Sandbox, pki_dir: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set an mTLS connection (by certificate and client authentication); a clean sandbox and process."""
    mtls_sandbox.reset()
    forget_process_state()

    def make(conn_id: str, certificate: str = "client", client_auth: str = "tls_client_auth") -> dict:
        conn = mtls_connection(mtls_sandbox.url, pki_dir, certificate=certificate, client_auth=client_auth)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn

    return make


def over(pki_dir: str, certificate: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=f"{pki_dir}/ca.pem")
    context.load_cert_chain(f"{pki_dir}/{certificate}.pem", f"{pki_dir}/{certificate}.key")
    return context


@pytest.fixture(scope="module")
def example_dag(airflow_db: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from tests.integration.conftest import dagbag

    os.environ.setdefault("VENDORAUTH_DATA_DIR", str(tmp_path_factory.mktemp("mtls-data")))
    sys.path.insert(0, str(DAGS_FOLDER))
    bag = dagbag(dag_folder=str(DAGS_FOLDER / "oauth2_mtls_items.py"))
    assert bag.import_errors == {}
    return bag.get_dag("oauth2_mtls_items")


def test_the_example_dag_runs_with_a_bound_token_over_its_certificate(
    example_dag, connect, mtls_sandbox: Sandbox, pki_dir: str,  # type: ignore[no-untyped-def]
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    conn = connect("oauth2_mtls")
    run = example_dag.test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
    assert run.state == "success"
    stats = mtls_sandbox.stats()["oauth2"]
    assert stats["bound_tokens"] == stats["token_requests"] >= 1  # every token is bound to the certificate
    assert stats["mtls_alias_token_requests"] == stats["token_requests"]  # RFC 8705 5: the metadata's alias
    assert stats.get("status_401", 0) == 0 and stats["api_requests"] >= 6  # the sensor's call and 5 pages
    out = capfd.readouterr()
    logged = out.out + out.err + caplog.text
    key_body = conn["extra"]["client_private_key"].splitlines()[1]
    assert key_body not in logged, "the private key reached the log"
    assert not any(token in logged for token in mtls_sandbox.issued_tokens()), "a token reached the log"


def test_the_bound_token_is_refused_over_another_certificate(connect, mtls_sandbox: Sandbox, pki_dir: str) -> None:  # type: ignore[no-untyped-def]
    connect("oauth2_mtls")
    hook = OAuth2Hook("oauth2_mtls")
    assert hook.request("GET", "/items").status_code == 200
    token = hook.get_token().access_token
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{mtls_sandbox.url}/oauth2-api/items"
    assert httpx.get(url, headers=headers, verify=over(pki_dir, "client")).status_code == 200
    refused = httpx.get(url, headers=headers, verify=over(pki_dir, "client2"))  # the same client, another key
    assert refused.status_code == 401 and "bound to another certificate" in refused.text
    no_certificate = httpx.get(url, headers=headers, verify=ssl.create_default_context(cafile=f"{pki_dir}/ca.pem"))
    assert no_certificate.status_code == 401


def test_two_certificates_of_one_client_never_share_a_token(connect, mtls_sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    connect("oauth2_mtls")
    connect("oauth2_mtls_renewed", certificate="client2")  # same client id, same server, another certificate
    first, renewed = OAuth2Hook("oauth2_mtls"), OAuth2Hook("oauth2_mtls_renewed")
    for hook in (first, renewed, first, renewed):
        assert hook.request("GET", "/items").status_code == 200
    stats = mtls_sandbox.stats()["oauth2"]
    assert stats["token_requests"] == 2  # one per certificate
    assert stats.get("status_401", 0) == 0 and stats.get("bound_token_refused", 0) == 0
    assert first.get_token().access_token != renewed.get_token().access_token


def test_self_signed_tls_client_auth_presents_the_registered_certificate(connect, mtls_sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    connect("oauth2_self_signed", certificate="selfsigned", client_auth="self_signed_tls_client_auth")
    hook = OAuth2Hook("oauth2_self_signed")
    records = list(hook.paginate("/items"))
    assert len(records) == 230
    assert mtls_sandbox.stats()["oauth2"]["bound_tokens"] == 1


def test_a_certificate_not_registered_for_the_client_is_refused_and_not_retried(connect, mtls_sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    connect("oauth2_wrong_certificate", certificate="selfsigned", client_auth="tls_client_auth")
    with pytest.raises(TokenRequestError) as error:
        OAuth2Hook("oauth2_wrong_certificate").get_token()
    said = str(error.value)
    assert "invalid_client" in said and "Client certificate" in said and not error.value.retryable
    assert "PRIVATE KEY" not in said
    assert mtls_sandbox.token_requests("oauth2") == 1


def test_the_server_is_verified_with_the_named_ca_bundle(connect, mtls_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    conn = connect("oauth2_mtls")
    conn["extra"]["verify"] = True  # the system's CAs do not know the sandbox's test CA
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_SYSTEM_CAS", json.dumps(conn))
    with pytest.raises(TokenRequestError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        OAuth2Hook("oauth2_system_cas").get_token()


def test_the_trigger_presents_the_certificate_and_carries_only_the_connection_id(connect, mtls_sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    conn = connect("oauth2_mtls")
    kwargs, events = run_trigger("oauth2_mtls", "/items", "page", 1)
    assert events[0].payload["status"] == "success", events[0].payload
    stored = json.dumps(kwargs)
    assert "PRIVATE KEY" not in stored and conn["extra"]["client_certificate"] not in stored
    assert mtls_sandbox.stats()["oauth2"]["bound_tokens"] == 1


def test_the_http_bridge_refuses_a_connection_whose_tokens_are_bound_to_its_certificate(  # type: ignore[no-untyped-def]
    connect, mtls_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests (HttpHook) cannot present the connection's certificate: its bound token would be refused,
    and every 401 would drop the shared token and fetch another. Refused before anything is sent."""
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.exceptions import ConnectionConfigError
    from airflow_vendorauth.http import vendor_auth

    connect("oauth2_mtls")
    http = {"conn_type": "http", "host": f"{mtls_sandbox.url}/oauth2-api", "extra": {"verify": False}}
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_MTLS", json.dumps(http))
    hook = HttpHook(method="GET", http_conn_id="http_mtls", auth_type=vendor_auth("oauth2_mtls"))
    with pytest.raises(ConnectionConfigError) as refused:
        hook.run("items", extra_options={"check_response": False, "timeout": 10})
    said = str(refused.value)
    assert "oauth2_mtls" in said and "client_certificate" in said and "VendorApiOperator" in said
    stats = mtls_sandbox.stats().get("oauth2", {})
    assert stats.get("token_requests", 0) == 0 and stats.get("api_requests", 0) == 0  # nothing was sent
