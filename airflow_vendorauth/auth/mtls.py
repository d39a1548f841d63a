"""Mutual TLS (RFC 8705): the TLS context that presents a client certificate, and its thumbprint.

httpx takes an :class:`ssl.SSLContext` as ``verify``; the context is built once per (certificate, key,
verification) and shared by the token endpoint and the API client, so token requests and API calls present
the same certificate, and a certificate-bound token (``cnf.x5t#S256``) is always sent over the certificate
it is bound to.

The private key must not reach a disk in clear, but :meth:`ssl.SSLContext.load_cert_chain` reads only
files (Python's ``ssl`` has no in-memory key loading). On Linux the key goes into an anonymous in-memory
file (``os.memfd_create``: it lives in RAM, has no name in any directory, and is gone when closed), opened by
``/proc/self/fd/N`` for the duration of the load. Elsewhere it goes into a 0600 file of a 0700 temporary
directory, deleted right after the load. The context keeps the key in OpenSSL's memory, not on disk.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from airflow_vendorauth.auth.assertions import KeyMaterialError, normalize_pem

#: What ``verify`` may be: on or off, or a CA bundle file (PEM) for a private PKI.
Verify = bool | str


@dataclass(frozen=True, repr=False)
class ClientCertificate:
    """A client certificate (PEM) with its private key (PEM). ``repr()`` shows the thumbprint, never the key."""

    certificate_pem: str
    private_key_pem: str

    def __repr__(self) -> str:
        return f"ClientCertificate(x5t#S256={self.thumbprint!r})"

    @functools.cached_property
    def thumbprint(self) -> str:
        """``x5t#S256``: base64url of the DER certificate's SHA-256, what a bound token's ``cnf`` names."""
        return certificate_thumbprint(self.certificate_pem)

    def check(self) -> None:
        """Raise :class:`KeyMaterialError` when the two PEMs do not load or do not belong together."""
        try:
            cert = x509.load_pem_x509_certificate(normalize_pem(self.certificate_pem).encode())
        except ValueError as exc:
            raise KeyMaterialError(f"is not a PEM certificate ({exc})") from None
        try:
            key = serialization.load_pem_private_key(normalize_pem(self.private_key_pem).encode(), password=None)
        except (ValueError, TypeError) as exc:
            reason = "it is encrypted: give the key without a passphrase" if "encrypted" in str(exc).lower() else exc
            raise KeyMaterialError(f"is not a PEM private key ({reason})") from None
        public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if public != cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise KeyMaterialError("does not belong to the client certificate given with it")


def certificate_thumbprint(certificate_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(normalize_pem(certificate_pem).encode())
    return base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")


@contextlib.contextmanager
def _key_path(private_key_pem: str) -> Iterator[str]:
    """A path that reads as the key for as long as the block runs, and never a file on disk if avoidable."""
    data = normalize_pem(private_key_pem).encode()
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("vendorauth-client-key", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="vendorauth-mtls-") as folder:  # 0700
        path = Path(folder) / "key.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        try:
            yield str(path)
        finally:
            path.unlink(missing_ok=True)


@functools.lru_cache(maxsize=32)
def ssl_context(certificate: ClientCertificate | None, verify: Verify) -> ssl.SSLContext | Verify:
    """What httpx takes as ``verify``: the plain value without a client certificate, else a context that
    presents it (and verifies the server as httpx would, or with the given CA bundle)."""
    if certificate is None:
        return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    # httpx's own context for true/false (certifi's CAs, SSL_CERT_FILE honoured), as a client without a certificate
    context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else httpx.create_ssl_context(verify)
    # The certificate is public: a plain temporary path is fine for it; the key takes the careful way.
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as cert_file:
        cert_file.write(normalize_pem(certificate.certificate_pem))
    try:
        with _key_path(certificate.private_key_pem) as key_path:
            context.load_cert_chain(cert_file.name, key_path)
    finally:
        os.unlink(cert_file.name)
    return context
