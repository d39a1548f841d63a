"""Mutual TLS on the client side: the TLS context presents the certificate, the private key never lands on
a disk in clear, and a key that does not match its certificate is refused before any request."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.auth import mtls
from airflow_vendorauth.auth.assertions import KeyMaterialError
from airflow_vendorauth.auth.mtls import ClientCertificate, ssl_context
from airflow_vendorauth.sandbox.mtls import SandboxPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SandboxPki:
    return SandboxPki.create(tmp_path_factory.mktemp("pki"))


def test_the_key_is_loaded_from_memory_not_from_a_file_on_disk(pki: SandboxPki, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        seen.append((str(certfile), str(keyfile)))
        assert Path(keyfile).read_text().strip() == pki.key("client").strip()  # readable while loading
        real(self, certfile, keyfile)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    pair = ClientCertificate(pki.pem("client"), pki.key("client"))
    ssl_context.cache_clear()
    context = ssl_context(pair, pki.ca_bundle)
    assert isinstance(context, ssl.SSLContext)
    ((certfile, keyfile),) = seen
    assert keyfile.startswith("/proc/self/fd/"), "the key went through a file on disk"
    assert not Path(certfile).exists()


def test_without_memfd_the_key_file_is_private_and_deleted_at_once(pki: SandboxPki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(mtls.os, "memfd_create")
    seen: list[tuple[str, int]] = []
    real = ssl.SSLContext.load_cert_chain

    def spy(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        seen.append((str(keyfile), Path(keyfile).stat().st_mode & 0o777))
        real(self, certfile, keyfile)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    ssl_context.cache_clear()
    ssl_context(ClientCertificate(pki.pem("client2"), pki.key("client2")), pki.ca_bundle)
    ((keyfile, mode),) = seen
    assert mode == 0o600 and not Path(keyfile).exists()


def test_a_key_of_another_certificate_is_refused(pki: SandboxPki) -> None:
    with pytest.raises(KeyMaterialError, match="does not belong"):
        ClientCertificate(pki.pem("client"), pki.key("client2")).check()
    with pytest.raises(KeyMaterialError, match="not a PEM private key"):
        ClientCertificate(pki.pem("client"), "nope").check()


def test_the_repr_shows_the_thumbprint_never_the_key(pki: SandboxPki) -> None:
    pair = ClientCertificate(pki.pem("client"), pki.key("client"))
    assert "PRIVATE" not in repr(pair) and pair.thumbprint in repr(pair)


def test_verify_may_name_a_ca_bundle(pki: SandboxPki) -> None:
    context = ssl_context(None, pki.ca_bundle)
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert ssl_context(None, True) is True and ssl_context(None, False) is False


def test_a_client_with_a_certificate_takes_the_mtls_alias_of_the_token_endpoint() -> None:
    import httpx

    from airflow_vendorauth.auth.discovery import Discovery, forget_discoveries, token_endpoint

    issuer = "https://idp.example/realm"
    document = {"issuer": issuer, "token_endpoint": f"{issuer}/token",
                "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.idp.example/realm/token"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=document))
    forget_discoveries()
    with_certificate = Discovery("OAuth 2.0", "c", 5.0, True, transport, mtls=True)
    without = Discovery("OAuth 2.0", "c", 5.0, True, transport)
    assert token_endpoint(issuer, with_certificate) == "https://mtls.idp.example/realm/token"
    assert token_endpoint(issuer, without) == f"{issuer}/token"
    forget_discoveries()
