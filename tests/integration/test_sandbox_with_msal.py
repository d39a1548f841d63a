"""Microsoft's own client library against the sandbox's Entra ID: MSAL discovers the tenant's metadata
(``/{tenant}/v2.0/.well-known/openid-configuration``, as Entra's login host serves it), signs a client
assertion with the registered certificate its own way, and gets a token; users' code built on MSAL can
be tested against the sandbox the same way."""

from __future__ import annotations

import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.state import SandboxCredentials, sandbox_key
from tests.keys import unregistered_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def https_sandbox():  # type: ignore[no-untyped-def]
    with Sandbox("--tls-hostname", "localhost") as sandbox:  # MSAL accepts https authorities only
        yield sandbox


def msal_app(sandbox: Sandbox, key: str, cert: str):  # type: ignore[no-untyped-def]
    import msal
    import requests

    session = requests.Session()
    session.verify = False  # the sandbox's self-signed certificate
    session.trust_env = False  # else REQUESTS_CA_BUNDLE wins over verify=False
    thumbprint = x509.load_pem_x509_certificate(cert.encode()).fingerprint(hashes.SHA1()).hex()
    c = SandboxCredentials()
    return msal.ConfidentialClientApplication(
        c.keyavi_client_id,
        authority=f"{sandbox.url.replace('127.0.0.1', 'localhost')}/{c.keyavi_tenant}",
        client_credential={"private_key": key, "thumbprint": thumbprint, "public_certificate": cert},
        validate_authority=False,
        instance_discovery=False,
        http_client=session,
    )


def test_msal_gets_a_token_with_the_registered_certificate(https_sandbox: Sandbox) -> None:
    https_sandbox.reset()
    key, cert = sandbox_key("rsa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = msal_app(https_sandbox, key, cert).acquire_token_for_client(
            scopes=[f"{SandboxCredentials().keyavi_app_id_uri}/.default"]
        )
    assert answer.get("token_type") == "Bearer", answer
    assert https_sandbox.stats()["keyavi"]["token_requests"] == 1


def test_msal_with_another_certificate_gets_entras_refusal(https_sandbox: Sandbox) -> None:
    https_sandbox.reset()
    key, cert = unregistered_key()  # a real certificate, but not the one registered for the app
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = msal_app(https_sandbox, key, cert).acquire_token_for_client(
            scopes=[f"{SandboxCredentials().keyavi_app_id_uri}/.default"]
        )
    assert answer["error"] == "invalid_client" and answer["error_codes"] == [700027]
