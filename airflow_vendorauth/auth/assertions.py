"""Client assertions (RFC 7523 ``private_key_jwt``): a certificate's private key instead of a secret.

Each token request carries a freshly signed JWT: ``iss`` = ``sub`` = the client id, ``aud`` = the token
endpoint's URL, a unique ``jti``, ``iat``/``nbf`` now and ``exp`` five minutes later. RS256 for RSA keys,
ES256 for EC keys (P-256). With a certificate, the header carries its thumbprints ``x5t`` (SHA-1) and
``x5t#S256`` (SHA-256), which is how Microsoft Entra ID finds the registered certificate; ``kid`` is the
key id, when one is given. Signing is PyJWT's, key handling ``cryptography``'s: no hand-written crypto.
"""

from __future__ import annotations

import base64
import functools
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long an assertion is valid: short, since it is made for one request.
ASSERTION_LIFETIME_SECONDS = 300


class KeyMaterialError(ValueError):
    """A private key or certificate that cannot be used, with the reason (never the key itself)."""


_PEM = re.compile(r"(-----BEGIN [A-Z0-9 ]+-----)\s*(.+?)\s*(-----END [A-Z0-9 ]+-----)", re.S)


def normalize_pem(text: str) -> str:
    """PEM text as the parser wants it, also when a form's one-line input ate its line breaks or a
    JSON writer escaped them (``\\n``)."""
    text = text.strip().replace("\\n", "\n")
    match = _PEM.fullmatch(text)
    if match is None or "\n" in match.group(2).strip():
        return text + "\n"
    body = re.sub(r"\s+", "", match.group(2))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([match.group(1), *lines, match.group(3)]) + "\n"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def thumbprints(certificate_pem: str) -> dict[str, str]:
    """The certificate's ``x5t`` and ``x5t#S256`` header values."""
    try:
        cert = x509.load_pem_x509_certificate(normalize_pem(certificate_pem).encode())
    except ValueError as exc:
        raise KeyMaterialError(f"is not a PEM certificate ({exc})") from None
    return {"x5t": _b64url(cert.fingerprint(hashes.SHA1())), "x5t#S256": _b64url(cert.fingerprint(hashes.SHA256()))}


@dataclass(frozen=True, repr=False)
class AssertionSigner:
    """Signs client assertions for one client with one key. ``repr()`` never shows the key."""

    client_id: str
    key: Any
    algorithm: str
    header: dict[str, str]

    def __repr__(self) -> str:
        return f"AssertionSigner(client_id={self.client_id!r}, algorithm={self.algorithm!r}, header={self.header!r})"

    def assertion(self, audience: str, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "nbf": issued,
            "exp": issued + ASSERTION_LIFETIME_SECONDS,
        }
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=self.header)


@functools.lru_cache(maxsize=32)
def signer_for(
    client_id: str, private_key_pem: str, certificate_pem: str | None = None, key_id: str | None = None
) -> AssertionSigner:
    """A signer for this key (loaded once per process); KeyMaterialError says what is wrong with it."""
    try:
        key = serialization.load_pem_private_key(normalize_pem(private_key_pem).encode(), password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted: give the key without a passphrase" if "encrypted" in str(exc).lower() else exc
        raise KeyMaterialError(f"is not a PEM private key ({reason})") from None
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        raise KeyMaterialError("is neither an RSA key nor an EC P-256 key (RS256 or ES256 sign client assertions)")
    header: dict[str, str] = {}
    if certificate_pem:
        header.update(thumbprints(certificate_pem))
        cert_key = x509.load_pem_x509_certificate(normalize_pem(certificate_pem).encode()).public_key()
        if cert_key.public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
            raise KeyMaterialError("does not belong to the certificate given with it")
    if key_id:
        header["kid"] = key_id
    return AssertionSigner(client_id, key, algorithm, header)
