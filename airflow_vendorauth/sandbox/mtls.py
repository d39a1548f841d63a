"""The sandbox's mutual TLS mode (RFC 8705): a test PKI, and the client certificate handed to the app.

``python -m airflow_vendorauth.sandbox --mtls-dir DIR`` makes (once) a test CA in ``DIR`` with: a server
certificate for 127.0.0.1/localhost, two client certificates the CA issued for the client
``oauth2-mtls-client`` (``client`` and ``client2``: one client, two keys, as when a certificate is
renewed), and a self-signed one for ``oauth2-selfsigned-client`` (``selfsigned``). The sandbox then serves
https, asks every client for a certificate (``CERT_OPTIONAL``: a client without one still connects, and is
refused by the endpoints that need one), and trusts the CA and the registered self-signed certificate.

Uvicorn does not hand the peer certificate to the ASGI app. :class:`ClientCertificateH11Protocol` takes it
from the TLS transport when the connection is made and puts it in the request scope as the ASGI TLS
extension has it (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM strings).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from uvicorn.protocols.http.h11_impl import H11Protocol

MTLS_CLIENT = "oauth2-mtls-client"
SELF_SIGNED_CLIENT = "oauth2-selfsigned-client"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, *,
    ca: bool = False, server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


@dataclass(frozen=True)
class SandboxPki:
    """The files of the sandbox's test PKI in ``folder``: ``<name>.pem`` and ``<name>.key`` for ``ca``,
    ``server``, ``client``, ``client2`` and ``selfsigned``; ``trust.pem`` (the CA and the self-signed one)."""

    folder: Path

    @classmethod
    def create(cls, folder: Path | str) -> SandboxPki:
        pki = cls(Path(folder))
        if (pki.folder / "trust.pem").exists():
            return pki
        pki.folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("vendorauth sandbox test CA", ca_key, _name("vendorauth sandbox test CA"), ca_key, ca=True)
        made = {"ca": (ca, ca_key)}
        for name, subject in (("server", "127.0.0.1"), ("client", MTLS_CLIENT), ("client2", MTLS_CLIENT)):
            key = ec.generate_private_key(ec.SECP256R1())
            made[name] = (_certificate(subject, key, ca.subject, ca_key, server=name == "server"), key)
        key = ec.generate_private_key(ec.SECP256R1())
        made["selfsigned"] = (_certificate(SELF_SIGNED_CLIENT, key, _name(SELF_SIGNED_CLIENT), key), key)
        for name, (certificate, key) in made.items():
            (pki.folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
            key_path = pki.folder / f"{name}.key"
            key_path.write_bytes(_pem_key(key))
            key_path.chmod(0o600)
        (pki.folder / "trust.pem").write_text(pki.pem("ca") + pki.pem("selfsigned"))
        return pki

    def pem(self, name: str) -> str:
        return (self.folder / f"{name}.pem").read_text()

    def key(self, name: str) -> str:
        return (self.folder / f"{name}.key").read_text()

    @property
    def ca_bundle(self) -> str:
        return str(self.folder / "ca.pem")

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": str(self.folder / "server.pem"),
            "ssl_keyfile": str(self.folder / "server.key"),
            "ssl_ca_certs": str(self.folder / "trust.pem"),
            "ssl_cert_reqs": ssl.CERT_OPTIONAL,
            "http": ClientCertificateH11Protocol,
        }


def thumbprint_of_der(der: bytes) -> str:
    """``x5t#S256`` of a DER certificate."""
    return base64.urlsafe_b64encode(x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256())).decode().rstrip("=")


def peer_certificate(scope: Any) -> x509.Certificate | None:
    """The client certificate of the request's TLS connection, if it presented one."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain") or []
    return x509.load_pem_x509_certificate(chain[0].encode()) if chain else None


def thumbprint(certificate: x509.Certificate) -> str:
    return base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).decode().rstrip("=")


class ClientCertificateH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol, plus the ASGI TLS extension with the peer's certificate in every scope."""

    def connection_made(self, transport: Any) -> None:  # asyncio's SSL transport
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        tls = {
            "server_cert": None,
            "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await app(scope, receive, send)

        self.app = with_tls
